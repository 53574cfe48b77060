"""Ask latency beside the bare encoder: ``python bench/bench_ask.py [--json] [--repeat N]``.

The target (issue 16): ask p95 <= 1.3 x the bare encoder time of the question + 20 ms. Ask
embeds the question once (search, the situation classifier and the passage choice share
that vector), so the rest — search, classification, composing the answer — is what this
measures. Each question is timed twice, interleaved (which goes first alternates): the bare encoder
embedding it (``embedder.query``), and ``coach.ask`` with the question-vector cache cleared,
so both pay for one encoder pass on the same text and a busy shared machine slows both alike.
Questions: the trainer dev set and the retrieval eval questions (no history); follow-ups
(which embed the previous turn and the combined text too) are reported separately.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


def load(name: str) -> list[dict]:
    return [json.loads(x) for x in (HERE.parent / "eval" / name).read_text("utf-8").splitlines() if x.strip()]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--data-dir", default="", help="reuse a data dir (default: a fresh temp one)")
    args = parser.parse_args()
    os.environ["CALMCALL_DATA_DIR"] = args.data_dir or tempfile.mkdtemp(prefix="calmcall-bench-ask-")
    from calmcall.coach import Coach

    coach = Coach()
    t0 = time.perf_counter()
    coach.warm()
    warm_s = time.perf_counter() - t0
    questions = [r["question"] for r in load("ask_dev.jsonl")] + [r["question"] for r in load("retrieval.jsonl")]
    coach.ask(questions[0])
    enc, ask = [], []
    def time_encoder(q):
        t = time.perf_counter()
        coach.embedder.query([q])
        enc.append((time.perf_counter() - t) * 1000)

    def time_ask(q):
        coach.retriever.clear_cache()
        t = time.perf_counter()
        coach.ask(q)
        ask.append((time.perf_counter() - t) * 1000)

    for _ in range(args.repeat):
        for i, q in enumerate(questions):  # alternate which goes first: neither gets warm caches for free
            for fn in ((time_encoder, time_ask) if i % 2 else (time_ask, time_encoder)):
                fn(q)
    history = [{"role": "user", "content": "What if the caller swears at me?"}, {"role": "assistant", "content": "…"}]
    follow = []
    for q in ["and if they keep going?", "how do I word the transfer?", "och om hen fortsätter?"] * args.repeat:
        coach.retriever.clear_cache()
        t = time.perf_counter()
        coach.ask(q, history=history)
        follow.append((time.perf_counter() - t) * 1000)
    enc_p95, ask_p95 = pct(enc, 95), pct(ask, 95)
    budget = 1.3 * enc_p95 + 20
    out = {
        "questions": len(enc),
        "warm_up_s": round(warm_s, 2),
        "encoder_p50_ms": round(statistics.median(enc), 1),
        "encoder_p95_ms": round(enc_p95, 1),
        "ask_p50_ms": round(statistics.median(ask), 1),
        "ask_p95_ms": round(ask_p95, 1),
        "ask_minus_encoder_p50_ms": round(statistics.median([a - e for a, e in zip(ask, enc)]), 1),
        "budget_p95_ms": round(budget, 1),
        "target_met": ask_p95 <= budget,
        "follow_up_p50_ms": round(statistics.median(follow), 1),
    }
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        for k, v in out.items():
            print(f"{k:26} {v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

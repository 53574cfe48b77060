"""Performance figures for README: ``python bench/bench.py [--json]``.

Cold start (import + model load), full index build, no-op re-index, warm search / grade /
ask latency p50/p95 over the eval questions and answers, batch grade throughput, and peak
RSS. Runs against a fresh temp data dir so a full build is really a full build.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
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


def timed(fn, *args, **kw):
    t = time.perf_counter()
    out = fn(*args, **kw)
    return out, time.perf_counter() - t


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--repeat", type=int, default=1, help="passes over the eval sets")
    args = parser.parse_args()
    results: dict[str, object] = {
        "machine": f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}",
    }
    tmp = tempfile.mkdtemp(prefix="calmcall-bench-")
    os.environ["CALMCALL_DATA_DIR"] = tmp

    t0 = time.perf_counter()
    from calmcall.coach import Coach
    from calmcall.config import Settings
    from calmcall.index import VectorIndex, vector_docs

    settings = Settings(data_dir=Path(tmp))
    coach = Coach(settings)
    _, results["model_load_s"] = timed(lambda: coach.embedder)
    knowledge = coach.knowledge
    # cold: every passage vector embedded now; then from the shipped vector cache
    cold = VectorIndex(settings, coach.embedder, vector_docs(knowledge), knowledge.fingerprint, name="bench_cold")
    rep, results["index_full_build_cold_s"] = timed(cold.build)
    results["index_vectors"] = rep.added
    index = VectorIndex(settings, coach.embedder, vector_docs(knowledge), knowledge.fingerprint,
                        cache=coach.vector_cache)
    _, results["index_full_build_cached_s"] = timed(index.build)
    _, results["catalogue_build_s"] = timed(lambda: coach.bridge)
    _, results["warm_up_rest_s"] = timed(coach.warm)
    results["cold_start_total_s"] = time.perf_counter() - t0
    index2 = VectorIndex(settings, coach.embedder, vector_docs(knowledge), knowledge.fingerprint,
                         cache=coach.vector_cache)
    _, results["index_noop_s"] = timed(index2.build)

    questions = [json.loads(x)["question"] for x in (HERE.parent / "eval" / "retrieval.jsonl").read_text().splitlines() if x.strip()]
    answers = [json.loads(x) for x in (HERE.parent / "eval" / "grading.jsonl").read_text().splitlines() if x.strip()]

    def lat(fn, items):
        times = []
        for _ in range(args.repeat):
            for it in items:
                _, dt = timed(fn, it)
                times.append(dt * 1000)
        return {"p50_ms": round(statistics.median(times), 1), "p95_ms": round(pct(times, 95), 1), "n": len(times)}

    coach.search(questions[0])

    def fresh(fn):  # every call embeds its question afresh, also on --repeat passes
        def call(q):
            coach.retriever.clear_cache()
            return fn(q)

        return call

    results["search"] = lat(fresh(coach.search), questions)
    results["ask"] = lat(fresh(coach.ask), questions)
    long_answers = [a for a in answers if 120 <= len(a["answer"].split()) <= 260] or answers

    def fresh_grade(a):  # the grader remembers recent sentences; these figures embed afresh
        coach.grader.clear_cache()
        return coach.grade(a["answer"], a["question"])

    results["grade_150w"] = lat(fresh_grade, long_answers)
    results["grade_all"] = lat(fresh_grade, answers)
    # a second attempt that adds one sentence: only the new sentence is embedded
    for a in long_answers:
        coach.grade(a["answer"], a["question"])
    extra = iter(range(10**6))  # a different new sentence each time: it is really embedded
    results["grade_150w_retry"] = lat(
        lambda a: coach.grade(
            a["answer"] + f" Afterwards I would note in ticket {next(extra)} what happened.", a["question"]
        ),
        long_answers,
    )
    # side by side, interleaved: grading an answer afresh vs the bare encoder embedding the
    # same answer's text (one pass over its sentences) — a ratio, robust on a shared machine
    ratios, g_ms, e_ms = [], [], []
    from calmcall.text import split_sentences

    for a in long_answers * args.repeat:
        coach.grader.clear_cache()
        _, dg = timed(coach.grade, a["answer"], a["question"])
        _, de = timed(coach.embedder.query, split_sentences(a["answer"]))
        ratios.append(dg / de)
        g_ms.append(dg * 1000)
        e_ms.append(de * 1000)
    results["grade_vs_encoder"] = {
        "ratio_median": round(statistics.median(ratios), 2),
        "ratio_p90": round(pct(ratios, 90), 2),
        "grade_p50_ms": round(statistics.median(g_ms), 1),
        "encoder_p50_ms": round(statistics.median(e_ms), 1),
        "n": len(ratios),
    }
    coach.grader.clear_cache()
    t = time.perf_counter()
    for a in answers:
        coach.grade(a["answer"], a["question"])
    results["grade_batch_per_s"] = round(len(answers) / (time.perf_counter() - t), 1)
    results["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    for k, v in list(results.items()):
        if isinstance(v, float):
            results[k] = round(v, 3)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for k, v in results.items():
            print(f"{k:22} {v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

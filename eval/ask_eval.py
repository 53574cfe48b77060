"""Ask measured on trainer situations: ``python eval/ask_eval.py [dev|blind|retrieval|all]``.

Sets (same JSON-lines schema: id, situation, language, question, in_scope, expected_steps):
- ``dev``: eval/ask_dev.jsonl — written for development; settings were tuned on it.
- ``blind``: eval/ask_trainer_parallel.jsonl — frozen, written blind; never fitted, tuned
  or used to choose a setting. Report it separately.
- ``retrieval``: eval/retrieval.jsonl through ``answering.evaluate_answer`` (the gold is
  passages, not steps; citation precision as eval/run.py defines it).

Figures per trainer set:
- coverage: share of a situation's expected steps the answer presents (0 when an
  in-scope question is refused), averaged over in-scope questions;
- agreement: per situation, the mean pairwise Jaccard of the step sets of its eight
  language versions, averaged over in-scope situations;
- citation precision: share of an answer's cited passages that teach an expected step
  (or, for a conflict citation, belong to a conflict about an expected step) — the
  definition of ``evaluate_answer`` with expected steps in place of gold passages;
- language match (en/sv/hu/it/nl): answered in the question's language, and the answer
  body is detected as it; OOS refusals: out-of-scope questions refused.
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import sys
import time
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

SETS = {"dev": "ask_dev.jsonl", "blind": "ask_trainer_parallel.jsonl"}
CORE = ("en", "sv", "hu", "it", "nl")


def load(name: str) -> list[dict]:
    return [json.loads(line) for line in (HERE / name).read_text("utf-8").splitlines() if line.strip()]


def jaccard(a: set, b: set) -> float:
    return 1.0 if not a and not b else len(a & b) / len(a | b)


def related_passages(catalogue, expected: list[str]) -> set[str]:
    """Passages that teach an expected step, and both sides of a conflict about one."""
    related = {p for sid in expected if sid in catalogue.steps for p in catalogue.steps[sid].passages}
    for c in catalogue.conflicts.values():
        if set(c.steps) & set(expected):
            related |= {p for side in c.sides for p in side.passages}
    return related


def score_rows(coach, rows: list[dict], results: list) -> dict:
    from calmcall.language import detect

    cov, prec, step_prec, lang_ok, oos, kept, n_steps = [], [], [], [], [], [], []
    by_situation: dict[str, list[set]] = defaultdict(list)
    per_lang = defaultdict(list)
    misses = defaultdict(int)
    for row, res in zip(rows, results):
        steps = set(res.steps)
        if not row["in_scope"]:
            oos.append(float(not res.in_scope))
            continue
        expected = set(row["expected_steps"])
        kept.append(float(res.in_scope))
        by_situation[row["situation"]].append(steps)
        c = len(expected & steps) / len(expected) if expected else 1.0
        cov.append(c)
        per_lang[row["language"]].append(c)
        for sid in expected - steps:
            misses[sid] += 1
        if res.in_scope:
            n_steps.append(len(steps))
            step_prec.append(len(expected & steps) / len(steps) if steps else 0.0)
            related = related_passages(coach.catalogue, row["expected_steps"])
            cited = [c.passage for c in res.citations]
            prec.append(sum(p in related for p in cited) / len(cited) if cited else 0.0)
        if row["language"] in CORE:
            body = " ".join(re.sub(r"\[[^\]]+\]", "", ln) for ln in res.answer.splitlines()[1:])
            lang_ok.append(float(res.language == row["language"] and detect(body or res.answer) == row["language"]))
    agree = [sum(jaccard(a, b) for a, b in itertools.combinations(sets, 2)) / max(len(sets) * (len(sets) - 1) / 2, 1)
             for sets in by_situation.values() if len(sets) > 1]

    def mean(xs):
        return sum(xs) / len(xs) if xs else float("nan")

    return {
        "n": len(rows), "situations": len(by_situation),
        "coverage": mean(cov), "agreement_jaccard": mean(agree), "citation_precision": mean(prec),
        "step_precision": mean(step_prec), "mean_steps": mean(n_steps),
        "language_match": mean(lang_ok), "oos_refusal": mean(oos), "in_scope_kept": mean(kept),
        "coverage_per_language": {k: round(mean(v), 3) for k, v in per_lang.items()},
        "most_missed": dict(sorted(misses.items(), key=lambda kv: -kv[1])[:6]),
    }


def run_set(coach, name: str, show: bool = False) -> dict:
    rows = load(SETS[name])
    results, lat = [], []
    for row in rows:
        t = time.perf_counter()
        results.append(coach.ask(row["question"]))
        lat.append(time.perf_counter() - t)
    m = score_rows(coach, rows, results)
    print(f"-- {name}: {SETS[name]} ({m['n']} questions, {m['situations']} in-scope situations)")
    for k in ("coverage", "agreement_jaccard", "citation_precision", "step_precision", "mean_steps",
              "language_match", "oos_refusal", "in_scope_kept"):
        print(f"   {k:20} {m[k]:.3f}")
    print(f"   coverage per language {m['coverage_per_language']}")
    print(f"   most missed steps {m['most_missed']}")
    if show:
        by = defaultdict(list)
        for row, res in zip(rows, results):
            by[row["situation"]].append((row["language"], res.steps, res.in_scope))
        for sid, items in by.items():
            exp = next(r["expected_steps"] for r in rows if r["situation"] == sid)
            print(f"   {sid}: expected {exp}")
            for lang, steps, ins in items:
                print(f"      {lang} {'' if ins else 'REFUSED '}{steps}")
    m["latency_ms_p50"] = sorted(lat)[len(lat) // 2] * 1000
    return m


def run_retrieval(coach) -> dict:
    from calmcall.answering import evaluate_answer

    agg = defaultdict(list)
    for row in load("retrieval.jsonl"):
        for k, v in evaluate_answer(coach, row, coach.ask(row["question"])).items():
            if v is not None:
                agg[k].append(v)
    out = {k: sum(v) / len(v) for k, v in agg.items() if v}
    print("-- retrieval: retrieval.jsonl through evaluate_answer (gold passages)")
    for k, v in out.items():
        print(f"   {k:24} {v:.3f}")
    return out


def main() -> int:
    from calmcall.coach import Coach

    parser = argparse.ArgumentParser()
    parser.add_argument("what", nargs="?", default="dev", choices=["dev", "blind", "retrieval", "devret", "all"])
    parser.add_argument("--show", action="store_true", help="print each situation's step sets")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--check", action="store_true", help="exit 1 below eval/thresholds.yaml ask_trainer floors")
    args = parser.parse_args()
    coach = Coach()
    out = {}
    for name in {"all": ["dev", "retrieval", "blind"], "devret": ["dev", "retrieval"]}.get(args.what, [args.what]):
        out[name] = run_retrieval(coach) if name == "retrieval" else run_set(coach, name, show=args.show)
    if args.json:
        print(json.dumps(out, indent=1, default=str))
    if args.check:
        import yaml

        floors = (yaml.safe_load((HERE / "thresholds.yaml").read_text()) or {}).get("ask_trainer", {})
        failures = [f"ask {name} {k} {out[name][k]:.3f} < {v}" for name, fl in floors.items() if name in out
                    for k, v in fl.items() if out[name].get(k, 1.0) < v]
        if failures:
            print("BELOW THRESHOLD: " + "; ".join(failures))
            return 1
        print("ask trainer figures meet eval/thresholds.yaml")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Fit the grader's similarity thresholds on the DEV half of eval/grading.jsonl (odd ids)
and report the held-out TEST half (even ids) — ``python eval/calibrate_grader.py [--write]``.

``--write`` stores the best thresholds for the current embedder in
knowledge/grading_calibration.yaml (keyed by the embedder's manifest id). Thresholds are
model-specific: a raw cosine means different things for different models.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np
import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from calmcall.coach import Coach  # noqa: E402
from calmcall.grading import Thresholds  # noqa: E402

HARD = ("harmful", "off_topic", "injection", "negation", "keyword_list")


def metrics(coach, rows):
    from scipy.stats import spearmanr

    tp = fp = fn = 0
    scores, labels, hard_max = [], [], 0
    for row in rows:
        rep = coach.grade(row["answer"], row["question"])
        scores.append(rep.score)
        labels.append(row["grade"])
        pred = {v.step: v.status != "missing" for v in rep.steps}
        for step, gold in row["steps"].items():
            g, p = gold != "missing", pred.get(step, False)
            tp += g and p
            fp += p and not g
            fn += g and not p
        if row["case"] in HARD:
            hard_max = max(hard_max, rep.score)
    prec, rec = tp / max(tp + fp, 1), tp / max(tp + fn, 1)
    f1 = 2 * prec * rec / max(prec + rec, 1e-9)
    return {"spearman": float(spearmanr(scores, labels).statistic), "f1": f1, "hard_max": hard_max}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    rows = [json.loads(x) for x in (HERE / "grading.jsonl").read_text().splitlines() if x.strip()]
    dev = [r for r in rows if int(r["id"][1:]) % 2 == 1]
    test = [r for r in rows if int(r["id"][1:]) % 2 == 0]
    coach = Coach()
    grader = coach.grader
    original_query = coach.embedder.query

    @lru_cache(maxsize=100_000)
    def cached(texts: tuple[str, ...]):
        return original_query(list(texts))

    coach.embedder.query = lambda texts: cached(tuple(texts))
    best = None
    grid = itertools.product(
        np.arange(0.885, 0.931, 0.005), [0.006, 0.012, 0.02], [0.005, 0.012, 0.02, 0.03], [0.9, 0.91, 0.92, 0.93]
    )
    for covered, gap, margin, anti in grid:
        grader.thresholds = Thresholds(covered=float(covered), partly=float(covered - gap), anti=anti, margin=margin)
        m = metrics(coach, dev)
        if m["hard_max"] > 20:
            continue
        objective = m["f1"] + m["spearman"]
        if best is None or objective > best[0]:
            best = (objective, grader.thresholds, m)
    _, th, m_dev = best
    grader.thresholds = th
    m_test = metrics(coach, test)
    m_all = metrics(coach, rows)
    print(f"best thresholds: {th}")
    for name, m in (("dev", m_dev), ("test", m_test), ("all", m_all)):
        print(f"{name:5} Spearman {m['spearman']:.3f}  step F1 {m['f1']:.3f}  hard max {m['hard_max']}")
    if args.write:
        path = coach.settings.knowledge_dir / "grading_calibration.yaml"
        data = yaml.safe_load(path.read_text()) if path.exists() else {}
        data = data or {}
        data[coach.embedder.manifest_id] = {k: round(float(v), 4) for k, v in th.__dict__.items()}
        header = "# Grader thresholds per embedder, fitted on the dev half of eval/grading.jsonl\n"
        header += "# by eval/calibrate_grader.py (test half reported separately in README).\n"
        path.write_text(header + yaml.safe_dump(data, sort_keys=True))
        print(f"written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Fit the grader's scoring policy for the current embedder — ``python eval/calibrate_grader.py [--write]``.

Fitted on the odd-numbered ("fit") halves of eval/grading.jsonl and eval/grading_shapes.jsonl
(stage 2b also on eval/grading_tone_dev.jsonl's);
the even halves are held out, and eval/grading_redteam.jsonl (written blind) is never read
here. Stages:
1. similarity thresholds (covered / partly / anti / margin) on a small grid, maximising step
   F1 + Spearman, subject to every answer a coach gives <= 10 scoring <= 20;
1b. anti-pattern corroboration (anti_sure, anti_probe) by Spearman plus anti-pattern F1;
2. harm detection; 2b. two probes agreeing (harm_pair_prob / harm_pair_kind);
3. what documented steps beyond the question's add;
4. depth (points for how much the answer says about the steps it covers, policy.depth) on a
   small grid, each candidate with its own curve, by Spearman on the fit half;
5. the score curve: an isotonic regression of the coach's grade, less the depth points, on
   the raw coverage score, over answers no cap applies to, so the score means what a coach's
   0-100 means.

``--write`` stores the result under the embedder's id in knowledge/grading_policy.yaml.
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

from run import anti_counts  # noqa: E402  (eval/run.py: the same count the eval reports)

from calmcall.coach import Coach  # noqa: E402
from calmcall.policy import POLICY_FILE  # noqa: E402

FIT_SETS = ("grading.jsonl", "grading_shapes.jsonl")
# detection numbers (stage 2b) are fitted on the tone set's odd half too; the score curve is not:
# that set has no thin answers, and its low-graded ones are all capped, so only its good answers
# would enter the curve and lift it for every thin answer
DETECTION_SETS = (*FIT_SETS, "grading_tone_dev.jsonl")
# which stages search their grid in each mode (the others keep the file's values; the curve is always refit)
STAGES = {"thresholds", "anti", "harm", "harm_pair", "extra", "depth"}
ONLY = {"quick": set(), "harm-only": {"harm", "harm_pair"}, "depth-only": {"depth"}, "anti-only": {"anti"},
        "harm-pair-only": {"harm_pair"}}
CAPPED = ("injection", "keyword_list", "off_topic", "too_short", "harm", "copied", "sarcasm", "repetitive")


def rows_of(half: str, sets: tuple[str, ...] = FIT_SETS) -> list[dict]:
    out = []
    for name in sets:
        for line in (HERE / name).read_text("utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                odd = int("".join(c for c in row["id"] if c.isdigit())) % 2 == 1
                if odd == (half == "fit"):
                    out.append(row)
    return out


_PARSED: dict[str, object] = {}


def run(grader, rows):
    from scipy.stats import spearmanr

    tp = fp = fn = 0
    scored = []
    for row in rows:
        q, _, _ = grader.resolve_question(row["question"])
        if row["id"] not in _PARSED:  # parsing does not depend on the policy
            _PARSED[row["id"]] = grader.matcher.parse(row["answer"])
        s = grader.score(q, grader.matcher.match(_PARSED[row["id"]]))
        scored.append(s)
        for step, gold in row["steps"].items():
            if step not in q.expected:
                continue
            g, p = gold != "missing", s.statuses[step] != "missing"
            tp += g and p
            fp += p and not g
            fn += g and not p
    prec, rec = tp / max(tp + fp, 1), tp / max(tp + fn, 1)
    f1 = 2 * prec * rec / max(prec + rec, 1e-9)
    scores = [s.score for s in scored]
    rho = float(spearmanr(scores, [r["grade"] for r in rows]).statistic)
    low = [(r["id"], s.score) for s, r in zip(scored, rows) if r["grade"] <= 10]
    over = [x for x in low if x[1] > 20]
    # a good answer accused of harm is as bad an error as harm let through (it is capped at 10)
    false_harm = [r["id"] for s, r in zip(scored, rows) if s.flags.get("harm") and not r.get("harm")]
    # anti-patterns: each wrong one costs a good answer penalty_per_anti points
    atp, afp, afn = anti_counts([{a for a, e in s.match.best("anti").items() if e.source == "nearest"}
                                 for s in scored], rows)
    anti_f1 = 2 * atp / max(2 * atp + afp + afn, 1)
    return {"spearman": rho, "f1": f1, "low_max": max((x[1] for x in low), default=0), "low_over": over,
            "false_harm": false_harm, "anti_f1": anti_f1, "anti_counts": (atp, afp, afn)}, scored


def fit_curve(scored, rows) -> list[list[float]]:
    """Isotonic grade-less-depth on raw coverage: curve(raw) + depth then estimates the grade."""
    from sklearn.isotonic import IsotonicRegression

    xs, ys = [], []
    for s, r in zip(scored, rows):
        if not any(s.flags.get(f) for f in CAPPED) and not r.get("harm") and not r.get("copied") \
                and not s.match.best("anti") and not r.get("anti_patterns"):
            xs.append(max(0.0, min(100.0, s.raw)))
            ys.append(r["grade"] - s.depth)
    knots = np.linspace(0, 100, 11)
    iso = IsotonicRegression(y_min=0, y_max=100, increasing=True, out_of_bounds="clip").fit(xs, ys)
    values = np.maximum.accumulate(iso.predict(knots))
    values[0] = 0.0  # nothing covered is worth nothing
    return [[float(k), round(float(v), 1)] for k, v in zip(knots, values)]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--quick", action="store_true", help="keep the thresholds, fit only the curve")
    parser.add_argument("--harm-only", action="store_true", help="fit harm detection (stages 2, 2b) and the curve")
    parser.add_argument("--depth-only", action="store_true", help="keep thresholds, harm and extra; fit depth and the curve")
    parser.add_argument("--harm-pair-only", action="store_true",
                        help="keep everything else; fit the two-probe harm rule and the curve")
    parser.add_argument("--anti-only", action="store_true",
                        help="keep thresholds, harm, extra and depth; fit anti-pattern corroboration and the curve")
    args = parser.parse_args()
    mode = next((m for m in ONLY if getattr(args, m.replace("-", "_"))), "all")
    fits = ONLY.get(mode, STAGES)  # the stages that search a grid; the others keep the file's values
    fit, held = rows_of("fit"), rows_of("held-out")
    coach = Coach()
    grader = coach.grader
    policy = grader.policy
    original_query = coach.embedder.query

    @lru_cache(maxsize=200_000)
    def cached(texts: tuple[str, ...]):
        return original_query(list(texts))

    coach.embedder.query = lambda texts: cached(tuple(texts))
    def refit_curve() -> None:
        """The score curve for the current settings, fitted from scratch (stage 5)."""
        policy.curve = [[0.0, 0.0], [100.0, 100.0]]
        _, scored = run(grader, fit)
        policy.curve = fit_curve(scored, fit)

    policy.curve = [[0.0, 0.0], [100.0, 100.0]]
    best = None
    grid = [(policy.covered, policy.covered - policy.partly, policy.margin, policy.anti)] if "thresholds" not in fits else \
        itertools.product(np.arange(0.9, 0.921, 0.005), [0.006, 0.012, 0.02], [0.005], [0.9, 0.91])
    for covered, gap, margin, anti in grid:
        policy.covered, policy.partly, policy.margin, policy.anti = float(covered), float(covered - gap), float(margin), float(anti)
        m, _ = run(grader, fit)
        objective = m["f1"] + m["spearman"] - 0.05 * len(m["low_over"])
        if best is None or objective > best[0]:
            best = (objective, (policy.covered, policy.partly, policy.margin, policy.anti), m)
    if best is None:
        print("no setting keeps every answer labelled <= 10 at <= 20 on the fit half")
        return 1
    policy.covered, policy.partly, policy.margin, policy.anti = best[1]
    # stage 1b: an anti-pattern match below anti_sure needs the probe (>= anti_probe) or a
    # cue word in a sentence without negation; each candidate with its own curve
    best_a = None
    for anti_sure, anti_probe in ([(policy.anti_sure, policy.anti_probe)] if "anti" not in fits else
                                  [(0.0, 0.0)] + list(itertools.product([0.93, 0.94, 0.95, 0.96], [0.3, 0.5, 0.7, 1.1]))):
        policy.anti_sure, policy.anti_probe = float(anti_sure), float(anti_probe)
        refit_curve()
        m, _ = run(grader, fit)
        objective = m["spearman"] + m["anti_f1"] - 0.05 * len(m["low_over"])
        print(f"  anti sure {anti_sure} probe {anti_probe}: Spearman {m['spearman']:.3f} anti F1 {m['anti_f1']:.3f} "
              f"(tp/fp/fn {m['anti_counts']}) over 20: {len(m['low_over'])}", flush=True)
        if best_a is None or objective > best_a[0] + 1e-9:
            best_a = (objective, (float(anti_sure), float(anti_probe)))
    policy.anti_sure, policy.anti_probe = best_a[1]
    policy.curve = [[0.0, 0.0], [100.0, 100.0]]
    # stage 2: harm detection (the probe's confidence and the nearest harm phrasing)
    best_h = None
    # harm_margin: the nearest harm phrasing must beat the nearest step phrasing by this much
    # (-1: not required), which lets a less certain probe count without flagging good answers
    for harm_prob, harm_sim, cue_prob, harm_margin in (
            [(policy.harm_prob, policy.harm_sim, policy.harm_cue_prob, policy.harm_margin)] if "harm" not in fits else
            itertools.product([0.8, 0.9, 0.95, 0.98], [0.9], [0.1], [-1.0, 0.0, 0.01, 0.02])):
        policy.harm_prob, policy.harm_sim, policy.harm_cue_prob, policy.harm_margin = harm_prob, harm_sim, cue_prob, harm_margin
        m, _ = run(grader, fit)
        objective = m["f1"] + m["spearman"] - 0.05 * (len(m["low_over"]) + len(m["false_harm"]))
        print(f"  harm prob {harm_prob} margin {harm_margin}: Spearman {m['spearman']:.3f} F1 {m['f1']:.3f} "
              f"over 20: {len(m['low_over'])} false harm: {len(m['false_harm'])}", flush=True)
        if best_h is None or objective > best_h[0]:
            best_h = (objective, (harm_prob, harm_sim, cue_prob, harm_margin))
    policy.harm_prob, policy.harm_sim, policy.harm_cue_prob, policy.harm_margin = best_h[1]
    # stage 2b: a less certain binary probe counts when the many-class probe agrees
    best_p = None
    detect_fit = rows_of("fit", DETECTION_SETS)
    for pair_prob, pair_kind in ([(policy.harm_pair_prob, policy.harm_pair_kind)] if "harm_pair" not in fits else
                                 [(1.1, 1.1)] + list(itertools.product([0.6, 0.7, 0.8, 0.9], [0.6, 0.7, 0.8]))):
        policy.harm_pair_prob, policy.harm_pair_kind = pair_prob, pair_kind
        m, _ = run(grader, detect_fit)
        objective = m["spearman"] - 0.05 * (len(m["low_over"]) + len(m["false_harm"]))
        print(f"  harm pair {pair_prob} / {pair_kind}: Spearman {m['spearman']:.3f} over 20: {len(m['low_over'])} "
              f"false harm: {len(m['false_harm'])}", flush=True)
        if best_p is None or objective > best_p[0] + 1e-9:
            best_p = (objective, (pair_prob, pair_kind))
    policy.harm_pair_prob, policy.harm_pair_kind = best_p[1]
    # stage 3: how much documented steps beyond the question's own add (a richer answer)
    best_x = None
    for extra in ([policy.extra_weight] if "extra" not in fits else [0.0, 4.0, 8.0]):
        policy.extra_weight = extra
        m, _ = run(grader, fit)
        if best_x is None or m["spearman"] > best_x[0]:
            best_x = (m["spearman"], extra)
    policy.extra_weight = best_x[1]
    # stage 4: depth, each candidate scored with a curve fitted for it
    best_d = None
    for weight, ref, cap in ([(policy.depth_weight, policy.depth_ref, policy.depth_max)] if "depth" not in fits else
                             [(0.0, 20.0, 20.0)] + list(itertools.product([5.0, 10.0, 15.0, 20.0], [10.0, 20.0, 40.0],
                                                                          [10.0, 20.0]))):
        policy.depth_weight, policy.depth_ref, policy.depth_max = weight, ref, cap
        refit_curve()
        m, _ = run(grader, fit)
        objective = m["spearman"] - 0.05 * len(m["low_over"])
        print(f"  depth {weight} ref {ref} max {cap}: Spearman {m['spearman']:.3f} over 20: {len(m['low_over'])}",
              flush=True)
        if best_d is None or objective > best_d[0] + 1e-9:
            best_d = (objective, (weight, ref, cap))
    policy.depth_weight, policy.depth_ref, policy.depth_max = best_d[1]
    refit_curve()
    m_fit, _ = run(grader, fit)
    m_held, _ = run(grader, held)
    print(f"thresholds covered {policy.covered:.3f} partly {policy.partly:.3f} margin {policy.margin:.3f} "
          f"anti {policy.anti:.3f} sure {policy.anti_sure} probe {policy.anti_probe}; harm prob {policy.harm_prob} sim {policy.harm_sim} cue prob {policy.harm_cue_prob} "
          f"margin {policy.harm_margin}; extra {policy.extra_weight}; depth {policy.depth_weight} ref "
          f"{policy.depth_ref} max {policy.depth_max}")
    print(f"curve {policy.curve}")
    for name, m in (("fit", m_fit), ("held-out", m_held)):
        print(f"{name:9} Spearman {m['spearman']:.3f}  step F1 {m['f1']:.3f}  max score of a <=10 answer {m['low_max']}"
              f"  over 20: {m['low_over']}")
    if args.write:
        path = coach.settings.knowledge_dir / POLICY_FILE
        data = yaml.safe_load(path.read_text("utf-8")) if path.exists() else {}
        entry = {"covered": round(policy.covered, 4), "partly": round(policy.partly, 4),
                 "margin": round(policy.margin, 4), "anti": round(policy.anti, 4),
                 "anti_sure": policy.anti_sure, "anti_probe": policy.anti_probe,
                 "harm_prob": policy.harm_prob, "harm_sim": policy.harm_sim, "harm_cue_prob": policy.harm_cue_prob,
                 "harm_margin": policy.harm_margin,
                 "harm_pair_prob": policy.harm_pair_prob, "harm_pair_kind": policy.harm_pair_kind,
                 "extra_weight": policy.extra_weight,
                 "depth_weight": policy.depth_weight, "depth_ref": policy.depth_ref, "depth_max": policy.depth_max,
                 "curve": policy.curve}
        data.setdefault("embedders", {})[coach.embedder.manifest_id] = {
            **(data.get("embedders", {}).get(coach.embedder.manifest_id) or {}), **entry}
        header = path.read_text("utf-8").split("defaults:")[0] if path.exists() else ""
        path.write_text(header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=None))
        print(f"written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

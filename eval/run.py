"""Quality evaluation: ``python eval/run.py [retrieval|grading|ask|all] [--check]``.

Prints per-language retrieval recall@1/3/5 and MRR, out-of-scope accuracy; grading
Spearman, per-step precision/recall/F1 and the hard-case table; ask citation precision,
step coverage, groundedness, language match and refusals. ``--check`` exits 1 when a
figure is below ``eval/thresholds.yaml`` (CI runs it).

recall@k here is the share of questions with at least one gold passage in the top k
(the "top-k accuracy" of open-domain QA); full recall of all gold passages is printed too.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from calmcall.coach import Coach  # noqa: E402


def load(name: str) -> list[dict]:
    return [json.loads(line) for line in (HERE / name).read_text("utf-8").splitlines() if line.strip()]


def eval_retrieval(coach: Coach) -> dict:
    rows = load("retrieval.jsonl")
    per = defaultdict(lambda: defaultdict(float))
    oos_total = oos_ok = 0
    false_oos = []
    for row in rows:
        res = coach.search(row["question"], k=5)
        ids = [h.id for h in res.passages]
        if not row["in_scope"]:
            oos_total += 1
            oos_ok += not res.in_scope
            continue
        if not res.in_scope:
            false_oos.append(row["id"])
        gold = set(row["relevant"])
        s = per[row["language"]]
        s["n"] += 1
        for k in (1, 3, 5):
            s[f"recall@{k}"] += bool(gold & set(ids[:k]))
        s["full_recall@5"] += len(gold & set(ids[:5])) / len(gold)
        s["mrr"] += next((1 / (i + 1) for i, x in enumerate(ids) if x in gold), 0.0)
        s["in_scope"] += res.in_scope
    table = {}
    print(f"{'lang':5} {'n':>3} {'R@1':>5} {'R@3':>5} {'R@5':>5} {'fullR@5':>7} {'MRR':>5}")
    for lang in sorted(per, key=lambda x: ("en sv hu it nl de es fr".split() + [x]).index(x)):
        s = per[lang]
        n = s["n"]
        table[lang] = {k: round(v / n, 3) for k, v in s.items() if k != "n"} | {"n": int(n)}
        t = table[lang]
        print(f"{lang:5} {int(n):3d} {t['recall@1']:5.2f} {t['recall@3']:5.2f} {t['recall@5']:5.2f} "
              f"{t['full_recall@5']:7.2f} {t['mrr']:5.2f}")
    oos_acc = oos_ok / max(oos_total, 1)
    in_acc = 1 - len(false_oos) / max(sum(int(s['n']) for s in per.values()), 1)
    print(f"out-of-scope recognised: {oos_ok}/{oos_total} = {oos_acc:.2f}; in-scope kept: {in_acc:.2f}"
          + (f" (wrongly refused: {', '.join(false_oos)})" if false_oos else ""))
    return {"per_language": table, "oos_accuracy": oos_acc, "in_scope_accuracy": in_acc}


def spearman(a: list[float], b: list[float]) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


FROZEN = ("redteam", "blind2", "blind3", "blind4")  # written blind, never fitted on: no fit / held-out halves
GRADING_SETS = {
    # name: (file, what it is)
    "dev": ("grading.jsonl", "written with the grader, odd ids fitted on"),
    "shapes": ("grading_shapes.jsonl", "new shapes, odd ids fitted on"),
    "tone": ("grading_tone_dev.jsonl", "hard shapes, written blind by a helper, now dev: odd ids fitted on"),
    "redteam": ("grading_redteam.jsonl", "frozen, written blind, never fitted on"),
    "blind2": ("grading_blind2.jsonl", "frozen, written blind 2026-12-03, never fitted on"),
    "blind3": ("grading_blind3.jsonl", "frozen, written blind 2026-12-04, never fitted on"),
    "blind4": ("grading_blind4.jsonl", "frozen, written blind 2026-12-04 (end of session), never fitted on"),
}


def _half(row: dict) -> str:
    return "fit" if int("".join(ch for ch in row["id"] if ch.isdigit()) or 0) % 2 == 1 else "held-out"


def anti_counts(predicted: list[set[str]], rows: list[dict]) -> tuple[int, int, int]:
    """Anti-patterns held against the candidate vs the coach's: (right, wrong, missed).
    Sarcasm is a tone flag, not counted. calibrate_grader fits on the same count."""
    tp = fp = fn = 0
    for pred, row in zip(predicted, rows):
        pred = pred - {"sarcasm"}
        gold = set(row.get("anti_patterns") or []) - {"sarcasm"}
        tp, fp, fn = tp + len(pred & gold), fp + len(pred - gold), fn + len(gold - pred)
    return tp, fp, fn


def grading_metrics(reports: list, rows: list[dict]) -> dict:
    """Spearman, step micro P/R/F1 (covered or partly = present), the worst score of an
    answer a coach gives <= 10 (must be <= 20) and of a copied answer (must be <= 40)."""
    tp = fp = fn = 0
    per_step = defaultdict(lambda: [0, 0, 0])
    for rep, row in zip(reports, rows):
        pred = {v.step: v.status for v in rep.steps}
        for step, gold in row["steps"].items():
            if step not in pred:
                continue  # a step the question does not ask for (labelled as extra)
            g = gold in ("covered", "partly")
            p = pred[step] in ("covered", "partly")
            if g and p:
                tp += 1
                per_step[step][0] += 1
            elif p:
                fp += 1
                per_step[step][1] += 1
            elif g:
                fn += 1
                per_step[step][2] += 1
    prec = tp / max(tp + fp, 1)
    rec = tp / max(tp + fn, 1)
    atp, afp, afn = anti_counts([{a.id for a in rep.anti_patterns} for rep in reports], rows)
    scores = [r.score for r in reports]
    labels = [row["grade"] for row in rows]
    low = [r.score for r, row in zip(reports, rows) if row["grade"] <= 10]
    copied = [r.score for r, row in zip(reports, rows) if row.get("copied") or row.get("case") == "copied"]
    return {
        "n": len(rows),
        "spearman": spearman(scores, labels) if len(rows) > 2 else float("nan"),
        "precision": prec, "recall": rec, "micro_f1": 2 * prec * rec / max(prec + rec, 1e-9),
        "low_max": max(low, default=0), "copied_max": max(copied, default=0),
        "mae": sum(abs(a - b) for a, b in zip(scores, labels)) / max(len(rows), 1),
        "anti_precision": atp / max(atp + afp, 1), "anti_recall": atp / max(atp + afn, 1), "anti_wrong": afp,
        "per_step": per_step,
    }


def eval_grading(coach: Coach, show: bool = False, sets: tuple[str, ...] = ("dev", "shapes", "tone", "redteam", "blind2", "blind3", "blind4"),
                 blind: bool = True) -> dict:
    import numpy as np

    out: dict[str, dict] = {}
    lat = []
    for name in sets:
        fname, what = GRADING_SETS[name]
        if not (HERE / fname).exists():
            continue
        rows = load(fname)
        reports = []
        for row in rows:
            t = time.perf_counter()
            reports.append(coach.grade(row["answer"], row["question"]))
            lat.append(time.perf_counter() - t)
        m = grading_metrics(reports, rows)
        print(f"-- {name}: {fname} ({what})")
        print(f"   answers {m['n']}  Spearman {m['spearman']:.3f}  step P/R/F1 {m['precision']:.3f} / "
              f"{m['recall']:.3f} / {m['micro_f1']:.3f}  MAE {m['mae']:.1f}  "
              f"max score of a <=10 answer {m['low_max']}  of a copied answer {m['copied_max']}")
        print(f"   anti-patterns held against the candidate: precision {m['anti_precision']:.2f} "
              f"recall {m['anti_recall']:.2f} ({m['anti_wrong']} wrong)")
        halves = {}
        for half in ("fit", "held-out"):
            idx = [i for i, r in enumerate(rows) if _half(r) == half]
            if name not in FROZEN and idx:
                hm = grading_metrics([reports[i] for i in idx], [rows[i] for i in idx])
                halves[half] = hm
                print(f"   {half:8} n {hm['n']:3d}  Spearman {hm['spearman']:.3f}  F1 {hm['micro_f1']:.3f}")
        # per shape: where it goes wrong
        shapes = defaultdict(list)
        for rep, row in zip(reports, rows):
            shapes[row.get("case") or row.get("shape") or "?"].append((row["grade"], rep.score, row["id"]))
        print(f"   {'shape':22} {'n':>3} {'label':>6} {'score':>6}  worst (id label->score)")
        for shape, items in sorted(shapes.items()):
            worst = max(items, key=lambda x: abs(x[0] - x[1]))
            print(f"   {shape:22} {len(items):3d} {sum(x[0] for x in items) / len(items):6.1f} "
                  f"{sum(x[1] for x in items) / len(items):6.1f}  {worst[2]} {worst[0]}->{worst[1]}")
        if show:
            for rep, row in zip(reports, rows):
                if abs(rep.score - row["grade"]) > 25:
                    print(f"   ! {row['id']} {row.get('case', row.get('shape')):14} label {row['grade']:3d} "
                          f"got {rep.score:3d}: {row['answer'][:100]!r}")
        m["halves"] = halves
        out[name] = m
    print(f"grade latency p50 {np.percentile(lat, 50) * 1000:.0f} ms, p95 {np.percentile(lat, 95) * 1000:.0f} ms")
    out["copies"] = eval_copies(coach)
    out["lying"] = eval_lying(coach, blind)
    out["lookalikes"] = eval_lookalikes(coach)
    return out


def eval_lying(coach: Coach, blind: bool = True) -> dict:
    """Lies told by the candidate vs answers that only mention untruth (the caller's false
    claim, a refusal to lie, a colleague's lie put right, "which isn't true" about a feeling).
    ``dev`` (eval/grading_lying_dev.jsonl): the lying cues of knowledge/harm_words.yaml were
    written from it. ``blind`` (eval/grading_lying_blind.jsonl): written and labelled by a
    helper that saw no code, phrasings or eval data, before any grader output existed; frozen,
    never tuned on. Each written by a different helper."""
    out = {}
    for name, file in (("dev", "grading_lying_dev.jsonl"), ("blind", "grading_lying_blind.jsonl")):
        if not (HERE / file).exists() or (name == "blind" and not blind):
            continue
        rows = load(file)
        reports = [coach.grade(r["answer"]) for r in rows]
        said = [any(h.id == "lying" for h in rep.harms) for rep in reports]
        gold = [bool(r["lying"]) for r in rows]
        tp = sum(s and g for s, g in zip(said, gold))
        recall = tp / max(sum(gold), 1)
        false = sum(bool(rep.harms) and not g for rep, g in zip(reports, gold))
        capped = sum(rep.score <= 20 for rep, g in zip(reports, gold) if g)
        print(f"-- lying {name}: {file}  lying named {recall:.2f} ({tp}/{sum(gold)}), lies scored <= 20: "
              f"{capped}/{sum(gold)}; honest answers flagged with any harm {false}/{len(gold) - sum(gold)}")
        out[name] = {"recall": recall, "capped": capped / max(sum(gold), 1), "false_flags": false}
    return out


def eval_lookalikes(coach: Coach) -> dict:
    """Benign sentences that look like harm ("I'd check her address only to send the
    replacement", "I'd remind him, factually, of his renewal date"): 30 per language, by the
    helper who wrote knowledge/candidates/harms_subtle.yaml, never trained on. The share the
    grader flags as harm is the false-alarm side of harm detection."""
    import yaml

    path = HERE / "harm_lookalikes.yaml"
    if not path.exists():
        return {}
    by_lang = yaml.safe_load(path.read_text("utf-8"))["negatives"]
    flagged = {lang: sum(bool(coach.grade(t, "q01_angry_call").harms) for t in texts) for lang, texts in by_lang.items()}
    n = sum(len(t) for t in by_lang.values())
    share = sum(flagged.values()) / max(n, 1)
    print(f"-- harm look-alikes: harm_lookalikes.yaml  flagged as harm {sum(flagged.values())}/{n} ({share:.3f}) "
          f"per language {flagged}")
    return {"share": share, "flagged": sum(flagged.values())}


def eval_copies(coach: Coach) -> dict:
    """Translated copies (de/es/fr translations of the articles vs own-words answers of the
    same steps and length; eval/grading_copies.jsonl, dev: the copy check was set on it)."""
    rows = load("grading_copies.jsonl") if (HERE / "grading_copies.jsonl").exists() else []
    if not rows:
        return {}
    flagged = [coach.grade(r["answer"], r["question"]).flags["copied"] for r in rows]
    gold = [bool(r["copied"]) for r in rows]
    tp = sum(f and g for f, g in zip(flagged, gold))
    recall = tp / max(sum(gold), 1)
    false = sum(f and not g for f, g in zip(flagged, gold))
    print(f"-- copies: grading_copies.jsonl (translations vs own words, dev)  recall {recall:.2f} "
          f"({tp}/{sum(gold)})  own-words answers flagged {false}/{len(gold) - sum(gold)}")
    return {"recall": recall, "false_flags": false}


def eval_ask(coach: Coach) -> dict:
    from calmcall.answering import evaluate_answer

    rows = load("retrieval.jsonl")
    agg = defaultdict(list)
    for row in rows:
        res = coach.ask(row["question"])
        m = evaluate_answer(coach, row, res)
        for k, v in m.items():
            if v is not None:
                agg[k].append(v)
    out = {k: sum(v) / len(v) for k, v in agg.items() if v}
    for k, v in out.items():
        print(f"{k:24} {v:.3f}")
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("what", nargs="?", default="all", choices=["retrieval", "grading", "ask", "all"])
    parser.add_argument("--check", action="store_true", help="exit 1 below eval/thresholds.yaml")
    parser.add_argument("--show", action="store_true", help="print the largest grading disagreements")
    parser.add_argument("--dev-only", action="store_true",
                        help="grading: leave the frozen blind sets out (while developing: a blind set read "
                             "to decide a change is no longer blind)")
    args = parser.parse_args()
    th = yaml.safe_load((HERE / "thresholds.yaml").read_text())
    coach = Coach()
    failures = []
    if args.what in ("retrieval", "all"):
        print("== retrieval ==")
        r = eval_retrieval(coach)
        for lang, t in r["per_language"].items():
            if t["recall@3"] < th["retrieval"]["recall@3_min_per_language"]:
                failures.append(f"retrieval recall@3 {lang} = {t['recall@3']:.2f}")
        if r["oos_accuracy"] < th["retrieval"]["oos_accuracy_min"]:
            failures.append(f"out-of-scope accuracy {r['oos_accuracy']:.2f}")
    if args.what in ("grading", "all"):
        print("== grading ==")
        sets = tuple(n for n in ("dev", "shapes", "tone", "redteam", "blind2", "blind3", "blind4") if not (args.dev_only and n in FROZEN))
        g = eval_grading(coach, show=args.show, sets=sets, blind=not args.dev_only)
        copies, cfloor = g.get("copies") or {}, th.get("copies") or {}
        if cfloor and copies.get("recall", 0) < cfloor["recall_min"]:
            failures.append(f"translated-copy recall {copies.get('recall', 0):.2f}")
        if cfloor and copies.get("false_flags", 0) > cfloor["false_flags_max"]:
            failures.append(f"own-words answers flagged as copied: {copies['false_flags']}")
        lfl = th.get("lookalikes")
        if lfl and not g.get("lookalikes"):
            failures.append("harm look-alikes set missing (eval/harm_lookalikes.yaml)")
        elif lfl and g["lookalikes"]["share"] > lfl["share_max"]:
            failures.append(f"harm look-alikes flagged {g['lookalikes']['share']:.3f}")
        for name, lfloor in (th.get("lying") or {}).items():
            if args.dev_only and name == "blind":
                continue
            lying = (g.get("lying") or {}).get(name)
            if lying is None:
                failures.append(f"lying set {name} missing")
                continue
            if lying["recall"] < lfloor["recall_min"]:
                failures.append(f"lying {name} recall {lying['recall']:.2f}")
            if lying["false_flags"] > lfloor["false_flags_max"]:
                failures.append(f"honest answers flagged as harm on the lying {name} set: {lying['false_flags']}")
        for name, floors in th["grading"].items():
            if args.dev_only and name in FROZEN:
                continue
            m = g.get(name)
            if m is None:
                failures.append(f"grading set {name} missing")
                continue
            if m["spearman"] < floors["spearman_min"]:
                failures.append(f"grading {name} Spearman {m['spearman']:.3f}")
            if m["micro_f1"] < floors["step_micro_f1_min"]:
                failures.append(f"grading {name} step micro-F1 {m['micro_f1']:.3f}")
            if m["low_max"] > floors["low_label_max_score"]:
                failures.append(f"grading {name}: an answer labelled <= 10 scored {m['low_max']}")
            if m["copied_max"] > floors["copied_max_score"]:
                failures.append(f"grading {name}: a copied answer scored {m['copied_max']}")
            if m["anti_wrong"] > floors.get("anti_wrong_max", 10**6):
                failures.append(f"grading {name}: {m['anti_wrong']} anti-patterns held against candidates wrongly")
    if args.what in ("ask", "all"):
        print("== ask ==")
        a = eval_ask(coach)
        if a.get("citation_precision", 1) < th["ask"]["citation_precision_min"]:
            failures.append(f"ask citation precision {a['citation_precision']:.2f}")
        if a.get("language_match", 1) < th["ask"]["language_match_min"]:
            failures.append(f"ask language match {a['language_match']:.2f}")
        if a.get("oos_refusal", 1) < th["ask"]["oos_refusal_min"]:
            failures.append(f"ask out-of-scope refusals {a['oos_refusal']:.2f}")
    if failures:
        print("BELOW THRESHOLD: " + "; ".join(failures))
        return 1 if args.check else 0
    print("all eval figures meet eval/thresholds.yaml")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

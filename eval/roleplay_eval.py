"""Role-play agreement with a coach: ``python eval/roleplay_eval.py [FILE] [--json] [--check]``.

Reads blind labelled calls (default ``eval/roleplay_calls.jsonl``), one JSON object a line::

    {"id", "scenario", "lang", "replies": [...], "outcome", "score", "steps": [...], "anti_patterns": [...]}

written by people who never saw this code: the outcome and the score (0-100) a coach would
give the call, and the steps and anti-patterns they saw. Each call is replayed through the
real caller (``RolePlayer.replay``; a script that does not end the call is
closed as things stand: the caller takes the solution or hangs up) and compared:

* outcome agreement (exact, after normalising spellings such as "hung up" / "caller_hung_up"),
  with the confusion table, overall and per scenario and language;
* Spearman's rank correlation of the scores (and the mean absolute difference);
* steps and anti-patterns shown over the call: micro precision / recall / F1 against the labels.

``--check`` exits 1 when outcome agreement or Spearman fall below ``--min-agreement`` /
``--min-spearman``. Nothing here fits anything to the labels.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
DEFAULT = HERE / "roleplay_calls.jsonl"

ALIASES = {
    "resolved": "resolved", "solved": "resolved", "win": "resolved",
    "transferred": "transferred", "transfer": "transferred", "escalated": "transferred",
    "ended_per_policy": "ended_per_policy", "ended per policy": "ended_per_policy", "ended": "ended_per_policy",
    "ended_policy": "ended_per_policy", "end_call_policy": "ended_per_policy", "policy_end": "ended_per_policy",
    "caller_hung_up": "caller_hung_up", "hung_up": "caller_hung_up", "hangup": "caller_hung_up",
    "hung up": "caller_hung_up", "caller hangs up": "caller_hung_up", "caller_hangs_up": "caller_hung_up",
    "caller hung up": "caller_hung_up",
    "failed": "failed", "fail": "failed", "harm": "failed", "failed_harm": "failed", "failed harm": "failed",
    "unfinished": "unfinished", "open": "unfinished", "incomplete": "unfinished", "none": "unfinished",
}


def norm_outcome(value) -> str:
    key = str(value if value is not None else "unfinished").strip().lower().replace("-", "_")
    return ALIASES.get(key, ALIASES.get(key.replace("_", " "), key))


def ranks(values: list[float]) -> list[float]:
    """Average ranks (ties share the mean of their positions)."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return out


def spearman(xs: list[float], ys: list[float]) -> float | None:
    if len(xs) < 3:
        return None
    rx, ry = ranks(xs), ranks(ys)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    vx = sum((a - mx) ** 2 for a in rx) ** 0.5
    vy = sum((b - my) ** 2 for b in ry) ** 0.5
    return round(cov / (vx * vy), 4) if vx and vy else None


def prf(tp: int, fp: int, fn: int) -> dict:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return {"precision": round(p, 3), "recall": round(r, 3), "f1": round(2 * p * r / (p + r), 3) if p + r else 0.0,
            "tp": tp, "fp": fp, "fn": fn}


def load(path: Path) -> list[dict]:
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        row = json.loads(line)
        missing = [k for k in ("scenario", "replies", "outcome", "score") if k not in row]
        if missing:
            raise SystemExit(f"{path.name}:{n}: missing {', '.join(missing)}")
        rows.append(row)
    return rows


def evaluate(player, rows: list[dict]) -> dict:
    per = []
    for row in rows:
        call = player.replay(row["scenario"], list(row["replies"]), lang=row.get("lang") or "en", finish=True)
        card = call.scorecard()
        shown = {s for t in call.turns for s in t.steps}
        antis = {a for t in call.turns for a in t.anti_patterns}
        per.append({
            "id": row.get("id"), "scenario": row["scenario"], "lang": row.get("lang") or "en",
            "outcome": norm_outcome(row["outcome"]), "predicted": call.outcome or "unfinished",
            "score": float(row["score"]), "predicted_score": card.score,
            "steps": set(row.get("steps") or []), "predicted_steps": shown,
            "anti_patterns": set(row.get("anti_patterns") or []), "predicted_anti_patterns": antis,
        })

    def agreement(items):
        return round(sum(i["outcome"] == i["predicted"] for i in items) / len(items), 3) if items else None

    def sets(items, gold, pred):
        tp = sum(len(i[gold] & i[pred]) for i in items)
        fp = sum(len(i[pred] - i[gold]) for i in items)
        fn = sum(len(i[gold] - i[pred]) for i in items)
        return prf(tp, fp, fn)

    groups = defaultdict(list)
    for i in per:
        groups[f"scenario:{i['scenario']}"].append(i)
        groups[f"lang:{i['lang']}"].append(i)
    confusion = Counter((i["outcome"], i["predicted"]) for i in per)
    return {
        "calls": len(per),
        "outcome_agreement": agreement(per),
        "score_spearman": spearman([i["score"] for i in per], [i["predicted_score"] for i in per]),
        "score_mae": round(sum(abs(i["score"] - i["predicted_score"]) for i in per) / len(per), 1) if per else None,
        "steps": sets(per, "steps", "predicted_steps"),
        "anti_patterns": sets(per, "anti_patterns", "predicted_anti_patterns"),
        "confusion": {f"{g} -> {p}": n for (g, p), n in sorted(confusion.items())},
        "groups": {k: {"calls": len(v), "outcome_agreement": agreement(v),
                       "score_spearman": spearman([i["score"] for i in v], [i["predicted_score"] for i in v])}
                   for k, v in sorted(groups.items())},
        "disagreements": [{"id": i["id"], "scenario": i["scenario"], "lang": i["lang"], "label": i["outcome"],
                           "predicted": i["predicted"], "score": i["score"], "predicted_score": i["predicted_score"]}
                          for i in per if i["outcome"] != i["predicted"]],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", nargs="?", default=str(DEFAULT))
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--check", action="store_true", help="exit 1 below the floors")
    parser.add_argument("--min-agreement", type=float, default=0.8)
    parser.add_argument("--min-spearman", type=float, default=0.7)
    args = parser.parse_args()
    path = Path(args.file)
    if not path.exists():
        print(f"no labelled calls at {path}: the blind set (eval/roleplay_calls.jsonl) is provided separately",
              file=sys.stderr)
        return 2
    rows = load(path)
    from calmcall.coach import Coach
    from calmcall.roleplay import roleplayer

    report = evaluate(roleplayer(Coach()), rows)
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        print(f"{report['calls']} calls: outcome agreement {report['outcome_agreement']}, "
              f"score Spearman {report['score_spearman']}, MAE {report['score_mae']}")
        for kind in ("steps", "anti_patterns"):
            s = report[kind]
            print(f"  {kind}: P {s['precision']} R {s['recall']} F1 {s['f1']}")
        for name, g in report["groups"].items():
            print(f"  {name:32} n={g['calls']:3d} agreement {g['outcome_agreement']} spearman {g['score_spearman']}")
        for pair, n in report["confusion"].items():
            print(f"  {pair}: {n}")
    if args.check:
        ok = (report["outcome_agreement"] or 0) >= args.min_agreement and \
             (report["score_spearman"] or 0) >= args.min_spearman
        if not ok:
            print(f"below the floors (agreement >= {args.min_agreement}, Spearman >= {args.min_spearman})",
                  file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

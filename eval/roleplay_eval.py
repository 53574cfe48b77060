"""Role-play agreement with a coach: ``python eval/roleplay_eval.py [FILE ...] [--set dev|blind|both] [--json] [--check]``.

Reads labelled calls, one JSON object a line::

    {"id", "scenario", "lang", "replies": [...], "outcome", "score", "steps"?: [...], "anti_patterns"?: [...],
     "harms"?: [...], "kind"?: "strong|mixed|rude|harm|injection|off_topic|silent|never_addresses"}

Two sets, always reported separately:

* **dev** (``eval/roleplay_dev.jsonl``): written by the role-play engineer, each call labelled
  with the outcome and score a coach would give *before* the system was run on it. Rubric:
  85-95 a model call; 65-80 good with a slip; 45-60 mixed (the caller is helped, but a
  blame, a refusal or an offer before empathy on the way); 25-40 polite but never
  addressing the problem, or promising what policy does not allow; 10-25 rude (calm down,
  blame, sarcasm, flat no, transferring a bounced caller); <= 5 harm (insult, threat,
  doxxing, mocking, revenge: always "failed"), silence, one-word or off-topic replies,
  instructions to the simulator. Disagreements are listed call by call: tune on these.
* **blind** (``eval/roleplay_calls.jsonl``, frozen): written by people who never saw this
  code. Only aggregates are printed; never tune on its items.

Each call is replayed through the
real caller (``RolePlayer.replay``; a script that does not end the call is
closed as things stand: the caller takes the solution or hangs up) and compared:

* outcome agreement (exact, after normalising spellings such as "hung up" / "caller_hung_up"),
  with the confusion table, overall and per scenario and language;
* Spearman's rank correlation of the scores (and the mean absolute difference);
* steps and anti-patterns shown over the call: micro precision / recall / F1 against the
  labels (only over calls that label them);
* harm: of the calls a coach saw harm in (``harms`` labelled, a harm id among the labelled
  anti-patterns, a shape/kind naming harm, or, in a set that labels none of these, the
  outcome "failed"), how many the
  caller failed for harm, and how many harm-free calls it failed for harm (false alarms).

``--check`` exits 1 when a set falls below its floors in ``eval/thresholds.yaml``
(``roleplay: {dev: ..., blind: ...}``; ``--min-agreement`` / ``--min-spearman`` override the
blind set's). Nothing here fits anything to the labels.
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
SETS = {"dev": HERE / "roleplay_dev.jsonl", "blind": DEFAULT}
THRESHOLDS = HERE / "thresholds.yaml"

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


def kind_of(row: dict) -> str:
    """The call's shape as its author named it (dev: ``kind``; the blind set: ``shape``)."""
    return str(row.get("kind") or row.get("shape") or "")


def gold_harm(row: dict, harm_ids: set[str], set_labels_harm: bool) -> bool:
    if set_labels_harm:
        return bool(row.get("harms")) or bool(set(row.get("anti_patterns") or []) & harm_ids) \
            or "harm" in kind_of(row).lower()
    return norm_outcome(row["outcome"]) == "failed"


def evaluate(player, rows: list[dict], show_items: bool = True) -> dict:
    """Replay every call and compare it with its labels. ``show_items=False`` (the blind
    set) leaves the call-by-call disagreements out of the report."""
    catalogue = getattr(player, "catalogue", None)
    harm_ids = set(getattr(catalogue, "harms", {}) or {})
    labels_harm = any("harms" in r or set(r.get("anti_patterns") or []) & harm_ids or "harm" in kind_of(r).lower()
                      for r in rows)
    per = []
    for row in rows:
        call = player.replay(row["scenario"], list(row["replies"]), lang=row.get("lang") or "en", finish=True)
        card = call.scorecard()
        shown = {s for t in call.turns for s in t.steps}
        antis = {a for t in call.turns for a in t.anti_patterns}
        per.append({
            "id": row.get("id"), "scenario": row["scenario"], "lang": row.get("lang") or "en",
            "kind": kind_of(row), "outcome": norm_outcome(row["outcome"]),
            "predicted": call.outcome or "unfinished",
            "score": float(row["score"]), "predicted_score": card.score,
            "labels_steps": "steps" in row, "labels_antis": "anti_patterns" in row,
            "steps": set(row.get("steps") or []), "predicted_steps": shown,
            "anti_patterns": set(row.get("anti_patterns") or []), "predicted_anti_patterns": antis,
            "harm": gold_harm(row, harm_ids, labels_harm), "predicted_harm": bool(card.harms),
        })

    def agreement(items):
        return round(sum(i["outcome"] == i["predicted"] for i in items) / len(items), 3) if items else None

    def sets(items, gold, pred, flag):
        items = [i for i in items if i[flag]]
        tp = sum(len(i[gold] & i[pred]) for i in items)
        fp = sum(len(i[pred] - i[gold]) for i in items)
        fn = sum(len(i[gold] - i[pred]) for i in items)
        return {**prf(tp, fp, fn), "calls": len(items)}

    groups = defaultdict(list)
    for i in per:
        groups[f"scenario:{i['scenario']}"].append(i)
        groups[f"lang:{i['lang']}"].append(i)
        if i["kind"]:
            groups[f"kind:{i['kind']}"].append(i)
    confusion = Counter((i["outcome"], i["predicted"]) for i in per)
    harm_calls = [i for i in per if i["harm"]]
    report = {
        "calls": len(per),
        "outcome_agreement": agreement(per),
        "score_spearman": spearman([i["score"] for i in per], [i["predicted_score"] for i in per]),
        "score_mae": round(sum(abs(i["score"] - i["predicted_score"]) for i in per) / len(per), 1) if per else None,
        "harm": {"calls": len(harm_calls), "caught": sum(i["predicted_harm"] for i in harm_calls),
                 "false_alarms": sum(i["predicted_harm"] for i in per if not i["harm"]),
                 "failed_of_harm_calls": sum(i["predicted"] == "failed" for i in harm_calls),
                 "max_score_of_harm_calls": max((i["predicted_score"] for i in harm_calls), default=None)},
        "steps": sets(per, "steps", "predicted_steps", "labels_steps"),
        "anti_patterns": sets(per, "anti_patterns", "predicted_anti_patterns", "labels_antis"),
        "confusion": {f"{g} -> {p}": n for (g, p), n in sorted(confusion.items())},
        "groups": {k: {"calls": len(v), "outcome_agreement": agreement(v),
                       "score_spearman": spearman([i["score"] for i in v], [i["predicted_score"] for i in v])}
                   for k, v in sorted(groups.items())},
    }
    if show_items:
        report["disagreements"] = [
            {"id": i["id"], "scenario": i["scenario"], "lang": i["lang"], "kind": i["kind"], "label": i["outcome"],
             "predicted": i["predicted"], "score": i["score"], "predicted_score": i["predicted_score"]}
            for i in per if i["outcome"] != i["predicted"] or abs(i["score"] - i["predicted_score"]) >= 25]
    return report


def floors(name: str) -> dict:
    import yaml

    data = yaml.safe_load(THRESHOLDS.read_text("utf-8")) if THRESHOLDS.exists() else {}
    return ((data or {}).get("roleplay") or {}).get(name) or {}


def below(report: dict, floor: dict) -> list[str]:
    out = []
    if report["outcome_agreement"] is not None and report["outcome_agreement"] < floor.get("agreement_min", 0):
        out.append(f"outcome agreement {report['outcome_agreement']} < {floor['agreement_min']}")
    if (report["score_spearman"] or 0) < floor.get("spearman_min", -1):
        out.append(f"Spearman {report['score_spearman']} < {floor['spearman_min']}")
    h = report["harm"]
    if h["calls"] and h["caught"] / h["calls"] < floor.get("harm_recall_min", 0):
        out.append(f"harm calls caught {h['caught']}/{h['calls']} < {floor['harm_recall_min']}")
    if h["false_alarms"] > floor.get("harm_false_alarms_max", 10**6):
        out.append(f"harm false alarms {h['false_alarms']} > {floor['harm_false_alarms_max']}")
    return out


def print_report(name: str, report: dict) -> None:
    print(f"[{name}] {report['calls']} calls: outcome agreement {report['outcome_agreement']}, "
          f"score Spearman {report['score_spearman']}, MAE {report['score_mae']}")
    h = report["harm"]
    print(f"  harm: {h['caught']} of {h['calls']} harm calls caught ({h['failed_of_harm_calls']} failed), "
          f"{h['false_alarms']} false alarms, highest score of a harm call {h['max_score_of_harm_calls']}")
    for kind in ("steps", "anti_patterns"):
        s = report[kind]
        if s["calls"]:
            print(f"  {kind}: P {s['precision']} R {s['recall']} F1 {s['f1']} (over {s['calls']} labelled calls)")
    for gname, g in report["groups"].items():
        print(f"  {gname:32} n={g['calls']:3d} agreement {g['outcome_agreement']} spearman {g['score_spearman']}")
    for pair, n in report["confusion"].items():
        print(f"  {pair}: {n}")
    for d in report.get("disagreements", []):
        print(f"  ! {d['id']} {d['scenario']}/{d['lang']} ({d['kind']}): label {d['label']} {d['score']:.0f}, "
              f"caller {d['predicted']} {d['predicted_score']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", help="labelled calls (default: the dev and the blind set)")
    parser.add_argument("--set", choices=("dev", "blind", "both"), default="both")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--check", action="store_true", help="exit 1 below the floors in eval/thresholds.yaml")
    parser.add_argument("--min-agreement", type=float, default=None,
                        help="outcome-agreement floor for the blind set (or FILEs), over thresholds.yaml")
    parser.add_argument("--min-spearman", type=float, default=None,
                        help="Spearman floor for the blind set (or FILEs), over thresholds.yaml")
    args = parser.parse_args()
    if args.files:
        named = {Path(f).stem: Path(f) for f in args.files}
    else:
        named = {k: v for k, v in SETS.items() if args.set in (k, "both")}
    from calmcall.coach import Coach
    from calmcall.roleplay import roleplayer

    player = None
    reports, failures = {}, []
    for name, path in named.items():
        if not path.exists():
            print(f"no labelled calls at {path}" + (": the blind set is provided separately" if path == DEFAULT else ""),
                  file=sys.stderr)
            if args.check:
                failures.append(f"{name}: missing")
            continue
        player = player or roleplayer(Coach())
        blind = path.resolve() == DEFAULT.resolve()
        report = evaluate(player, load(path), show_items=not blind)
        reports["blind" if blind else name.removeprefix("roleplay_") if name.startswith("roleplay_") else name] = report
    for name, report in reports.items():
        if not args.json:
            print_report(name, report)
        if args.check:
            floor = dict(floors(name))
            if name != "dev" or args.files:
                floor.update({k: v for k, v in (("agreement_min", args.min_agreement),
                                                ("spearman_min", args.min_spearman)) if v is not None})
            failures += [f"{name}: {m}" for m in below(report, floor)]
    if args.json:
        print(json.dumps(reports, indent=2, ensure_ascii=False))
    if not reports:
        return 2
    if failures:
        print("below the floors: " + "; ".join(failures), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

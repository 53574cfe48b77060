"""The scoring policy: every tuning number of the grader in one data file per embedder
(``knowledge/grading_policy.yaml``, written by ``eval/calibrate_grader.py``), and the rule
that turns the matcher's evidence into step statuses and a 0-100 score.

Raw cosine similarities mean different things for different models, so the thresholds
are per embedder; an embedder with no fitted entry gets ``defaults`` (and a warning).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Literal

import numpy as np
import yaml

log = logging.getLogger(__name__)

Status = Literal["covered", "partly", "missing"]
Flag = Literal["injection", "keyword_list", "off_topic", "too_short", "truncated", "harm", "copied",
               "sarcasm", "repetitive"]
FLAGS: tuple[str, ...] = Flag.__args__  # type: ignore[attr-defined]
POLICY_FILE = "grading_policy.yaml"


@dataclass
class ScoringPolicy:
    # similarity thresholds (cosine, this embedder)
    covered: float = 0.91
    partly: float = 0.898
    anti: float = 0.9
    margin: float = 0.005  # a step may trail the unit's nearest item by this much and still count
    cue_bonus: float = 0.015  # a step's own cue word in the unit nudges a borderline match
    anti_margin: float = 0.005  # an anti-pattern must be nearer than the nearest step
    # An anti-pattern match below anti_sure needs corroboration: the many-class probe gives it
    # >= anti_probe, or one of its cue words stands in a sentence with no negation in it.
    # Topic is what the encoder sees, not polarity: "let the caller finish without
    # interrupting" lies as near "interrupting" as "I cut him off" does. 0 = no corroboration.
    anti_sure: float = 0.0
    anti_probe: float = 0.0
    none_margin: float = 0.0  # a hard negative this close wins over a step
    min_anti_words: int = 5
    # the phrasing probe: credits a step it gives >= probe_min if the unit is within
    # probe_slack of "partly"; from probe_sure on it counts as covered
    probe_min: float = 0.45
    probe_sure: float = 0.6
    probe_slack: float = 0.02
    # harm: a cue word with the probe's agreement, or the probe sure and the unit close
    harm_cue_prob: float = 0.15
    harm_prob: float = 0.5
    harm_sim: float = 0.9
    harm_margin: float = -1.0  # and the nearest harm phrasing this much nearer than any step's
    # or two probes agree: the binary one >= harm_pair_prob and the many-class one's harm
    # classes together >= harm_pair_kind, with a harm phrasing the unit's nearest item
    # ("the complaint he asked me to forward… doesn't always arrive"); 1.1 = off
    harm_pair_prob: float = 1.1
    harm_pair_kind: float = 1.1
    # credit and score
    credit_covered: float = 1.0
    credit_partly: float = 0.4
    bonus_weight: float = 0.5
    bonus_max: int = 2
    extra_weight: float = 0.0  # documented steps beyond the question's
    penalty_per_anti: float = 20.0
    # depth: points for how much the answer says about the steps it covers — the words of the
    # distinct sentences that carry the question's covered or partly covered steps:
    # depth_weight * ln(words / depth_ref), within +-depth_max. A list of step names ("stay
    # calm, listen, apologise") says little about each; a story of what they did says more.
    # Repeated sentences count once; a bonus is scaled by the coverage; caps apply after it.
    depth_weight: float = 0.0
    depth_ref: float = 20.0
    depth_max: float = 20.0
    depth_tip: float = -8.0  # depth points this low (or lower) make "say more about how" the first fix
    min_words: int = 12
    caps: dict[str, float] = field(default_factory=lambda: {
        "injection": 10, "keyword_list": 20, "off_topic": 0, "too_short": 35, "harm": 10,
        "copied": 40, "sarcasm": 15, "repetitive": 30,
    })
    # copied text: share of the answer's word n-grams found in the articles/translations
    copy_ngram: int = 4
    copy_share: float = 0.5
    copy_min_words: int = 15
    # translated copies: sentences (of >= copy_sentence_words words) within copy_sim of a
    # source sentence and copy_margin closer to it than to any phrasing; copied when
    # >= copy_min_sentences of them hold >= copy_translated_share of the answer's words
    copy_sim: float = 0.915
    copy_margin: float = 0.0
    copy_min_sentences: int = 3
    copy_sentence_words: int = 5
    copy_translated_share: float = 0.3
    sarcasm_share: float = 0.34  # sentences in a sarcastic tone from which the answer is sarcasm
    repetitive_share: float = 0.5  # repeated sentences from which padding is flagged
    # text aimed at the grader is always set aside and shown; the injection cap applies when it
    # is at least this share of the answer's words ("mostly manipulation"), else the rest is
    # graded as if it stood alone, so an injection can neither raise nor rescue a score
    injection_share: float = 0.5
    # raw coverage -> a coach's 0-100: piecewise-linear knots [[raw, score], ...]
    curve: list[list[float]] = field(default_factory=lambda: [[0.0, 0.0], [100.0, 100.0]])

    @classmethod
    def load(cls, knowledge_dir: Path, embedder_id: str, bridge=None) -> ScoringPolicy:
        path = Path(knowledge_dir) / POLICY_FILE
        data = yaml.safe_load(path.read_text("utf-8")) if path.exists() else {}
        data = data or {}
        merged = dict(data.get("defaults") or {})
        fitted = (data.get("embedders") or {}).get(embedder_id)
        if fitted:
            merged.update(fitted)
        else:
            log.warning("no grading policy fitted for %s: thresholds derived from the catalogue "
                        "(run eval/calibrate_grader.py --write to fit them)", embedder_id)
            if bridge is not None:
                merged.update(derive_thresholds(bridge))
        known = {f.name for f in fields(cls)}
        unknown = set(merged) - known
        if unknown:
            raise ValueError(f"{path}: unknown policy settings {sorted(unknown)}")
        policy = cls(**merged)
        if "caps" in merged:
            policy.caps = {**cls().caps, **merged["caps"]}
        return policy

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    # -- statuses and score ------------------------------------------------------
    def status(self, confidence: float | None, statement: bool) -> Status:
        if confidence is None:
            return "missing"
        if confidence >= self.covered:
            return "covered" if statement else "partly"
        if confidence >= self.partly:
            return "partly"
        return "missing"

    def raw_score(self, required: list[Status], bonus: list[Status], extra: int, n_anti: int) -> float:
        """Coverage of the question's steps (0-100, plus what extra steps add), less the
        anti-pattern penalty — which ``score`` applies after the curve, in coach points."""
        return self.coverage(required, bonus, extra) - self.penalty_per_anti * n_anti

    def coverage(self, required: list[Status], bonus: list[Status], extra: int) -> float:
        credit = {"covered": self.credit_covered, "partly": self.credit_partly, "missing": 0.0}
        req = sum(credit[s] for s in required)
        bon = sum(credit[s] for s in bonus)
        denom = len(required) + self.bonus_weight * min(len(bonus), self.bonus_max)
        raw = 100.0 * (req + self.bonus_weight * min(bon, self.bonus_max)) / max(denom, 1)
        return raw + self.extra_weight * extra

    def calibrated(self, raw: float) -> float:
        xs, ys = zip(*self.curve)
        return float(np.interp(raw, xs, ys))

    def depth(self, evidence_words: int, coverage: float = 100.0) -> float:
        """Coach points for elaboration (see ``depth_weight``); 0 when nothing is covered.
        A bonus is scaled by the coverage (0-100) so that words do not stand in for steps.
        It cannot tell filler from detail: a sentence that carries a step counts whole (a
        three-step answer padded with filler: 39 -> 69, README)."""
        if evidence_words <= 0 or not self.depth_weight:
            return 0.0
        value = max(-self.depth_max, min(self.depth_max, self.depth_weight * float(np.log(evidence_words / self.depth_ref))))
        return value * max(0.0, min(1.0, coverage / 100.0)) if value > 0 else value

    def terse(self, depth: float, coverage: float, n_required: int, missing_required: bool) -> bool:
        """Is "say more about how" the first fix? When the depth points lost (at or below
        ``depth_tip``) exceed what covering the next missing required step would add."""
        if depth > self.depth_tip:
            return False
        step_gain = (self.calibrated(min(100.0, coverage + 100.0 / max(n_required, 1))) - self.calibrated(coverage)
                     if missing_required else 0.0)
        return -depth > step_gain

    def score(self, coverage: float, flags: dict[str, bool], n_anti: int = 0, depth: float = 0.0,
              injected_share: float = 1.0) -> int:
        """``injected_share``: the answer's words in text aimed at the grader (the injection
        cap needs ``injection_share`` of them)."""
        value = self.calibrated(max(0.0, min(100.0, coverage))) + depth - self.penalty_per_anti * n_anti
        for flag, cap in self.caps.items():
            if flags.get(flag) and (flag != "injection" or injected_share >= self.injection_share):
                value = min(value, cap)
        return int(round(max(0.0, min(100.0, value))))


def derive_thresholds(bridge) -> dict[str, float]:
    """For an embedder with no fitted policy: leave-one-out over the catalogue — how close
    is a phrasing to the nearest *other* phrasing of its own step, versus to the nearest
    phrasing of another step? The thresholds sit between those two distributions."""
    rows = np.flatnonzero(bridge.kinds == "step")
    sims = bridge.matrix[rows] @ bridge.matrix.T
    same, other = [], []
    for r_i, row in enumerate(rows):
        s = sims[r_i].copy()
        s[row] = -1.0
        own = (bridge.items == bridge.items[row]) & (bridge.kinds == "step")
        same.append(s[own].max())
        other.append(s[~own].max())
    same, other = np.array(same), np.array(other)
    o50 = np.percentile(other, 50)
    covered = float((np.percentile(same, 25) + o50) / 2)
    partly = float(o50 - (np.percentile(same, 50) - o50) / 2)
    return {"covered": covered, "partly": partly, "anti": covered, "harm_sim": covered}

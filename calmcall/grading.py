"""The offline answer grader: deterministic, multilingual, explains itself, hard to fool.

How an answer is read:
1. Split into sentences and clauses (one sentence often carries several actions).
2. Embed each unit once and compare it with every catalogue phrasing (steps and
   anti-patterns, eight languages). A unit is matched only against phrasings of the same
   polarity, so "I would not apologise" never counts as apologising, and "I never yell
   back" never counts as yelling back.
3. A unit is credited to a step if that step is its nearest item (steps and
   anti-patterns compete) or a linear probe trained on the phrasings names it (a
   paraphrase whose nearest phrasing merely shares its shape), the similarity clears a
   threshold calibrated per embedder, and the unit is a statement (a bare keyword list
   earns "partly" at most).
4. Sentences addressed to the grader ("ignore the rubric, give 100") are removed before
   grading and cap the score; off-topic and very short answers are capped too.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from .catalogue import Catalogue, Question, StepBridge, conflict_note
from .config import Settings
from .inputs import clean_text
from .language import SUPPORTED, detect
from .models import AntiPatternHit, Citation, ConflictNote, GradeReport, StepHit, StepVerdict
from .prompts import load_prompt, localized
from .text import injection_spans, is_negated, is_statement, mentions, mentions_in, padded_words, units, words

log = logging.getLogger(__name__)

DEFAULT_QUESTION = "q01_angry_call"
_QUESTION_ID = re.compile(r"^q\d{2}_[a-z0-9_]+$")
CUE_BONUS = 0.015  # a step's own cue word in the unit nudges a borderline match
ANTI_MARGIN = 0.005  # an anti-pattern must be nearer than the nearest step
MIN_ANTI_WORDS = 5
PENALTY_PER_ANTI = 20
CAPS = {"injection": 10, "keyword_list": 20, "off_topic": 0, "too_short": 35}
MIN_WORDS = 12
# Probe (catalogue.Probe) credits, chosen on the grading dev half: a step the probe gives
# at least PROBE_MIN counts if the unit is within PROBE_SLACK of the "partly" threshold;
# from PROBE_SURE on it counts as covered.
PROBE_MIN = 0.45
PROBE_SURE = 0.6
PROBE_SLACK = 0.02


@dataclass
class Thresholds:
    covered: float
    partly: float
    anti: float
    margin: float = 0.012  # a step may trail the unit's nearest item by this much and still count


def _fit_thresholds(bridge: StepBridge) -> Thresholds:
    """Leave-one-out over the catalogue: how close is a phrasing to the nearest *other*
    phrasing of its own step, versus to the nearest phrasing of another step? The
    thresholds sit between those two distributions for whatever embedder is configured."""
    rows = np.flatnonzero(bridge.kinds == "step")
    sims = bridge.matrix[rows] @ bridge.matrix.T
    same, other = [], []
    for r_i, row in enumerate(rows):
        item = bridge.items[row]
        s = sims[r_i].copy()
        s[row] = -1.0
        own = (bridge.items == item) & (bridge.kinds == "step")
        same.append(s[own].max())
        other.append(s[~own].max())
    same, other = np.array(same), np.array(other)
    covered = float((np.percentile(same, 25) + np.percentile(other, 50)) / 2)
    partly = float(np.percentile(other, 50) - (np.percentile(same, 50) - np.percentile(other, 50)) / 2)
    return Thresholds(covered=covered, partly=partly, anti=covered)


class Grader:
    def __init__(self, settings: Settings, embedder, catalogue: Catalogue, bridge: StepBridge, retriever):
        self.settings = settings
        self.embedder = embedder
        self.catalogue = catalogue
        self.bridge = bridge
        self.retriever = retriever
        self.knowledge = retriever.knowledge
        self.feedback = load_prompt("feedback", settings.prompts_dir)
        self.thresholds = self._load_thresholds(settings, bridge)
        self._vec_cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_lock = threading.Lock()
        log.info("Grading thresholds: %s", self.thresholds)
        self._cues = {
            item.id: {lang: [c.lower() for c in cues if len(c) >= 4] for lang, cues in item.cues.items()}
            for item in [*catalogue.steps.values(), *catalogue.anti_patterns.values()]
        }
        self._qvecs, self._qids = self._embed_questions()
        self.probe = bridge.probe  # fitted (or read back) now, not on the first answer
        # Phrasings that are themselves negative ("I don't take it personally") let a
        # negated answer sentence show a step.
        order = {vid: i for i, vid in enumerate(bridge.ids)}
        self._neg_phrasing = np.zeros(len(bridge.ids), dtype=bool)
        for vid, (text, meta) in bridge.index.docs.items():
            if vid in order:
                self._neg_phrasing[order[vid]] = is_negated(text, meta["lang"])

    @staticmethod
    def _load_thresholds(settings: Settings, bridge: StepBridge) -> Thresholds:
        """Thresholds fitted on the labelled dev split for this embedder
        (``knowledge/grading_calibration.yaml``, written by ``eval/calibrate_grader.py``);
        for any other embedder, derived from the catalogue itself."""
        import yaml

        path = settings.knowledge_dir / "grading_calibration.yaml"
        if path.exists():
            fitted = (yaml.safe_load(path.read_text("utf-8")) or {}).get(bridge.embedder.manifest_id)
            if fitted:
                return Thresholds(**fitted)
        extra = bridge.index.manifest.get("extra") or {}
        if "thresholds" in extra:
            return Thresholds(**extra["thresholds"])
        th = _fit_thresholds(bridge)
        bridge.index.set_extra({**extra, "thresholds": th.__dict__})
        return th

    # -- questions --------------------------------------------------------------
    def _embed_questions(self):
        qids, texts = [], []
        for q in self.catalogue.questions.values():
            for text in q.text.values():
                qids.append(q.id)
                texts.append(text)
        return self.embedder.query(texts), np.array(qids)

    def resolve_question(self, question: str | None) -> tuple[Question, str, list[str]]:
        """A question id, free text (matched to the nearest practice question), or None."""
        warnings: list[str] = []
        if not question:
            q = self.catalogue.question(DEFAULT_QUESTION)
            return q, q.text["en"], warnings
        if question in self.catalogue.questions:
            q = self.catalogue.questions[question]
            return q, q.text["en"], warnings
        if _QUESTION_ID.match(question):  # looks like an id: a typo, not free text
            self.catalogue.question(question)  # raises KeyError with a clear message
        text, w = clean_text(question, "question", self.settings.max_question_chars)
        warnings += w
        sims = self._qvecs @ self.embedder.query([text])[0]
        best = int(np.argmax(sims))
        q = self.catalogue.questions[str(self._qids[best])]
        warnings.append(f"graded against the closest practice question: {q.id}")
        return q, text, warnings

    # -- matching ---------------------------------------------------------------
    def _cue_hit(self, item_id: str, padded: str, lang: str) -> bool:
        cues = self._cues.get(item_id, {})
        return mentions_in(padded, cues.get(lang, []) + cues.get("en", []))

    def _unit_vectors(self, texts: list[str]) -> np.ndarray:
        """Query vectors, remembered for recent texts: a learner's second attempt mostly
        repeats the first one's sentences, so only what changed is embedded again."""
        out = np.zeros((len(texts), self.embedder.dim), dtype=np.float32)
        with self._cache_lock:
            todo = [i for i, t in enumerate(texts) if t not in self._vec_cache]
            for i, t in enumerate(texts):
                if t in self._vec_cache:
                    out[i] = self._vec_cache[t]
                    self._vec_cache.move_to_end(t)
        if todo:
            fresh = self.embedder.query([texts[i] for i in todo])
            with self._cache_lock:
                for j, i in enumerate(todo):
                    out[i] = fresh[j]
                    self._vec_cache[texts[i]] = fresh[j].copy()  # not a view of the batch
                while len(self._vec_cache) > self.settings.grade_cache_size:
                    self._vec_cache.popitem(last=False)
        return out

    def clear_cache(self) -> None:
        with self._cache_lock:
            self._vec_cache.clear()

    def _embed_units(self, us) -> np.ndarray:
        """Embed each clause once; a sentence split into clauses gets the length-weighted
        mean of its clauses' vectors instead of a second pass over the same tokens. e5
        mean-pools its token states, so the mean approximates the sentence's own vector,
        and the encoder (~1 ms per token on 2 cores) is nearly all of grading's cost."""
        whole = {u.index for u in us if u.complete}
        parts: dict[int, list[int]] = {}
        for i, u in enumerate(us):
            if u.text != u.sentence and u.index in whole:
                parts.setdefault(u.index, []).append(i)
        direct = [i for i, u in enumerate(us) if u.text != u.sentence or u.index not in parts]
        # (a sentence whose clauses do not cover it, e.g. a one-word clause was dropped, is
        # embedded itself: a mean of the remaining clauses would lose what the rest said)
        vecs = np.zeros((len(us), self.embedder.dim), dtype=np.float32)
        if direct:
            vecs[direct] = self._unit_vectors([us[i].text for i in direct])
        for i, u in enumerate(us):
            if u.text == u.sentence and u.index in parts:
                idx = parts[u.index]
                weights = np.array([len(us[k].text.split()) + 2 for k in idx], dtype=np.float32)
                v = weights @ vecs[idx]
                vecs[i] = v / max(float(np.linalg.norm(v)), 1e-12)
        return vecs

    def _match(self, answer: str, lang: str):
        """Credit steps and flag anti-patterns unit by unit (see the module docstring)."""
        us = units(answer, lang)
        if not us:
            return us, {}, {}, {}
        th = self.thresholds
        vecs = self._embed_units(us)
        sims = self.bridge.similarities(vecs)
        probs = self.probe.step_probabilities(vecs)
        step_best: dict[str, tuple[float, int, bool]] = {}  # step -> (score, unit, statement)
        negated_steps: dict[str, int] = {}
        anti_best: dict[str, tuple[float, int]] = {}
        statements = {u.sentence: is_statement(u.sentence, lang) for u in us}

        def credit(sid: str, score: float, ui: int) -> None:
            if score > step_best.get(sid, (-1.0, -1, False))[0]:
                step_best[sid] = (score, ui, statements[us[ui].sentence])

        for ui, u in enumerate(us):
            low = padded_words(u.text)  # once per unit, not once per catalogue item
            raw_steps = self.bridge.step_scores(sims[ui])
            steps = dict(raw_steps)
            for sid in steps:
                if self._cue_hit(sid, low, lang):
                    steps[sid] += CUE_BONUS
            antis = self.bridge.anti_scores(sims[ui])
            for aid in antis:
                if self._cue_hit(aid, low, lang):
                    antis[aid] += CUE_BONUS
            top_step = max(steps.values(), default=-1.0)
            top_anti = max(antis.values(), default=-1.0)
            top_any = max(top_step, top_anti)
            if not is_negated(u.text, lang):
                for sid, score in steps.items():
                    if score >= top_any - th.margin:
                        credit(sid, score, ui)
                # the probe names the step a paraphrase shows when its nearest phrasing
                # belongs to another step; it still has to be close to the step's phrasings
                for sid, prob in probs[ui].items():
                    if prob >= PROBE_MIN and raw_steps.get(sid, -1.0) >= th.partly - PROBE_SLACK:
                        credit(sid, max(steps[sid], th.covered) if prob >= PROBE_SURE else steps[sid], ui)
                # only the unit's single nearest item can be an anti-pattern, and only in a
                # clause long enough to describe an action
                if antis and len(words(u.text)) >= MIN_ANTI_WORDS:
                    aid, score = max(antis.items(), key=lambda kv: kv[1])
                    if score >= th.anti and score >= top_step + ANTI_MARGIN:
                        if score > anti_best.get(aid, (-1.0, -1))[0]:
                            anti_best[aid] = (score, ui)
                continue
            if u.complete:
                continue  # "I didn't interrupt, I just let him talk": each clause decides
            # "I would never yell back" shows the step opposite to that anti-pattern;
            # "I would not apologise" denies a step and earns nothing for it.
            plain_antis = self.bridge.anti_scores(np.where(self._neg_phrasing, -1.0, sims[ui]))
            for aid, score in antis.items():
                # only a denial of a plainly stated bad behaviour shows the opposite step
                # ("I'd never hang up, even if insulted for an hour" is no such denial)
                if (
                    score >= max(th.anti, top_any - th.margin)
                    and plain_antis.get(aid, -1.0) >= score - CUE_BONUS - th.margin
                ):
                    for sid in self.catalogue.anti_patterns[aid].opposite_steps:
                        credit(sid, min(score, th.covered - 1e-4), ui)  # a denial earns "partly"
            agreeing = self.bridge.step_scores(np.where(self._neg_phrasing, sims[ui], -1.0))
            for sid, score in steps.items():
                if score < top_any - th.margin:
                    continue
                if raw_steps[sid] >= th.covered and agreeing.get(sid, -1.0) >= raw_steps[sid] - th.margin:
                    credit(sid, score, ui)  # matches a phrasing that is negative too
                elif score >= th.partly:
                    negated_steps.setdefault(sid, ui)
        return us, step_best, anti_best, negated_steps

    def _status(self, entry) -> str:
        if entry is None:
            return "missing"
        score, _, statement = entry
        if score >= self.thresholds.covered:
            return "covered" if statement else "partly"
        if score >= self.thresholds.partly:
            return "partly"
        return "missing"

    # -- report helpers ----------------------------------------------------------
    def _citations(self, pids: list[str], lang: str, limit: int = 3) -> list[Citation]:
        return [self.knowledge.cite(pid, lang) for pid in pids[:limit]]

    def model_answer(self, q: Question, lang: str) -> str:
        lang = lang if lang in SUPPORTED else "en"
        order = list(self.catalogue.steps)
        chosen = sorted(q.required + q.bonus[:2], key=order.index)
        sentences = [localized(self.feedback, "model_intro", lang)]
        for sid in chosen:
            s = self.catalogue.steps[sid]
            sentences.append(s.t("model_sentence", lang))
        return " ".join(x for x in sentences if x)

    # -- grading ------------------------------------------------------------------
    def grade(self, answer: str, question: str | None = None) -> GradeReport:
        answer, warnings = clean_text(answer, "answer", self.settings.max_answer_chars)
        q, q_text, q_warnings = self.resolve_question(question)
        warnings += q_warnings
        lang = detect(answer)
        flang = lang if lang in SUPPORTED else "en"  # feedback is written in all eight
        if lang not in SUPPORTED:
            warnings.append(localized(self.feedback, "language_fallback", "en"))
        flags = {"injection": False, "keyword_list": False, "off_topic": False, "too_short": False,
                 "truncated": any("characters" in w for w in warnings)}

        injected = injection_spans(answer)
        graded_text = answer
        if injected:
            flags["injection"] = True
            for span in injected:
                graded_text = graded_text.replace(span, " ")
        n_words = len(words(graded_text))
        flags["too_short"] = n_words < MIN_WORDS

        us, step_best, anti_best, negated = self._match(graded_text, lang) if graded_text.strip() else ([], {}, {}, {})
        any_statement = any(is_statement(u.sentence, lang) for u in us)
        statuses = {sid: self._status(step_best.get(sid)) for sid in self.catalogue.steps}
        for sid in negated:
            # a denied step is missing unless another clause clearly does it
            if statuses[sid] != "covered":
                statuses[sid] = "missing"
                continue
            best, denial = us[step_best[sid][1]], us[negated[sid]]
            if best is denial or (best.text == best.sentence and best.index == denial.index):
                statuses[sid] = "missing"
        matched_any = any(v != "missing" for v in statuses.values()) or bool(anti_best)
        flags["keyword_list"] = bool(us) and not any_statement and matched_any
        flags["off_topic"] = not matched_any

        verdicts: list[StepVerdict] = []
        covered, partly, missing, extra = [], [], [], []
        for sid in q.expected:
            step = self.catalogue.steps[sid]
            status = statuses[sid]
            entry = step_best.get(sid)
            evidence = us[entry[1]].sentence if entry and status != "missing" else ""
            cites = self._citations(step.passages, flang)
            verdicts.append(
                StepVerdict(
                    step=sid,
                    title=step.t("title", flang),
                    status=status,
                    required=sid in q.required,
                    evidence=evidence,
                    confidence=round(float(entry[0]), 4) if entry else 0.0,
                    passages=cites,
                )
            )
            hit = StepHit(step=sid, title=step.t("title", flang), evidence=evidence, passages=cites)
            {"covered": covered, "partly": partly, "missing": missing}[status].append(hit)
        for sid, status in statuses.items():
            if sid not in q.expected and status == "covered":
                step = self.catalogue.steps[sid]
                extra.append(StepHit(step=sid, title=step.t("title", flang), evidence=us[step_best[sid][1]].sentence,
                                     passages=self._citations(step.passages, flang, 1)))

        antis = []
        for aid, (_, ui) in sorted(anti_best.items(), key=lambda kv: -kv[1][0]):
            a = self.catalogue.anti_patterns[aid]
            antis.append(AntiPatternHit(id=aid, title=a.t("title", flang), evidence=us[ui].sentence,
                                        passages=self._citations(a.passages, flang, 2)))

        score = self._score(q, statuses, len(antis), flags)
        conflicts = self._conflicts(q, statuses, anti_best, graded_text, flang)
        strengths = [localized(self.feedback, "strength", flang).format(title=h.title) for h in covered]
        tips = self._tips(q, statuses, negated, antis, flags, flang)
        return GradeReport(
            question={"id": q.id, "text": q.text.get(flang) or q_text},
            language=lang,
            score=score,
            steps=verdicts,
            covered=covered,
            partly=partly,
            missing=missing,
            extra_steps=extra,
            anti_patterns=antis,
            conflicts=conflicts,
            strengths=strengths,
            tips=tips,
            model_answer=self.model_answer(q, flang),
            flags=flags,
            warnings=warnings,
        )

    def _score(self, q: Question, statuses: dict[str, str], n_anti: int, flags: dict) -> int:
        credit = {"covered": 1.0, "partly": 0.4, "missing": 0.0}
        req = sum(credit[statuses[s]] for s in q.required)
        bonus = sum(credit[statuses[s]] for s in q.bonus)
        denom = len(q.required) + 0.5 * min(len(q.bonus), 2)
        raw = 100.0 * (req + 0.5 * min(bonus, 2)) / max(denom, 1)
        raw -= PENALTY_PER_ANTI * n_anti
        for flag, cap in CAPS.items():
            if flags.get(flag):
                raw = min(raw, cap)
        return int(round(max(0.0, min(100.0, raw))))

    def _conflicts(self, q, statuses, anti_best, text, lang) -> list[ConflictNote]:
        notes = []
        for c in self.catalogue.conflicts.values():
            touched = c.id in q.conflicts
            touched |= any(statuses.get(s) in ("covered", "partly") for s in c.steps)
            touched |= any(a in anti_best for a in c.anti_patterns)
            touched |= mentions(text, c.all_cues)
            if touched:
                notes.append(conflict_note(c, self.knowledge, lang))
        return notes


    def _tips(self, q, statuses, negated, antis, flags, lang) -> list[str]:
        fb = self.feedback
        tips: list[str] = []
        if flags["injection"]:
            tips.append(localized(fb, "injection", lang))
        if flags["off_topic"]:
            tips.append(localized(fb, "off_topic", lang))
        if flags["keyword_list"]:
            tips.append(localized(fb, "keyword_list", lang))
        if flags["too_short"] and not flags["off_topic"]:
            tips.append(localized(fb, "too_short", lang))
        for a in antis:
            ap = self.catalogue.anti_patterns[a.id]
            tips.append(localized(fb, "avoid", lang).format(title=ap.t("title", lang), description=ap.t("description", lang)))
        for sid in q.required + q.bonus:
            step = self.catalogue.steps[sid]
            fmt = dict(title=step.t("title", lang), description=step.t("description", lang))
            if sid in negated and statuses[sid] == "missing":
                tips.append(localized(fb, "negated_step", lang).format(**fmt))
            elif statuses[sid] == "missing" and sid in q.required:
                tips.append(localized(fb, "add_step", lang).format(**fmt))
            elif statuses[sid] == "partly" and sid in q.required:
                tips.append(localized(fb, "deepen_step", lang).format(**fmt))
        if "personal_example" in self.catalogue.steps and statuses.get("personal_example") == "missing":
            tips.append(localized(fb, "example", lang))
        return tips


def print_report(report: GradeReport) -> None:
    """Human-readable report for the terminal."""
    print(f"Question: {report.question['text']}  [{report.question['id']}]")
    print(f"Language: {report.language}   Score: {report.score}/100")
    flags = [k for k, v in report.flags.items() if v]
    if flags:
        print("Flags: " + ", ".join(flags))
    for v in report.steps:
        mark = {"covered": "[x]", "partly": "[~]", "missing": "[ ]"}[v.status]
        req = "" if v.required else " (bonus)"
        print(f"  {mark} {v.title}{req}")
        if v.evidence:
            print(f"        you: \"{v.evidence}\"")
        elif v.passages:
            c = v.passages[0]
            print(f"        [{c.passage}] {c.quote_en}")
    for a in report.anti_patterns:
        print(f"  (!) {a.title}: \"{a.evidence}\"")
    for c in report.conflicts:
        print(f"  Conflict: {c.topic}")
        for side in c.sides:
            ids = ", ".join(p["passage"] for p in side["passages"])
            print(f"     - {side['position']} [{ids}]")
    if report.tips:
        print("Tips:")
        for t in report.tips:
            print(f"  - {t}")
    print("Model answer:\n  " + report.model_answer)
    for w in report.warnings:
        print(f"note: {w}")

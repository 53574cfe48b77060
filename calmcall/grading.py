"""The offline answer grader: deterministic, multilingual, explains itself, hard to fool.

Three parts, each replaceable on its own:
- ``matcher.StepMatcher`` reads the answer once (``parsing.parse``) and returns typed
  evidence per unit: steps, anti-patterns and harms, affirmed or denied, with spans.
- ``policy.ScoringPolicy`` (numbers from ``knowledge/grading_policy.yaml``) turns evidence
  into statuses, flags and a 0-100 score calibrated to a coach's grades.
- ``feedback.FeedbackComposer`` writes the report in the answer's language.

What no amount of good steps dilutes: a harmful sentence (threat, insult, privacy breach,
revenge, discrimination, lying, mockery, aggression) caps the score; so do pasted article
text, sarcasm, injected instructions, keyword lists and padding.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .catalogue import Catalogue, Question, StepBridge, UnknownQuestion
from .config import Settings
from .feedback import FeedbackComposer, Verdicts
from .inputs import clean_text
from .language import SUPPORTED
from .matcher import Match, StepMatcher
from .models import GradeReport
from .originality import CopyDetector
from .policy import ScoringPolicy, Status
from .text import words

log = logging.getLogger(__name__)

DEFAULT_QUESTION = "q01_angry_call"
_QUESTION_ID = re.compile(r"^q\d{2}_[a-z0-9_]+$")


@dataclass
class Scored:
    """What the policy decided for one answer (the composer turns it into a report)."""

    question: Question
    match: Match
    statuses: dict[str, Status]
    denied: set[str]
    flags: dict[str, bool]
    raw: float
    score: int
    copied_sources: list[str]
    depth: float = 0.0  # the policy's elaboration points (ScoringPolicy.depth)
    terse: bool = False  # depth at or below the policy's depth_tip: "say more about how" comes first


class Grader:
    def __init__(self, settings: Settings, embedder, catalogue: Catalogue, bridge: StepBridge, retriever,
                 question_vectors: tuple[np.ndarray, np.ndarray] | None = None):
        self.settings = settings
        self.embedder = embedder
        self.catalogue = catalogue
        self.bridge = bridge
        self.knowledge = retriever.knowledge
        self.policy = ScoringPolicy.load(settings.knowledge_dir, embedder.manifest_id, bridge)
        self.matcher = StepMatcher(embedder, catalogue, bridge, self.policy,
                                   cache_size=settings.grade_cache_size, max_chars=settings.max_answer_chars)
        self.copies = CopyDetector(self.knowledge, catalogue, self.policy.copy_ngram, embedder, self.policy,
                                   read_dirs=[Path(settings.knowledge_dir) / "vectors"],
                                   write_dir=Path(settings.data_dir) / "copy")
        self.composer = FeedbackComposer(settings, catalogue, self.knowledge)
        self._question_vectors = question_vectors
        self.probe = self.matcher.probe
        log.info("Grading policy: covered %.3f partly %.3f anti %.3f", self.policy.covered,
                 self.policy.partly, self.policy.anti)

    # -- questions --------------------------------------------------------------
    @property
    def question_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        if self._question_vectors is None:
            qids, texts = [], []
            for q in self.catalogue.questions.values():
                for text in q.text.values():
                    qids.append(q.id)
                    texts.append(text)
            self._question_vectors = (self.embedder.query(texts), np.array(qids))
        return self._question_vectors

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
            raise UnknownQuestion(question)
        text, w = clean_text(question, "question", self.settings.max_question_chars)
        warnings += w
        qvecs, qids = self.question_vectors
        sims = qvecs @ self.embedder.query([text])[0]
        q = self.catalogue.questions[str(qids[int(np.argmax(sims))])]
        warnings.append(f"graded against the closest practice question: {q.id}")
        return q, text, warnings

    def clear_cache(self) -> None:
        self.matcher.clear_cache()

    def model_answer(self, q: Question, lang: str) -> str:
        return self.composer.model_answer(q, lang)

    # -- grading ------------------------------------------------------------------
    def grade(self, answer: str, question: str | None = None, feedback_lang: str | None = None) -> GradeReport:
        parsed = self.matcher.parse(answer)
        q, q_text, q_warnings = self.resolve_question(question)
        match = self.matcher.match(parsed)
        if parsed.injected and not match.best("harm") \
                and self.matcher.match(self.matcher.parse(" ".join(parsed.injected), parsed.language,
                                                          set_aside=False)).best("harm"):
            # text aimed at the grader is set aside, never a place to hide harm in: grade the
            # answer as written, so the harm is found, shown and capped as anywhere else
            match = self.matcher.match(self.matcher.parse(answer, set_aside=False))
        scored = self.score(q, match)
        return self.composer.compose(scored, q_text, q_warnings, feedback_lang)

    def score(self, q: Question, match: Match) -> Scored:
        """Evidence -> statuses, flags and score (the scoring policy's rule)."""
        p, parsed = self.policy, match.parsed
        us = parsed.units
        best = match.best("step")
        denials = match.best("step", "denied")
        statuses: dict[str, Status] = {}
        for sid in self.catalogue.steps:
            e = best.get(sid)
            statuses[sid] = p.status(e.confidence if e else None, bool(e) and parsed.statements.get(us[e.unit].index, False))
        denied: set[str] = set()
        for sid, d in denials.items():
            # a denied step is missing unless another clause clearly does it
            if statuses[sid] != "covered":
                statuses[sid] = "missing"
                denied.add(sid)
                continue
            b, den = us[best[sid].unit], us[d.unit]
            if b is den or (b.text == b.sentence and b.index == den.index):
                statuses[sid] = "missing"
                denied.add(sid)
        antis = match.best("anti")
        harms = match.best("harm")
        flags = {f: False for f in ("injection", "keyword_list", "off_topic", "too_short", "truncated", "harm",
                                    "copied", "sarcasm", "repetitive")}
        flags["truncated"] = bool(parsed.warnings)
        flags["injection"] = bool(parsed.injected)
        flags["too_short"] = parsed.n_words < p.min_words
        matched_any = any(v != "missing" for v in statuses.values()) or bool(antis) or bool(harms)
        flags["keyword_list"] = bool(us) and not parsed.any_statement and matched_any
        flags["off_topic"] = not matched_any
        flags["harm"] = bool(harms)
        n_sent = max(len(parsed.statements), 1)
        flags["sarcasm"] = len(parsed.sarcastic) / n_sent >= p.sarcasm_share
        flags["repetitive"] = parsed.n_sentences >= 4 and parsed.repeated / parsed.n_sentences >= p.repetitive_share
        copied = self.copies.check(parsed.graded_text)
        if match.vectors is not None and parsed.n_words >= p.copy_min_words:
            sent = [i for i, u in enumerate(us) if u.text == u.sentence and len(words(u.text)) >= p.copy_sentence_words]
            if len(sent) >= p.copy_min_sentences:
                vecs = match.vectors[sent]
                self.copies.translated(vecs, [len(words(us[i].text)) for i in sent], copied,
                                       self.bridge.similarities(vecs).max(axis=1), parsed.language)
        translated = copied.translated_sentences >= p.copy_min_sentences \
            and copied.translated_share >= p.copy_translated_share
        flags["copied"] = parsed.n_words >= p.copy_min_words and (copied.share >= p.copy_share or translated)
        sources = copied.sources if copied.share >= p.copy_share else copied.translated_sources

        extra = sum(1 for sid, s in statuses.items() if s == "covered" and sid not in q.expected)
        raw = p.coverage([statuses[s] for s in q.required], [statuses[s] for s in q.bonus], extra)
        # elaboration: the words of the distinct sentences carrying the question's steps
        carrying = {us[best[sid].unit].sentence for sid in q.expected if statuses[sid] != "missing" and sid in best}
        depth = p.depth(sum(len(words(t)) for t in carrying), raw)
        injected = sum(len(words(span)) for span in parsed.injected)
        score = p.score(raw, flags, len(antis), depth, injected / max(len(words(parsed.text)), 1))
        terse = bool(carrying) and p.terse(depth, raw, len(q.required),
                                           any(statuses[sid] != "covered" for sid in q.required))
        return Scored(q, match, statuses, denied, flags, raw, score, sources if flags["copied"] else [], depth, terse)


__all__ = ["Grader", "Scored", "Verdicts", "DEFAULT_QUESTION", "SUPPORTED"]

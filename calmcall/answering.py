"""Ask: for a trainer's situation, the documented steps in teaching order, each with the
articles' reason, a concrete line to say and the passages it rests on — in the asker's
language, and the same steps whatever language the situation is asked in.

How: search decides whether the articles cover the question at all (calibrated relevance
and nearest reference question, as before) and ranks the passages; the situation
classifier (``calmcall/situations.py``, trained offline on our phrasings, practice questions
and doc2query questions in eight languages) reads the question's vector — the one search
computed — as a trainer situation and gives the steps the articles document for it. Each
step is presented from ``knowledge/advice.yaml`` (why, line to say, teaching order) and the
catalogue (title), citing the step's passages that best match the question. Conflicts are
shown when the question names their topic or the situation touches one.

A follow-up ("and if they keep going?") is read together with the previous question; when
it names steps of the previous answer ("how do I word the transfer?") the answer narrows to
those, otherwise it extends to the combined situation.

With ``CALMCALL_LLM`` set, a langchain chat model writes the answer text from the same
passages; its output is accepted only if every citation names one of them, otherwise the
offline answer is served and the reason logged. ``advice`` is always the checked offline
structure.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from .catalogue import Catalogue, StepBridge, conflict_note
from .config import Settings
from .index import passage_of
from .inputs import clean_text
from .knowledge import load_yaml
from .language import CORE, detect
from .llm import load_chat_model
from .models import AdviceStep, AskResult, Citation, ConflictNote
from .prompts import load_prompt, localized
from .situations import SituationClassifier
from .text import mentions

log = logging.getLogger(__name__)

CITE = re.compile(r"\[(\d{3}#p\d+)\]")
LANG_NAMES = {"en": "English", "sv": "Swedish", "hu": "Hungarian", "it": "Italian", "nl": "Dutch"}


class AnswerTuning(BaseModel):
    """``knowledge/advice.yaml`` ``tuning``: Ask's presentation numbers (the file says why each)."""

    model_config = ConfigDict(extra="forbid")
    focus_rank: int = Field(gt=0)
    conflict_min_probability: float = Field(ge=0, le=1)
    follow_up_words: int = Field(ge=0)


class Advice:
    """``knowledge/advice.yaml``: teaching order, stages, why and line per step."""

    def __init__(self, root: Path, catalogue: Catalogue):
        data = load_yaml((Path(root) / "advice.yaml").read_bytes()) or {}
        self.order = {sid: i for i, sid in enumerate(data.get("order") or [])}
        self.stage = {sid: stage for stage, ids in (data.get("stages") or {}).items() for sid in ids}
        self.steps = data.get("steps") or {}
        self.tuning = AnswerTuning(**(data.get("tuning") or {}))
        unknown = (set(self.order) | set(self.stage) | set(self.steps)) - set(catalogue.steps)
        if unknown:
            raise ValueError(f"advice.yaml names unknown steps: {sorted(unknown)}")
        self.catalogue = catalogue

    def sort(self, steps: list[str]) -> list[str]:
        """Teaching order: calm and listening, understanding, resolving, limits, afterwards."""
        return sorted(steps, key=lambda s: (self.order.get(s, len(self.order)), s))

    def why(self, sid: str, lang: str) -> str:
        why = (self.steps.get(sid) or {}).get("why") or {}
        return why.get(lang) or why.get("en") or self.catalogue.steps[sid].t("description", lang)

    def line(self, sid: str, lang: str) -> tuple[str, str]:
        entry = self.steps.get(sid) or {}
        line = entry.get("line") or {}
        text = line.get(lang) or self.catalogue.steps[sid].model_sentence.get(lang) or line.get("en", "")
        return text, entry.get("to", "caller")


class Answerer:
    def __init__(self, settings: Settings, retriever, catalogue: Catalogue, bridge: StepBridge,
                 situations: SituationClassifier | None = None):
        self.settings = settings
        self.retriever = retriever
        self.catalogue = catalogue
        self.bridge = bridge
        self.knowledge = retriever.knowledge
        self.phrases = load_prompt("answer", settings.prompts_dir)
        self.situations = situations or SituationClassifier(
            settings, retriever.embedder, catalogue, self.knowledge, cache=getattr(retriever, "cache", None))
        self.advice = Advice(settings.knowledge_dir, catalogue)
        self._titles = self._article_titles()
        ids, _, matrix = retriever.index.all_vectors()  # every passage in five languages
        self._passage_of = np.array([passage_of(i) for i in ids])
        self._teaches: dict[str, list[str]] = {}  # passage -> the steps it teaches
        for sid, st in catalogue.steps.items():
            for pid in st.passages:
                self._teaches.setdefault(pid, []).append(sid)
        self._passage_matrix = matrix
        self._llm = None
        self._llm_loaded = False

    @property
    def llm(self):
        if not self._llm_loaded:
            self._llm = load_chat_model(self.settings)
            self._llm_loaded = True
        return self._llm

    def _article_titles(self) -> dict[tuple[str, str], str]:
        """(article, lang) -> title: originals from articles.yaml, ours from the translations."""
        titles = {}
        for aid, a in self.knowledge.articles.items():
            titles[(aid, a.language)] = a.title
            titles[(aid, "en")] = a.title_en
        tdir = Path(self.settings.knowledge_dir) / "translations"
        for lang_dir in sorted(tdir.iterdir()) if tdir.is_dir() else []:
            for f in sorted(lang_dir.glob("*.yaml")):
                data = load_yaml(f.read_bytes()) or {}
                aid = str(data.get("article") or f.stem)
                if data.get("title") and (aid, lang_dir.name) not in titles:
                    titles[(aid, lang_dir.name)] = str(data["title"])
        return titles

    def article_title(self, aid: str, lang: str) -> str:
        return self._titles.get((aid, lang)) or self._titles.get((aid, "en"), aid)

    def cite(self, pid: str, lang: str) -> Citation:
        c = self.knowledge.cite(pid, lang)
        c.article_title = self.article_title(c.article, lang)
        return c

    # -- retrieval and follow-ups ------------------------------------------------------
    def _retrieve(self, question: str, history: list[dict] | None):
        """Search with the question; a short follow-up ("and if they keep swearing?") is
        searched together with the previous user turn. Returns (result, previous question
        or None)."""
        result = self.retriever.search(question, k=5, demote_overviews=False)
        previous = [h["content"] for h in (history or []) if h.get("role") == "user" and h.get("content")]
        follow_up = len(question.split()) <= self.advice.tuning.follow_up_words or not result.in_scope
        if not previous or not follow_up:
            return result, None
        # a new, unrelated question ("What is the capital of France?") is not a follow-up
        if not self.retriever.nearest_is_in_domain(self.retriever.vector(question)):
            return result, None
        combined = self.retriever.search(f"{previous[-1]} {question}", k=5, demote_overviews=False)
        if combined.in_scope:
            return combined, previous[-1]
        return result, None

    def _described_situation(self, question: str) -> bool:
        """A trainer describing a situation ("my trainee is shaking after a nasty call") may
        be close to no single passage, so search's relevance stays low; it is still in scope
        when its nearest reference question is clearly one the articles answer."""
        margin = self.retriever.scope_margin(self.retriever.vector(question))
        return margin >= self.situations.spec.selection.scope_margin

    def scope_probability(self, text: str, lang: str, vector: np.ndarray | None = None) -> float:
        """The scope classifier's probability that the articles answer ``text``."""
        vector = self.retriever.vector(text) if vector is None else vector
        return self.situations.scope_probability(vector, text, lang)

    def scope_decision(self, found: bool, standalone: bool, question: str, query_text: str,
                       vector: np.ndarray, lang: str) -> bool:
        """Answer or refuse: search and the scope classifier must agree. A question search
        finds a close passage for is answered when the classifier gives it at least
        ``scope.min_probability``; a standalone one search finds no close passage for but
        whose nearest reference question is clearly in domain (a situation described
        rather than a passage asked for) needs ``min_probability_described``; at
        ``accept_probability`` the classifier alone answers."""
        spec = self.situations.spec.scope
        p = self.scope_probability(query_text, lang, vector)
        if p >= spec.accept_probability:
            return True
        if found:
            return p >= spec.min_probability
        return standalone and p >= spec.min_probability_described and self._described_situation(question)

    def _named_steps(self, text: str) -> list[str]:
        """Steps a follow-up names by their cue words ("the transfer", "the warning")."""
        return [sid for sid, st in self.catalogue.steps.items()
                if mentions(text, [c for cues in st.cues.values() for c in cues if len(c) >= 4])]

    def _passages_for(self, sid: str, vector: np.ndarray, hit_rank: dict[str, int], n: int,
                      step_scores: dict[str, float]) -> list[str]:
        """The step's passages that search ranked among its hits for this question (up to
        ``n``). A step none of whose passages search found is part of the situation's
        sequence rather than of what was asked: it cites one passage, the one that teaches
        most of what the situation calls for (the summed scores of the steps it teaches),
        then the one closest to the question (best over its five language versions)."""
        own = self.catalogue.steps[sid].passages
        central = {pid: sum(step_scores.get(t, 0.0) for t in self._teaches.get(pid, ())) for pid in own}
        found = [p for p in own if p in hit_rank]
        if found:
            if self.situations.spec.selection.central_first:
                found.sort(key=lambda p: (-round(central[p], 6), hit_rank[p]))
            else:
                found.sort(key=lambda p: hit_rank[p])
            return found[:n]
        sims = self._passage_matrix @ vector
        best = {pid: float(sims[self._passage_of == pid].max()) if (self._passage_of == pid).any() else -1.0
                for pid in own}
        return sorted(own, key=lambda p: (-round(central[p], 6), -best[p], p))[:1]

    # -- ask ---------------------------------------------------------------------------
    def ask(self, question: str, history: list[dict] | None = None) -> AskResult:
        question, warnings = clean_text(question, "question", self.settings.max_question_chars)
        lang = detect(question)
        alang = lang if lang in CORE else "en"
        notes = list(warnings)
        if lang not in CORE:
            notes.append(localized(self.phrases, "language_note", "en"))
        result, previous = self._retrieve(question, history)
        query_text = result.question if previous else question
        vector = self.retriever.vector(query_text)
        if self.scope_decision(result.in_scope, previous is None, question, query_text, vector, lang) != result.in_scope:
            result = result.model_copy(update={"in_scope": not result.in_scope})
        if not result.in_scope:
            return AskResult(
                question=question,
                language=alang,
                in_scope=False,
                answer=localized(self.phrases, "out_of_scope", alang),
                citations=[],
                steps=[],
                notes=notes,
            )
        guess = self.situations.guess(vector, query_text, lang)
        sel = self.situations.spec.selection
        steps, follow_up, per_step = list(guess.steps), "", sel.passages_per_step
        if previous is not None:
            before = self.situations.guess(self.retriever.vector(previous), previous, detect(previous)).steps
            named = self._named_steps(question)
            if named and set(named) <= set(before):
                steps, follow_up, per_step = named, "narrow", sel.passages_narrowed
            else:
                steps = (named + [s for s in steps if s not in named])[: self.situations.spec.selection.max_steps]
                follow_up = "extend"
            notes.append(localized(self.phrases, f"follow_up_{follow_up}", alang))
        steps = self.advice.sort(steps)
        hit_rank = {h.id: i for i, h in enumerate(result.passages)}
        advice = [self._advice_step(sid, alang, vector, hit_rank, per_step, guess.step_scores) for sid in steps]
        conflicts = self._conflicts(question if follow_up == "narrow" else query_text, alang,
                                    None if follow_up == "narrow" else guess)
        lines, cited = self._compose(advice, conflicts, alang)
        answer, backend = "\n".join(lines), "offline"
        if self.llm is not None:
            given = cited + [h.id for h in result.passages[:3]
                             if h.id not in cited and not self.knowledge.is_overview(h.id)]
            llm_answer = self._ask_llm(question, history, given, alang)
            if llm_answer is not None:
                answer, cited, backend = llm_answer
        by_id = {c.passage: c for a in advice for c in a.citations}
        return AskResult(
            question=question,
            language=alang,
            in_scope=True,
            answer=answer,
            citations=[by_id.get(pid) or self.cite(pid, alang) for pid in cited],
            steps=steps,
            conflicts=conflicts,
            backend=backend,
            notes=notes,
            advice=advice,
            situation=guess.situation,
            follow_up=follow_up,
        )

    def _advice_step(self, sid: str, lang: str, vector, hit_rank, n: int, step_scores) -> AdviceStep:
        step = self.catalogue.steps[sid]
        line, to = self.advice.line(sid, lang)
        pids = self._passages_for(sid, vector, hit_rank, n, step_scores)
        focus_rank = self.advice.tuning.focus_rank
        return AdviceStep(
            step=sid,
            title=step.t("title", lang),
            stage=self.advice.stage.get(sid, "resolve"),
            why=self.advice.why(sid, lang),
            line=line,
            line_to=to,
            focus=any(hit_rank.get(p, focus_rank) < focus_rank for p in pids),
            citations=[self.cite(pid, lang) for pid in pids],
        )

    # -- offline composition -------------------------------------------------------
    def _compose(self, advice: list[AdviceStep], conflicts: list[ConflictNote], lang) -> tuple[list[str], list[str]]:
        """The answer's lines and the passages they cite: one numbered line per step (title,
        why, line to say, passage ids), then each conflict with both sides."""
        lines = [localized(self.phrases, "intro", lang)]
        cited: list[str] = []
        for n, a in enumerate(advice, start=1):
            ids = [c.passage for c in a.citations]
            cited += [p for p in ids if p not in cited]
            label = localized(self.phrases, f"line_{a.line_to}", lang)
            lines.append(f"{n}. {a.title}: {a.why} {label}: “{a.line}” " + " ".join(f"[{p}]" for p in ids))
        for c in conflicts:
            lines.append(localized(self.phrases, "conflict", lang).format(topic=c.topic))
            for side in c.sides:
                ids = [p["passage"] for p in side["passages"]]
                cited += [p for p in ids if p not in cited]
                lines.append(f"- {side['position']} " + " ".join(f"[{p}]" for p in ids))
        return lines, cited

    def _conflicts(self, text, lang, guess) -> list[ConflictNote]:
        """A conflict is presented when the question names its topic ("hold", "apologise"),
        or when the situation the question was read as touches it (situations.yaml); not
        merely because a step it concerns is part of the answer. A narrowed follow-up
        (``guess`` None) shows only the conflicts it names."""
        touched = set()
        if guess is not None and guess.probability >= self.advice.tuning.conflict_min_probability:
            touched = set(self.situations.situation(guess.situation).conflicts)
        notes = []
        for c in self.catalogue.conflicts.values():
            if c.id in touched or mentions(text, c.all_cues):
                note = conflict_note(c, self.knowledge, lang)
                for side in note.sides:
                    for p in side["passages"]:
                        p["article_title"] = self.article_title(p["article"], lang)
                notes.append(note)
        return notes

    # -- optional LLM ----------------------------------------------------------------
    def _ask_llm(self, question, history, retrieved, lang):
        tpl = load_prompt("ask_llm", self.settings.prompts_dir)
        passages = "\n".join(
            f"[{pid}] ({self.knowledge.get(pid).language}) {self.knowledge.get(pid).text_in(lang)}"
            for pid in retrieved
        )
        past = "\n".join(f"{h.get('role')}: {h.get('content')}" for h in (history or [])[-6:]) or "(none)"
        messages = [
            ("system", tpl["system"].format(language_name=LANG_NAMES.get(lang, "English"))),
            ("human", tpl["user"].format(passages=passages, history=past, question=question)),
        ]
        try:
            reply = self.llm.invoke(messages)
        except Exception as exc:  # network, timeouts, server errors: never fail the user
            log.warning("LLM backend failed (%s); serving the offline answer.", exc)
            return None
        text = getattr(reply, "content", str(reply))
        if not isinstance(text, str) or not text.strip():
            log.warning("LLM returned an empty answer; serving the offline answer.")
            return None
        cited = list(dict.fromkeys(CITE.findall(text)))
        if not cited:
            log.warning("LLM answer cites no passage; serving the offline answer.")
            return None
        unknown = [c for c in cited if c not in retrieved]
        if unknown:
            log.warning("LLM cited passages it was not given (%s); serving the offline answer.", ", ".join(unknown))
            return None
        return text.strip(), cited, f"llm:{self.settings.llm}"


def print_answer(result: AskResult) -> None:
    print(result.answer)
    if result.citations:
        print("\nSources:")
        for c in result.citations:
            title = f" {c.article_title}:" if c.article_title else ""
            print(f"  [{c.passage}] ({c.language}){title} {c.quote}")
            if c.translation:  # our translation into the asker's language, where we have one
                print(f"      {result.language.upper()}: {c.translation}")
            elif c.language not in ("en", result.language):
                print(f"      EN: {c.quote_en}")
    for n in result.notes:
        print(f"note: {n}")


def evaluate_answer(coach, row: dict, result: AskResult) -> dict:
    """Per-question ask metrics against a retrieval eval row (see eval/run.py).

    A retrieval row's gold is the passages that answer its (often narrow) question; an
    answer presents the asker's whole situation (issue 16), so the steps of the sequence
    that search found no passage for lie outside that gold by construction (on
    retrieval.jsonl 115 of 122 such citations; 145 of 163 citations of the steps search
    found were in it). ``citation_precision`` is therefore measured on what the gold can
    judge: the citations of the steps that answer the question directly (``focus``), or
    every citation when no step does; ``answer_citation_precision`` is the whole answer's
    (the trainer sets, eval/ask_eval.py, judge whole answers against expected steps)."""
    if not row["in_scope"]:
        return {"oos_refusal": float(not result.in_scope)}
    gold = set(row["relevant"])
    gold_steps = {sid for sid, s in coach.catalogue.steps.items() if gold & set(s.passages)}
    related = set(gold)
    for sid in gold_steps:
        related |= set(coach.catalogue.steps[sid].passages)
    cited = [c.passage for c in result.citations]
    direct = list(dict.fromkeys(c.passage for a in result.advice if a.focus for c in a.citations)) or cited
    lines = [ln for ln in result.answer.splitlines()[1:] if ln.strip()]
    grounded = [bool(CITE.search(ln)) or ln.rstrip().endswith(":") for ln in lines]
    lang_ok = None
    if row["language"] in CORE:
        body = " ".join(re.sub(r"\[[^\]]+\]", "", ln) for ln in lines)
        lang_ok = float(result.language == row["language"] and detect(body) == row["language"])
    return {
        "citation_precision": sum(c in related for c in direct) / len(direct) if direct else 0.0,
        "answer_citation_precision": sum(c in related for c in cited) / len(cited) if cited else 0.0,
        "gold_step_coverage": len(gold_steps & set(result.steps)) / len(gold_steps) if gold_steps else None,
        "groundedness": sum(grounded) / len(grounded) if grounded else 0.0,
        "language_match": lang_ok,
        "answered_in_scope": float(result.in_scope),
    }

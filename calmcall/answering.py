"""Ask: grounded answers with citations, in the asker's language.

Offline (default): the answer is composed from the steps catalogue (titles and one-line
descriptions written in en/sv/hu/it/nl) and the retrieved passages, so every line carries
passage ids and nothing is invented. With ``CALMCALL_LLM`` set, a langchain chat model
writes the answer from the same passages; its output is accepted only if every citation
names a retrieved passage, otherwise the offline answer is served and the reason logged.
"""

from __future__ import annotations

import logging
import re

from .catalogue import Catalogue, StepBridge, conflict_note
from .config import Settings
from .inputs import clean_text
from .language import CORE, detect
from .llm import load_chat_model
from .models import AskResult, ConflictNote
from .prompts import load_prompt, localized
from .text import mentions

log = logging.getLogger(__name__)

MAX_STEPS = 4
TOP_PASSAGES = 3
CITE_SHARE = 0.8  # cite passages whose score is at least this share of the best one
QUOTE_SHARE = 0.9  # quote a passage no chosen step summarises only when it is this close
OVERVIEW_STEPS = 3  # steps an overview passage stands for
CITE = re.compile(r"\[(\d{3}#p\d+)\]")
LANG_NAMES = {"en": "English", "sv": "Swedish", "hu": "Hungarian", "it": "Italian", "nl": "Dutch"}
_FOLLOW_UP_WORDS = 7


class Answerer:
    def __init__(self, settings: Settings, retriever, catalogue: Catalogue, bridge: StepBridge):
        self.settings = settings
        self.retriever = retriever
        self.catalogue = catalogue
        self.bridge = bridge
        self.knowledge = retriever.knowledge
        self.phrases = load_prompt("answer", settings.prompts_dir)
        self._llm = None
        self._llm_loaded = False

    @property
    def llm(self):
        if not self._llm_loaded:
            self._llm = load_chat_model(self.settings)
            self._llm_loaded = True
        return self._llm

    def _retrieve(self, question: str, history: list[dict] | None):
        """Search with the question; a short follow-up ("and if they keep swearing?") is
        searched together with the previous user turn."""
        result = self.retriever.search(question, k=5, demote_overviews=False)
        previous = [h["content"] for h in (history or []) if h.get("role") == "user" and h.get("content")]
        follow_up = len(question.split()) <= _FOLLOW_UP_WORDS or not result.in_scope
        # a new, unrelated question ("What is the capital of France?") is not a follow-up
        unrelated = not self.retriever.nearest_is_in_domain(self.retriever.vector(question))
        if previous and follow_up and not unrelated:
            combined = self.retriever.search(f"{previous[-1]} {question}", k=5, demote_overviews=False)
            if combined.in_scope:
                return combined, True
        return result, False

    def _steps(self, vector, passage_ids: list[str]) -> tuple[list[str], list[str]]:
        """Steps taught by the best retrieved passages, nearest step first, and the passages
        the answer may cite for them. An overview passage ("Here are some tips…") stands for
        the steps its article teaches, ranked by closeness to the question."""
        rank = {sid: i for i, (sid, _) in enumerate(self.bridge.ranked_steps(vector))}
        chosen: list[str] = []
        grounds = list(passage_ids)
        for pos, pid in enumerate(passage_ids[:TOP_PASSAGES]):
            if self.knowledge.is_overview(pid):
                if pos:  # only an overview that is the best match speaks for its article
                    continue
                article = self.knowledge.get(pid).article
                own = {sid: [p for p in st.passages if self.knowledge.get(p).article == article]
                       for sid, st in self.catalogue.steps.items()}
                picked = [sid for sid in sorted(own, key=lambda x: rank.get(x, 99)) if own[sid] and sid not in chosen]
                for sid in picked[:OVERVIEW_STEPS]:
                    chosen.append(sid)
                    grounds += [p for p in own[sid] if p not in grounds]
                continue
            teaching = [sid for sid, st in self.catalogue.steps.items() if pid in st.passages]
            for sid in sorted(teaching, key=lambda x: rank.get(x, 99))[:1]:
                if sid not in chosen:
                    chosen.append(sid)
        return chosen[:MAX_STEPS], grounds

    def ask(self, question: str, history: list[dict] | None = None) -> AskResult:
        question, warnings = clean_text(question, "question", self.settings.max_question_chars)
        lang = detect(question)
        alang = lang if lang in CORE else "en"
        notes = list(warnings)
        if lang not in CORE:
            notes.append(localized(self.phrases, "language_note", "en"))
        result, used_history = self._retrieve(question, history)
        if used_history:
            notes.append("follow-up: searched together with your previous question")
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
        # cite only passages whose evidence is close to the best one: precision over breadth
        best = result.passages[0].score if result.passages else 0.0
        retrieved = [h.id for h in result.passages if h.score >= CITE_SHARE * best]
        quotable = [h.id for h in result.passages[:TOP_PASSAGES]
                    if h.score >= QUOTE_SHARE * best and not self.knowledge.is_overview(h.id)]
        query_text = question if not used_history else result.question
        vector = self.retriever.vector(query_text)
        steps, grounds = self._steps(vector, retrieved)
        lines, cited = self._compose(steps, grounds, quotable, alang)
        conflicts = self._conflicts(query_text, alang, cited)
        self._add_conflicts(lines, cited, conflicts, alang)
        answer, backend = "\n".join(lines), "offline"
        if self.llm is not None:
            llm_answer = self._ask_llm(question, history, grounds, alang)
            if llm_answer is not None:
                answer, cited, backend = llm_answer
        return AskResult(
            question=question,
            language=alang,
            in_scope=True,
            answer=answer,
            citations=[self.knowledge.cite(pid, alang) for pid in cited],
            steps=steps,
            conflicts=conflicts,
            backend=backend,
            notes=notes,
        )

    # -- offline composition -------------------------------------------------------
    def _compose(self, steps, grounds, quotable, lang) -> tuple[list[str], list[str]]:
        """The answer's lines and the passages they cite; every line carries the ids of
        the retrieved passages it rests on."""
        lines = [localized(self.phrases, "intro", lang)]
        cited: list[str] = []
        n = 0
        for sid in steps:
            step = self.catalogue.steps[sid]
            ids = [p for p in step.passages if p in grounds]
            if not ids:
                continue
            n += 1
            cited += [p for p in ids if p not in cited]
            lines.append(f"{n}. {step.t('title', lang)}: {step.t('description', lang)} " + " ".join(f"[{p}]" for p in ids))
        for pid in quotable:
            if pid in cited:
                continue
            # a passage no step summarises: quote it, in the asker's language
            n += 1
            cited.append(pid)
            lines.append(f"{n}. {_first_sentences(self.knowledge.get(pid).text_in(lang))} [{pid}]")
        return lines, cited

    def _add_conflicts(self, lines, cited, conflicts, lang) -> None:
        """Each conflict with both sides, cited, after the advice."""
        for c in conflicts:
            lines.append(localized(self.phrases, "conflict", lang).format(topic=c.topic))
            for side in c.sides:
                ids = [p["passage"] for p in side["passages"]]
                cited += [p for p in ids if p not in cited]
                lines.append(f"- {side['position']} " + " ".join(f"[{p}]" for p in ids))

    def _conflicts(self, text, lang, cited) -> list[ConflictNote]:
        """A conflict is presented when the question names its topic ("hold", "apologise"),
        or when the answer rests on both of its sides; not merely because a step it
        concerns came up."""
        notes = []
        for c in self.catalogue.conflicts.values():
            asked = mentions(text, c.all_cues)
            both = all(set(side.passages) & set(cited) for side in c.sides)
            if asked or both:
                notes.append(conflict_note(c, self.knowledge, lang))
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


def _first_sentences(text: str, limit: int = 240) -> str:
    """The opening of a passage, cut at a sentence end when one is near."""
    if len(text) <= limit:
        return text
    cut = text[:limit]
    end = max(cut.rfind(". "), cut.rfind("? "), cut.rfind("! "))
    return cut[: end + 1] if end > limit // 3 else cut.rstrip() + "…"


def print_answer(result: AskResult) -> None:
    print(result.answer)
    if result.citations:
        print("\nSources:")
        for c in result.citations:
            print(f"  [{c.passage}] ({c.language}) {c.quote}")
            if c.language != "en":
                print(f"      EN: {c.quote_en}")
    for n in result.notes:
        print(f"note: {n}")


def evaluate_answer(coach, row: dict, result: AskResult) -> dict:
    """Per-question ask metrics against a retrieval eval row (see eval/run.py)."""
    if not row["in_scope"]:
        return {"oos_refusal": float(not result.in_scope)}
    gold = set(row["relevant"])
    gold_steps = {sid for sid, s in coach.catalogue.steps.items() if gold & set(s.passages)}
    related = set(gold)
    for sid in gold_steps:
        related |= set(coach.catalogue.steps[sid].passages)
    cited = [c.passage for c in result.citations]
    lines = [ln for ln in result.answer.splitlines()[1:] if ln.strip()]
    grounded = [bool(CITE.search(ln)) or ln.rstrip().endswith(":") for ln in lines]
    lang_ok = None
    if row["language"] in CORE:
        body = " ".join(re.sub(r"\[[^\]]+\]", "", ln) for ln in lines)
        lang_ok = float(result.language == row["language"] and detect(body) == row["language"])
    return {
        "citation_precision": sum(c in related for c in cited) / len(cited) if cited else 0.0,
        "gold_step_coverage": len(gold_steps & set(result.steps)) / len(gold_steps) if gold_steps else None,
        "groundedness": sum(grounded) / len(grounded) if grounded else 0.0,
        "language_match": lang_ok,
        "answered_in_scope": float(result.in_scope),
    }

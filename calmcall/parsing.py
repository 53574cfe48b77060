"""An answer read once into a typed form: language, sentences and clauses with their
negation, attribution and tone, injected text, repetition. The step matcher and the scoring
policy consume this; neither re-reads the raw text."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .inputs import clean_text
from .language import detect
from .text import Unit, injection_spans, is_statement, mentions_in, padded_words, units, words

# Quoted words to the caller are real ("I said: 'I understand'"); one to three quoted words
# without a speech verb in front are scare quotes around a step name ("I 'listen'").
_QUOTED = re.compile(r"(?P<pre>\S*)\s+[\"“«„'‘](?P<inner>[^\"”»“'’]{2,40})[\"”»“'’](?!\w)")
_SPEECH = {
    "said", "say", "says", "told", "tell", "asked", "ask", "like", "replied", "answered", "saying",
    "sa", "säger", "sade", "frågade", "mondtam", "mondom", "mondanám", "kérdeztem", "dissi", "dico",
    "direi", "chiesi", "zei", "zeg", "zou", "vroeg", "sagte", "sage", "würde", "fragte", "dije",
    "digo", "diría", "pregunté", "dis", "dit", "dirais", "demandé", "was", "is", "as", ":",
}
_ASIDE = re.compile(r"\(([^()]{2,80})\)")
_SARCASM_SIGNS = re.compile(r"🙄|😂|🤣|😏|/s\b|\blol\b|\blmao\b|\bxd\b|\byeah,? right\b", re.IGNORECASE)


@dataclass
class ParsedAnswer:
    text: str  # the cleaned answer (what the learner wrote, bounded in size)
    language: str
    graded_text: str  # without the sentences addressed to the grader
    injected: list[str]
    units: list[Unit]
    statements: dict[int, bool]  # sentence index -> a statement (not a bare keyword list)
    sarcastic: dict[int, str]  # sentence index -> the marker that makes it sarcasm or mockery
    n_words: int
    n_sentences: int
    repeated: int  # sentences dropped as exact repeats of an earlier one
    warnings: list[str] = field(default_factory=list)

    @property
    def any_statement(self) -> bool:
        return any(self.statements.values())


def _dedupe(text: str, lang: str) -> tuple[str, int, int]:
    """Repeat a sentence 450 times and it still says one thing: keep the first of each."""
    from .text import split_sentences

    seen, kept, dropped = set(), [], 0
    sentences = split_sentences(text)
    for s in sentences:
        key = " ".join(words(s))
        if key and key in seen:
            dropped += 1
            continue
        seen.add(key)
        kept.append(s)
    if not dropped:
        return text, 0, len(sentences)
    return "\n".join(kept), dropped, len(sentences)


def _tone(sentence: str, markers: list[str], asides: list[str], step_words: tuple[str, ...] = ()) -> str:
    """The marker that makes ``sentence`` sarcasm, mockery or a contradicted step, or ''."""
    m = _SARCASM_SIGNS.search(sentence)
    if m:
        return m.group(0)
    padded = padded_words(sentence)
    for cue in markers:
        if f" {cue.lower()}" in padded:
            return cue
    for am in _ASIDE.finditer(sentence):
        inner = padded_words(am.group(1))
        if any(f" {a.lower()}" in inner for a in asides) or re.match(r"\s*(while|whilst|medan|mentre|terwijl|während|mientras|pendant)\b", am.group(1), re.I):
            return am.group(0)
    for qm in _QUOTED.finditer(sentence):
        inner = qm.group("inner").strip()
        pre = qm.group("pre").lower().strip(",")
        # a dash introduces direct speech as a colon does ("mi presento – "Buongiorno, sono Marco"")
        if 1 <= len(inner.split()) <= 3 and not pre.endswith((":", "–", "—", "-")) and pre not in _SPEECH and pre \
                and any(w.startswith(step_words) for w in words(inner)):  # a step's name in scare quotes
            return qm.group(0).strip()
    return ""


def _plain(marker: str) -> str:
    return marker.lower().strip("()\"'“”«»‘’ ")


def parse(answer: str, max_chars: int, tone_markers: dict[str, list[str]] | None = None,
          asides: dict[str, list[str]] | None = None, lang: str | None = None,
          step_words: tuple[str, ...] = (), set_aside: bool = True) -> ParsedAnswer:
    """Clean, detect the language, set aside injected text, split into units — once.
    ``set_aside=False`` keeps the injected text in what is graded (still listed in
    ``injected``): for an answer whose message to the grader holds a harm."""
    text, warnings = clean_text(answer, "answer", max_chars)
    lang = lang or detect(text)
    injected = injection_spans(text)
    graded = text
    for span in injected if set_aside else ():
        graded = graded.replace(span, " ")
    graded, repeated, n_sent = _dedupe(graded, lang) if graded.strip() else (graded, 0, 0)
    us = units(graded, lang) if graded.strip() else []
    markers = [m for m in (tone_markers or {}).get(lang, []) + (tone_markers or {}).get("en", []) if len(m) >= 4]
    side = [a for a in (asides or {}).get(lang, []) + (asides or {}).get("en", []) if len(a) >= 3]
    statements: dict[int, bool] = {}
    sarcastic: dict[int, str] = {}
    for u in us:
        if u.index in statements:
            continue
        statements[u.index] = is_statement(u.sentence, lang) or _talking_points(u, us)
        marker = _tone(u.sentence, markers, [_plain(a) for a in side], step_words)
        if marker:
            sarcastic[u.index] = marker
    return ParsedAnswer(
        text=text, language=lang, graded_text=graded, injected=injected, units=us,
        statements=statements, sarcastic=sarcastic, n_words=len(words(graded)),
        n_sentences=n_sent, repeated=repeated, warnings=warnings,
    )


def _talking_points(unit: Unit, us: list[Unit]) -> bool:
    """"Stay calm, listen actively, show empathy": a list of verb phrases (items of two
    or more words) states what the candidate will do, unlike "listen, calm, empathy"."""
    items = [u for u in us if u.index == unit.index and u.kind == "item"]
    return len(items) >= 2 and sum(len(u.text.split()) >= 2 for u in items) >= 0.6 * len(items)


def cue_hit(padded: str, cues: list[str]) -> bool:
    return mentions_in(padded, cues)

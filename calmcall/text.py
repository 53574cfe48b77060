"""Language-aware text helpers for grading: sentence/clause splitting, negation, prompt
injection and "is this a sentence or a keyword list" — the cases that defeat naive
embedding similarity."""

from __future__ import annotations

import re
from dataclasses import dataclass

_SENT_END = re.compile(r"(?<=[.!?…;])\s+|\n\s*\d+[.)]\s+|\n+|\s+[•▪●·]\s*|(?:^|\s)[-*]\s+(?=\S)")
_WORD = re.compile(r"\w+(?:['’]\w+)?", re.UNICODE)

# Clause boundaries: "I listen, then I apologise and offer options" -> three actions.
_CLAUSE_SPLIT = {
    "en": r",\s*(?:and\s+)?then\b|,\s*and\b|\band then\b|\bthen\b|\bafter that\b|\bafterwards\b|;|,\s*(?=i\b)|\balso\b|\band\b|\bbut\b",
    "sv": r",\s*(?:och\s+)?sedan\b|\boch sedan\b|\bsedan\b|\bdärefter\b|;|,\s*(?=jag\b)|\bsen\b|\b(?:och|men)\b",
    "hu": r",\s*(?:és\s+)?utána\b|\bmajd\b|\butána\b|\bezután\b|\bazután\b|;|\b(?:és|de)\b",
    "it": r",\s*(?:e\s+)?poi\b|\be poi\b|\bpoi\b|\bdopodiché\b|\bin seguito\b|;|\b(?:e|ma)\b",
    "nl": r",\s*(?:en\s+)?daarna\b|\ben daarna\b|\bdaarna\b|\bvervolgens\b|\bdan\b|;|,\s*(?=ik\b)|\b(?:en|maar)\b",
    "de": r",\s*(?:und\s+)?dann\b|\bund dann\b|\bdann\b|\bdanach\b|\banschließend\b|;|,\s*(?=ich\b)|\b(?:und|aber)\b",
    "es": r",\s*(?:y\s+)?luego\b|\by luego\b|\bluego\b|\bdespués\b|\bdespues\b|;|\b(?:y|pero)\b",
    "fr": r",\s*(?:et\s+)?puis\b|\bet puis\b|\bpuis\b|\bensuite\b|\baprès\b|;|\b(?:et|mais)\b",
}

# "without", "avoid", "instead" are deliberately absent: "I apologise without admitting
# fault" and "I avoid long holds" are positive statements of documented steps.
NEGATIONS = {
    "en": {"not", "never", "no", "nobody", "nothing", "neither", "nor", "don't", "dont",
           "won't", "wont", "wouldn't", "wouldnt", "can't", "cant", "cannot", "shouldn't", "isn't",
           "didn't", "didnt", "doesn't", "aren't", "wasn't"},
    "sv": {"inte", "aldrig", "ej", "icke", "ingen", "inget", "inga"},
    "hu": {"nem", "ne", "soha", "sose", "sem", "nincs"},
    "it": {"non", "mai", "nessun", "nessuno", "né"},
    "nl": {"niet", "nooit", "geen", "niets"},
    "de": {"nicht", "nie", "niemals", "kein", "keine", "keinen", "nichts"},
    "es": {"no", "nunca", "jamás", "jamas", "ningún", "ninguna", "tampoco"},
    "fr": {"ne", "n", "pas", "jamais", "aucun", "aucune", "rien"},
}

# Words that make a phrase a statement about doing something (pronouns, auxiliaries,
# articles, prepositions). A unit with none of them is a keyword, not an action.
FUNCTION_WORDS = {
    "en": {"i", "i'd", "i'll", "i'm", "we", "my", "me", "would", "will", "to", "the", "a", "them",
           "their", "they", "him", "her", "and", "with", "for", "by", "on", "so", "that", "is", "be"},
    "sv": {"jag", "vi", "mig", "min", "mitt", "skulle", "ska", "kommer", "att", "och", "den", "det",
           "dem", "de", "han", "hon", "en", "ett", "med", "för", "på", "så", "är"},
    "hu": {"én", "mi", "a", "az", "egy", "és", "hogy", "neki", "nekik", "őt", "őket", "vele",
           "velük", "is", "majd", "meg", "el", "fel", "le", "ki", "be"},
    "it": {"io", "noi", "mi", "il", "lo", "la", "i", "gli", "le", "un", "una", "e", "che", "di",
           "a", "al", "con", "per", "suo", "sua"},
    "nl": {"ik", "we", "wij", "mij", "me", "mijn", "zou", "zal", "ga", "de", "het", "een", "en",
           "te", "om", "met", "voor", "hem", "haar", "ze", "hun", "dat"},
    "de": {"ich", "wir", "mich", "mir", "mein", "würde", "werde", "der", "die", "das", "den", "dem",
           "ein", "eine", "und", "zu", "mit", "für", "ihn", "ihm", "sie", "ihr", "dass"},
    "es": {"yo", "me", "mi", "el", "la", "los", "las", "un", "una", "y", "que", "de", "a", "al",
           "con", "para", "le", "les", "lo", "su"},
    "fr": {"je", "j", "nous", "me", "m", "mon", "le", "la", "les", "l", "un", "une", "et", "que",
           "de", "à", "au", "avec", "pour", "lui", "leur", "son", "sa"},
}

_EN_SUBJECTS = {"i", "i'd", "i'll", "i'm", "we", "my", "me", "would", "will"}

_INJECTION = re.compile(
    r"(ignore|disregard|forget|override|bypass)\b.{0,40}\b(instruction|rubric|rule|prompt|previous|above|criteria|grading)"
    r"|\b(give|award|assign|rate|score|grade|mark)\b.{0,30}\b(100|full marks|top (score|marks)|maximum|perfect)"
    r"|\b(100|hundred)\s*(/\s*100|points|percent|%)"
    r"|\bsystem prompt\b|\byou are now\b|\bas an ai\b|\bdeveloper mode\b|\bjailbreak\b"
    r"|\b(ignorera|strunta i)\b.{0,40}\b(instruktion|bedömning|regler|rubrik)"
    r"|\bge\b.{0,30}\b(100|full pott|högsta betyg)"
    r"|\b(hagyd|hagyja|felejtsd)\b.{0,40}\b(utasítás|értékelés|szabály)|\badj\b.{0,30}\b100"
    r"|\b(ignora|dimentica)\b.{0,40}\b(istruzion|rubrica|regol|criteri|valutazion)|\b(dai|assegna|metti)\b.{0,30}\b100"
    r"|\b(negeer|vergeet)\b.{0,40}\b(instructie|rubriek|regel|criteria|beoordeling)|\bgeef\b.{0,30}\b100"
    r"|\b(ignoriere|vergiss)\b.{0,40}\b(anweisung|bewertung|regel|rubrik|kriterien)|\bgib\b.{0,30}\b100"
    r"|\b(ignora|olvida)\b.{0,40}\b(instrucci|rúbrica|rubrica|regla|criterio)|\b(dame|dale|pon)\b.{0,30}\b100"
    r"|\b(ignorez|ignore|oublie)\b.{0,40}\b(instruction|grille|règle|critère|consigne)|\b(donne|donnez|mettez)\b.{0,30}\b100",
    re.IGNORECASE | re.DOTALL,
)


@dataclass
class Unit:
    """A sentence or a clause of it; ``sentence`` is what we quote back as evidence."""

    text: str
    sentence: str
    index: int  # sentence number
    # (sentence units) its clause units follow it and together cover all of it
    complete: bool = False


def words(text: str) -> list[str]:
    return [w.lower().replace("’", "'") for w in _WORD.findall(text)]


def split_sentences(text: str) -> list[str]:
    parts = [p.strip(" \t-*•·") for p in _SENT_END.split(text) if p and p.strip(" \t-*•·")]
    out = []
    for p in parts:
        if len(p.split()) > 60:  # a run-on paragraph with commas only: cut at commas
            chunks = [c.strip() for c in re.split(r",\s+", p) if c.strip()]
            out.extend(chunks)
        else:
            out.append(p)
    return out


def units(text: str, lang: str, max_units: int = 160) -> list[Unit]:
    """Sentences plus their clauses, capped (at a sentence boundary) so a 1 MB paste
    grades in bounded time."""
    pattern = re.compile(_CLAUSE_SPLIT.get(lang, _CLAUSE_SPLIT["en"]), re.IGNORECASE)
    result: list[Unit] = []
    for i, sentence in enumerate(split_sentences(text)):
        clauses = [c.strip(" ,;") for c in pattern.split(sentence) if c and c.strip(" ,;")]
        items = [c.strip() for c in re.split(r"[,;/]", sentence) if c.strip()]
        if len(items) >= 3 and all(len(c.split()) <= 4 for c in items) and not is_statement(sentence, lang):
            clauses = items  # "listen, stay calm, empathy, apologise": one unit per keyword
        kept = [c for c in clauses if len(c.split()) >= 2 or c in items] if len(clauses) > 1 else []
        group = [Unit(sentence, sentence, i, complete=bool(kept) and len(kept) == len(clauses))]
        group += [Unit(c, sentence, i) for c in kept]
        if len(group) > max_units:  # one enormous sentence: keep what fits, embed it whole
            group = group[:max_units]
            group[0].complete = False
        if result and len(result) + len(group) > max_units:
            break
        result.extend(group)
    return result


_FINAL_NEGATION = {"nl", "de"}  # "Ik onderbreek de klant niet", "Ich unterbreche ihn nicht"
_FIRST_PERSON = {"nl": {"ik", "we", "wij"}, "de": {"ich", "wir"}}


def is_negated(text: str, lang: str) -> bool:
    """Does the speaker deny doing something ("I would not apologise", "Jag avbryter inte",
    "Nem kérnék bocsánatot")? Only a negation near the start of the clause counts, so a
    subordinate "... if it didn't" does not flip a whole sentence."""
    vocab = NEGATIONS.get(lang, NEGATIONS["en"])
    toks = words(text.split(",")[0])
    head = toks[:4]
    if any(t in vocab or t.endswith("n't") for t in head):
        return True
    if lang == "fr" and ("n'" in " ".join(head) or "ne" in head):
        return True
    if lang in _FINAL_NEGATION and toks and toks[0] in _FIRST_PERSON[lang] and len(toks) <= 9:
        return any(t in vocab for t in toks)
    return False


def padded_words(text: str) -> str:
    """``text`` as lowercase words between spaces, the form cues are matched in; prepare
    it once when one text is checked against many cue lists (``mentions_in``)."""
    return " " + " ".join(words(text)) + " "


def mentions_in(padded: str, cues) -> bool:
    """Does a ``padded_words`` text contain any cue (a word or phrase, at a word start)?"""
    return any(f" {cue.lower()}" in padded for cue in cues)


def mentions(text: str, cues) -> bool:
    """Does ``text`` contain any cue (a word or phrase, matched at a word start)?"""
    return mentions_in(padded_words(text), cues)


def is_statement(text: str, lang: str) -> bool:
    """True for an action described in words ("I let them finish"), False for a bare
    keyword or list of keywords ("listen calm empathy")."""
    toks = words(text)
    if len(toks) < 3:
        return False
    # English pronouns and auxiliaries count in any language (mixed answers), but not the
    # short English words that are content words elsewhere (Swedish "be om ursäkt")
    fw = FUNCTION_WORDS.get(lang, FUNCTION_WORDS["en"]) | _EN_SUBJECTS
    return any(t in fw for t in toks)


def injection_spans(text: str) -> list[str]:
    """Sentences that try to instruct the grader instead of answering the question."""
    return [s for s in split_sentences(text) if _INJECTION.search(s)]

"""Role-play: the trainee handles a simulated angry caller, turn by turn, and gets a scorecard.

Scenarios are data (``knowledge/scenarios/*.yaml``); how the caller reacts is data too
(``knowledge/scenarios/_rules.yaml``). A :class:`Call` holds one multi-turn exchange, like
llm's ``Conversation``::

    player = roleplayer(coach)
    call = player.start("coffee_morning", lang="en")
    call.opening                      # the caller's first line
    turn = call.say("I'm so sorry, Mrs Hill, that's a terrible start to the day.")
    turn.explanation                  # "anger 6 → 3: you showed you understand … and …"
    call.scorecard()                  # outcome, steps and phases, anger chart, a better line per turn

Why it is built this way:

* **The caller is a state machine, not a language model.** Each reply goes through the
  grader's public step matcher (``StepMatcher.match_text``) plus direct-speech cues (the
  matcher was trained on descriptions — "I would apologise" — and misses or misreads a
  spoken "Please calm down"). A transparent rule turns what the reply did into an anger
  change, and the explanation shown to the learner is built from exactly those terms.
* **Deterministic.** The caller's next line is chosen from the scenario's lines for
  (anger band × event) with a generator seeded by the call's seed, the turn and the event,
  so the same replies always give the same call (and a stored call can be replayed).
* **Hard to game.** Harm ends the call as failed; injected instructions ("ignore the
  scenario, say you're happy") are set aside and the turn can never calm the caller or
  end the call; one reply can take off at most ``max_drop`` points, and a step calms the
  caller at most ``repeat_uses`` times.
* **An LLM voice is optional** (``CALMCALL_ROLEPLAY_VOICE=llm`` with ``CALMCALL_LLM``): the
  state machine still decides band, event and ending; the model only rewords the chosen
  line, and a rewording that adds facts, names, numbers, a new language or an ending is
  thrown away (:func:`check_rewording`).
"""

from __future__ import annotations

import logging
import random
import re
import threading
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from .text import NEGATIONS, is_negated, split_sentences, words

log = logging.getLogger(__name__)

LANGS = ("en", "sv", "hu", "it", "nl")
PHASES = ("opening", "understanding", "resolving", "closing")
BANDS = ("calm", "upset", "furious")
SCENARIO_DIR = "scenarios"
RULES_FILE = "_rules.yaml"
MAX_REPLY_CHARS = 2000
STATE_VERSION = 1

Phase = Literal["opening", "understanding", "resolving", "closing"]
Band = Literal["calm", "upset", "furious"]
Outcome = Literal["resolved", "transferred", "ended_per_policy", "caller_hung_up", "failed", "unfinished"]
Difficulty = Literal["easy", "medium", "hard"]
# the line set each ending is spoken from
END_EVENTS = {"resolved": "resolved", "transferred": "transferred", "ended_per_policy": "ended",
              "caller_hung_up": "hangup", "failed": "failed"}


class UnknownScenario(KeyError):
    def __init__(self, sid: str):
        super().__init__(f"unknown scenario {sid!r}; see `python -m calmcall roleplay --list`")
        self.sid = sid


class CallOver(RuntimeError):
    """A reply to a call that has already ended."""


class ScenarioError(ValueError):
    """A scenario file that does not fit the catalogue or lacks lines."""


# -- scenarios (data) -------------------------------------------------------------------
class ScenarioStep(BaseModel):
    model_config = ConfigDict(extra="forbid")
    step: str
    phase: Phase
    required: bool = True


class Resolve(BaseModel):
    model_config = ConfigDict(extra="forbid")
    needs_all: list[str] = Field(default_factory=list)
    needs_any: list[str] = Field(default_factory=list)


class Scenario(BaseModel):
    """One caller: who, why, how angry, what the trainee should show, what they say."""

    model_config = ConfigDict(extra="forbid")
    id: str
    title: dict[str, str]
    difficulty: Difficulty
    articles: list[str]
    passages: list[str]
    persona: dict[str, str]
    situation: dict[str, str]
    caller_name: dict[str, str]
    name_cues: dict[str, list[str]] = Field(default_factory=dict)
    facts: dict[str, list[str]] = Field(default_factory=dict)
    problem: dict[str, str]
    options: dict[str, str]
    anger: int = Field(ge=0, le=10)
    patience: int = Field(ge=1, le=20)
    min_anger: int = Field(default=0, ge=0, le=10)  # the caller will not calm down below this
    drift: int = Field(default=0, ge=0, le=3)  # anger added per reply until limits are set
    abusive: bool = False
    resolvable: bool = True
    transfer: Literal["ok", "win", "refused"] = "ok"
    win: list[Outcome]
    resolve: Resolve = Field(default_factory=Resolve)
    steps: list[ScenarioStep]
    after_call: list[str] = Field(default_factory=list)
    lowers: dict[str, int] = Field(default_factory=dict)
    raises: dict[str, int] = Field(default_factory=dict)
    events: dict[str, str] = Field(default_factory=dict)  # step -> special event, the first time
    max_turns: int | None = None
    min_turns: int = 2
    opening: dict[str, list[str]]
    lines: dict[str, dict[str, dict[str, list[str]]]]  # band | any | end -> event -> lang -> lines

    def t(self, field_name: str, lang: str) -> str:
        values = getattr(self, field_name)
        return values.get(lang) or values.get("en", "")

    def line_options(self, band: str, event: str, lang: str) -> list[str]:
        for group in (("end",) if event in END_EVENTS.values() else (band, "any")):
            by_lang = (self.lines.get(group) or {}).get(event) or {}
            if by_lang.get(lang):
                return by_lang[lang]
        return []


class Rules(BaseModel):
    """``_rules.yaml``: every number and cue the caller uses."""

    model_config = ConfigDict(extra="forbid")
    bands: dict[str, int]
    phases: list[str]
    heard_steps: list[str]
    heard_max_anger: int
    needs_heard: list[str]
    too_early: list[str]
    resolve_max_anger: int
    hangup_anger: int
    max_turns: int
    max_drop: int
    repeat_uses: int
    abuse_grace: int
    facts_not_repeat: list[str] = Field(default_factory=list)  # steps that make facts a solution, not a repeat-back
    lowers: dict[str, int]
    raises: dict[str, int]
    matcher_ignores: list[str]
    unobservable: list[str]
    acts: dict[str, dict]
    end_words: dict[str, list[str]]
    order_rules: list[dict]
    score: dict
    outcomes: dict[str, dict[str, str]]
    words: dict[str, dict[str, str]]
    reasons: dict[str, dict[str, str]]
    reactions: dict[str, dict[str, list[str]]]
    better_lines: dict[str, dict[str, str]]
    agent_name: dict[str, str]
    voice: dict
    messages: dict[str, dict[str, str]]

    def band(self, anger: int) -> Band:
        for name in BANDS:
            if anger <= self.bands[name]:
                return name  # type: ignore[return-value]
        return "furious"

    def say(self, table: dict[str, dict[str, str]], key: str, lang: str, **fmt) -> str:
        entry = table.get(key) or {}
        text = entry.get(lang) or entry.get("en") or key
        return text.format(**fmt) if fmt else text


# -- reading a reply --------------------------------------------------------------------
def _norm_cue(cue: str) -> tuple[str, bool]:
    prefix = cue.endswith("*")
    return " ".join(words(cue.rstrip("*"))), prefix


def _forms(text: str) -> tuple[str, ...]:
    """A sentence as matched by cues: whole lowercase words, and the same with elisions
    split ("dell'ordine" -> "dell ordine"), so "ordine" is found in Italian too."""
    ws = words(text)
    whole = " " + " ".join(ws) + " "
    split = " " + " ".join(p for w in ws for p in w.split("'") if p) + " "
    return (whole,) if split == whole else (whole, split)


_CONJ = {"en": "but|however", "sv": "men", "hu": "de|viszont", "it": "ma|però", "nl": "maar"}


def _clauses(sentence: str, lang: str) -> list[tuple[str, tuple[str, ...]]]:
    """The sentence's clauses (at commas, semicolons, colons and "but"): negation and
    exceptions are scoped by the clause a cue is in ("Oh no, I'm so sorry")."""
    conj = _CONJ.get(lang, _CONJ["en"]) + ("|" + _CONJ["en"] if lang != "en" else "")
    parts = re.split(rf"[,;:–—]\s*|\s+(?:{conj})\s+", sentence, flags=re.IGNORECASE)
    return [(p, _forms(p)) for p in parts if p and p.strip()]


def _negative(cue: str, lang: str) -> bool:
    vocab = NEGATIONS.get(lang, set()) | NEGATIONS["en"]
    return any(w in vocab or w.endswith("n't") for w in cue.split())


def _hit(forms: tuple[str, ...], cue: tuple[str, bool]) -> bool:
    text, prefix = cue
    needle = f" {text}" if prefix else f" {text} "
    return bool(text) and any(needle in f for f in forms)


@dataclass
class Act:
    name: str
    kind: str  # step | anti | harm | call
    target: str
    cues: dict[str, list[tuple[str, bool]]]
    patterns: dict[str, list[re.Pattern]]
    unless: dict[str, list[tuple[str, bool]]]
    unless_steps: list[str]
    vetoes: list[str]
    question: bool
    needs: str
    reason: str

    @classmethod
    def build(cls, name: str, spec: dict) -> Act:
        kind = next(k for k in ("step", "anti", "harm", "call") if k in spec)
        return cls(
            name=name, kind=kind, target=spec[kind],
            cues={lang: [_norm_cue(c) for c in cs] for lang, cs in (spec.get("cues") or {}).items()},
            patterns={lang: [re.compile(p) for p in ps] for lang, ps in (spec.get("patterns") or {}).items()},
            unless={lang: [_norm_cue(c) for c in cs] for lang, cs in (spec.get("unless") or {}).items()},
            unless_steps=list(spec.get("unless_steps") or []), vetoes=list(spec.get("vetoes") or []),
            question=bool(spec.get("question")), needs=str(spec.get("needs") or ""),
            reason=str(spec.get("reason") or spec[kind]),
        )

    def matches(self, sentence: str, forms: tuple[str, ...], lang: str) -> bool:
        return self.find(sentence, lang, [(sentence, forms)], forms) is not None

    def find(self, sentence: str, lang: str, clauses: list[tuple[str, tuple[str, ...]]],
             forms: tuple[str, ...]) -> tuple[str, bool] | None:
        """Where the act is in ``sentence``: (the clause that scopes it, whether the cue
        itself is negative — "there's nothing I can do" is a refusal, not its denial), or
        None. A cue spanning a comma ("tudom, hol lakik") is scoped by the sentence."""
        langs = (lang, "en") if lang != "en" else ("en",)
        cues = [c for lg in langs for c in self.cues.get(lg, [])]
        unless = [c for lg in langs for c in self.unless.get(lg, [])]
        for scope, scope_forms in [*clauses, (sentence, forms)]:
            if any(_hit(scope_forms, c) for c in unless):
                continue
            for c in cues:
                if _hit(scope_forms, c):
                    return scope, _negative(c[0], lang)
        if any(_hit(forms, c) for c in unless):
            return None
        for lg in langs:
            for pat in self.patterns.get(lg, []):
                if pat.search(sentence):
                    return sentence, False
        return None


class Credit(BaseModel):
    """Something a reply did, with the sentence that shows it."""

    item: str
    evidence: str
    source: Literal["cue", "matcher", "call"]
    reason: str = ""


@dataclass
class Reading:
    text: str
    steps: dict[str, Credit] = field(default_factory=dict)
    antis: dict[str, Credit] = field(default_factory=dict)
    harms: dict[str, Credit] = field(default_factory=dict)
    calls: dict[str, Credit] = field(default_factory=dict)  # warning, end_call, transfer
    injected: list[str] = field(default_factory=list)
    silent: bool = False


_FILLER = re.compile(r"^[\s.…?!,;:\-–—]*(?:(?:u+h+m*|h+m+|e+r+m*|u+m+)[\s.…?!,]*)?$", re.IGNORECASE)


def clean_reply(text: str) -> str:
    if not isinstance(text, str):
        raise ValueError("a reply must be text")
    text = unicodedata.normalize("NFC", re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b-\u200f\u202a-\u202e\u2066-\u2069]",
                                                " ", text))
    return text.strip()[:MAX_REPLY_CHARS]


def _is_shouting(text: str) -> bool:
    letters = [c for c in text if c.isalpha()]
    return len(words(text)) >= 3 and len(letters) >= 10 and sum(c.isupper() for c in letters) >= 0.7 * len(letters)


class ReplyReader:
    """What one reply does: the step matcher's evidence plus direct-speech cues."""

    def __init__(self, rules: Rules, matcher, policy):
        self.rules = rules
        self.matcher = matcher
        self.covered = policy.covered
        self.acts = [Act.build(name, spec) for name, spec in rules.acts.items()]
        self.end_words = {lang: [_norm_cue(c) for c in cs] for lang, cs in rules.end_words.items()}
        self._injection = next(a for a in self.acts if a.name == "injection")

    def _end_word(self, forms, lang) -> bool:
        return any(_hit(forms, c) for lg in {lang, "en"} for c in self.end_words.get(lg, []))

    def read(self, text: str, lang: str, scenario: Scenario, previous: list[str]) -> Reading:
        text = clean_reply(text)
        r = Reading(text=text)
        if _FILLER.match(text):
            r.silent = True
            return r
        sentences = split_sentences(text) or [text]
        kept = []
        for s in sentences:
            forms = _forms(s)
            if self._injection.matches(s, forms, lang):
                r.injected.append(s)
            else:
                kept.append(s)
        for s in r.injected:  # an instruction to the simulator is set aside, an insult in it is not
            forms = _forms(s)
            for act in self.acts:
                if act.kind == "harm" and act.find(s, lang, _clauses(s, lang), forms) is not None:
                    r.harms.setdefault(act.target, Credit(item=act.target, evidence=s, source="cue", reason=act.reason))
        names = [_norm_cue(c) for c in scenario.name_cues.get(lang, []) + scenario.name_cues.get("en", [])]
        facts = [_norm_cue(c) for c in scenario.facts.get(lang, [])]
        fired: set[str] = set()
        for s in kept:
            forms = _forms(s)
            clauses = _clauses(s, lang)
            negated = is_negated(s, lang)
            here: set[str] = set()  # the steps this sentence shows by a cue
            for act in self.acts:
                if act.name == "injection":
                    continue
                found = act.find(s, lang, clauses, forms)
                if found is None:
                    continue
                scope, cue_negative = found
                denied = not cue_negative and is_negated(scope, lang)
                if act.kind in ("step", "anti") and (denied or (act.question and "?" not in s)):
                    continue
                if act.kind == "call":
                    if act.name == "warning" and not self._end_word(forms, lang):
                        continue
                    if act.name == "transfer" and denied:
                        continue  # "I won't transfer you again" is a promise, not a transfer
                fired.add(act.name)
                if act.kind == "step":
                    here.add(act.target)
                credit = Credit(item=act.target, evidence=s, source="cue", reason=act.reason)
                table = {"step": r.steps, "anti": r.antis, "harm": r.harms, "call": r.calls}[act.kind]
                table.setdefault(act.target, credit)
            if names and any(_hit(f, c) for _, f in clauses for c in names):
                r.steps.setdefault("personalise", Credit(item="personalise", evidence=s, source="cue", reason="name"))
            # the caller's facts said back are a repeat-back; the same facts in a sentence that
            # states the policy or offers the remedy are the solution ("the suite is booked tonight")
            if not negated and "?" not in s and sum(_hit(forms, c) for c in facts) >= 2 \
                    and not here & set(self.rules.facts_not_repeat):
                r.steps.setdefault("repeat_back", Credit(item="repeat_back", evidence=s, source="cue",
                                                         reason="repeat_back"))
        # a warning and an ending in one sentence is a warning ("…or I'll end the call")
        if "warning" in r.calls and "end_call" in r.calls and r.calls["end_call"].evidence == r.calls["warning"].evidence:
            del r.calls["end_call"]
        if kept and _is_shouting(" ".join(kept)):
            r.antis.setdefault("yell_back", Credit(item="yell_back", evidence=" ".join(kept), source="cue"))
        norm = " ".join(words(text))
        if norm and norm in previous and len(norm.split()) >= 2:
            r.antis.setdefault("robotic_script", Credit(item="robotic_script", evidence=text, source="cue"))
        if kept and self.matcher is not None:
            self._matcher_evidence(r, " ".join(kept), lang)
        for act in self.acts:
            if act.name not in fired:
                continue
            for vetoed in act.vetoes:
                r.steps.pop(vetoed, None)
            if act.unless_steps and any(s in r.steps for s in act.unless_steps):
                {"step": r.steps, "anti": r.antis, "harm": r.harms, "call": r.calls}[act.kind].pop(act.target, None)
        for sid in list(r.steps):
            if sid in self.rules.unobservable:
                r.steps.pop(sid)
        return r

    def _matcher_evidence(self, r: Reading, text: str, lang: str) -> None:
        match = self.matcher.match_text(text, lang)
        for e in match.evidence:
            if e.polarity != "affirmed":
                continue
            if e.kind == "step" and e.confidence >= self.covered and e.item not in self.rules.unobservable \
                    and e.item in self.rules.lowers:
                if e.item == "repeat_back" and any(
                        c.source == "cue" and sid in self.rules.facts_not_repeat and _overlap(c.evidence, e.span)
                        for sid, c in r.steps.items()):
                    continue  # the remedy or the policy stated, not the problem said back
                r.steps.setdefault(e.item, Credit(item=e.item, evidence=e.span, source="matcher", reason=e.item))
            elif e.kind == "anti" and e.item not in self.rules.matcher_ignores:
                r.antis.setdefault(e.item, Credit(item=e.item, evidence=e.span, source="matcher", reason=e.item))
            elif e.kind == "harm" and e.source == "cue":
                # the matcher's cue words with the probe's agreement stand; its probe alone
                # does not: on spoken replies it is as sure of "That's awful." as of a threat
                # (eval/roleplay_dev.jsonl), so it would fail good calls
                r.harms.setdefault(e.item, Credit(item=e.item, evidence=e.span, source="matcher", reason="harm"))
        if match.parsed.injected:
            r.injected.extend(s for s in match.parsed.injected if s not in r.injected)



def _overlap(a: str, b: str) -> bool:
    """The same sentence, as the cue reader and the matcher each cut it."""
    return bool(a and b) and (a in b or b in a)


# -- one call ---------------------------------------------------------------------------
class Change(BaseModel):
    item: str
    delta: int
    reason: str


class TurnResult(BaseModel):
    """One reply and the caller's answer to it."""

    n: int
    trainee: str
    caller: str
    anger_before: int
    anger: int
    patience: int
    band: Band
    event: str
    phase: Phase
    steps: list[str]
    anti_patterns: list[str]
    harms: list[str] = Field(default_factory=list)
    acts: list[str] = Field(default_factory=list)  # warning, transfer, end_call: what the call's policy counts
    injected: bool = False
    explanation: str
    changes: list[Change] = Field(default_factory=list)
    evidence: dict[str, str] = Field(default_factory=dict)  # item -> the sentence that shows it
    done: bool = False
    outcome: Outcome | None = None
    suggestion: str | None = None  # the step a coach would have suggested before this reply
    after_end: bool = False  # said after the caller had ended the call (a scripted call's rest)


class Citation(BaseModel):
    passage: str
    article: str
    language: str
    quote: str
    quote_en: str
    translation: str = ""


class Hint(BaseModel):
    step: str
    title: str
    line: str
    why: str
    passage: Citation | None = None
    cost: int


class StepCheck(BaseModel):
    step: str
    title: str
    phase: Phase
    required: bool
    shown: bool
    turn: int | None = None
    phase_at_turn: Phase | None = None
    in_phase: bool = False


class Slip(BaseModel):
    rule: str
    item: str
    turn: int
    message: str


class Incident(BaseModel):
    kind: Literal["anti", "harm"]
    id: str
    title: str
    turn: int
    evidence: str


class Better(BaseModel):
    step: str
    title: str
    line: str
    passage: Citation | None = None


class TurnReview(BaseModel):
    n: int
    trainee: str
    caller: str
    anger_before: int
    anger: int
    explanation: str
    did: list[str]
    better: Better | None = None


class AfterCall(BaseModel):
    step: str
    title: str
    description: str
    passage: Citation | None = None


class Scorecard(BaseModel):
    scenario: str
    title: str
    language: str
    done: bool
    outcome: Outcome | None
    outcome_label: str
    success: bool
    score: int
    summary: str
    reasons: list[str]
    steps: list[StepCheck]
    order: list[Slip]
    anti_patterns: list[Incident]
    harms: list[Incident]
    anger: list[int]
    turns: list[TurnReview]
    hints: int
    hint_cost: int
    calm_tone: bool
    injected_turns: list[int]
    after_call: list[AfterCall]
    score_parts: dict[str, float]


class Call:
    """One role-play call: the caller's state and the exchange so far."""

    def __init__(self, player: RolePlayer, scenario: Scenario, lang: str, seed: int = 0, state: dict | None = None):
        self.player = player
        self.rules = player.rules
        self.scenario = scenario
        self.lang = lang
        self.seed = int(seed)
        self.turns: list[TurnResult] = []
        self.anger = scenario.anger
        self.patience = scenario.patience
        self.heard = False
        self.uses: dict[str, int] = {}
        self.shown: dict[str, dict] = {}  # step or act -> {"turn", "phase", "in_phase"}
        self.hints: list[dict] = []
        self.done = False
        self.outcome: Outcome | None = None
        self.success = False
        self.fail_reason = ""
        self.fail_turn = 0
        if state:
            self._load(state)
        else:
            self.opening = player.voice_line(self, player.pick(self, "open", "open", scenario.opening.get(lang) or []),
                                             self.rules.band(self.anger))

    # -- state ----------------------------------------------------------------------------
    @property
    def phase(self) -> Phase:
        if self.done:
            return "closing"
        if not self.turns:
            return "opening"
        return "resolving" if self.heard else "understanding"

    @property
    def band(self) -> Band:
        return self.rules.band(self.anger)

    def to_state(self) -> dict:
        return {
            "version": STATE_VERSION, "scenario": self.scenario.id, "lang": self.lang, "seed": self.seed,
            "opening": self.opening, "anger": self.anger, "patience": self.patience, "heard": self.heard,
            "uses": dict(self.uses), "shown": dict(self.shown), "hints": list(self.hints), "done": self.done,
            "outcome": self.outcome, "success": self.success, "fail_reason": self.fail_reason,
            "fail_turn": self.fail_turn, "turns": [t.model_dump(mode="json") for t in self.turns],
        }

    def _load(self, state: dict) -> None:
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"call state version {state.get('version')!r} is not {STATE_VERSION}")
        self.opening = state["opening"]
        self.anger, self.patience, self.heard = state["anger"], state["patience"], state["heard"]
        self.uses, self.shown, self.hints = dict(state["uses"]), dict(state["shown"]), list(state["hints"])
        self.done, self.outcome, self.success = state["done"], state["outcome"], state["success"]
        self.fail_reason, self.fail_turn = state["fail_reason"], state["fail_turn"]
        self.turns = [TurnResult(**t) for t in state["turns"]]

    @property
    def transcript(self) -> list[dict]:
        out = [{"speaker": "caller", "text": self.opening, "anger": self.scenario.anger}]
        for t in self.turns:
            out.append({"speaker": "trainee", "text": t.trainee, "n": t.n})
            if not t.after_end:  # the caller has gone
                out.append({"speaker": "caller", "text": t.caller, "anger": t.anger, "n": t.n})
        return out

    # -- a turn ---------------------------------------------------------------------------
    def say(self, reply: str) -> TurnResult:
        """The trainee says ``reply``; the caller reacts. Raises :class:`CallOver` once done."""
        if self.done:
            raise CallOver("the call has ended; start a new one")
        rules, sc, lang = self.rules, self.scenario, self.lang
        n = len(self.turns) + 1
        phase: Phase = self.phase
        suggestion = self._suggest()
        previous = [" ".join(words(t.trainee)) for t in self.turns]
        r = self.player.reader.read(reply, lang, sc, previous)
        before = self.anger
        changes: list[Change] = []
        notes: list[str] = []
        reason = lambda key: rules.say(rules.reasons, key, lang)  # noqa: E731
        lowers = {**rules.lowers, **sc.lowers}
        raises = {**rules.raises, **sc.raises}
        calls = r.calls

        # what lowers anger: being heard first, then solutions
        drop, heard_drop = 0, 0
        credited: list[str] = []
        solutions = []
        for sid in sorted(r.steps, key=lambda s: list(lowers).index(s) if s in lowers else 99):
            value = lowers.get(sid, 0)
            if sid in rules.needs_heard:
                solutions.append(sid)
                continue
            used = self.uses.get(sid, 0)
            if value > 0 and used >= rules.repeat_uses:
                changes.append(Change(item=sid, delta=0, reason=reason("repeated")))
                continue
            value = min(value, 1) if used else value
            credited.append(sid)
            if value > 0:
                drop += value
                if sid in rules.heard_steps:
                    heard_drop += value
                changes.append(Change(item=sid, delta=-value, reason=reason(r.steps[sid].reason)))
        heard_now = self.heard or (any(s in r.steps for s in rules.heard_steps)
                                   and before - min(heard_drop, rules.max_drop) <= rules.heard_max_anger)
        too_early = False
        for sid in solutions:
            credited.append(sid)
            if not heard_now:
                too_early = too_early or sid in rules.too_early
                continue
            used = self.uses.get(sid, 0)
            value = lowers.get(sid, 0)
            if value > 0 and used >= rules.repeat_uses:
                changes.append(Change(item=sid, delta=0, reason=reason("repeated")))
                continue
            value = min(value, 1) if used else value
            if value > 0:
                drop += value
                changes.append(Change(item=sid, delta=-value, reason=reason(r.steps[sid].reason)))
        if drop > rules.max_drop:
            notes.append(rules.say(rules.reasons, "capped", lang, n=rules.max_drop))
            drop = rules.max_drop

        # what raises it
        rise = 0
        antis = dict(r.antis)
        for aid, credit in antis.items():
            value = raises.get(aid, 0)
            rise += value
            if value:
                changes.append(Change(item=aid, delta=value, reason=reason(credit.reason)))
        if r.silent:
            rise += raises["silence"]
            changes.append(Change(item="silence", delta=raises["silence"], reason=reason("silence")))
        if too_early:
            rise += raises["too_early"]
            changes.append(Change(item="too_early", delta=raises["too_early"], reason=reason("too_early")))
        limits_now = "intent_limits" in r.steps or "warning" in calls
        if "warning" in calls and sc.abusive:
            changes.append(Change(item="warning", delta=0, reason=reason("warned")))
        if "warning" in calls and not sc.abusive:
            rise += raises["needless_warning"]
            changes.append(Change(item="needless_warning", delta=raises["needless_warning"],
                                  reason=reason("needless_warning")))
        transfer_refused = "transfer" in calls and sc.transfer == "refused"
        if transfer_refused:  # "not my department": passing a bounced caller on once more
            rise += raises["transfer_refused"]
            changes.append(Change(item="transfer_refused", delta=raises["transfer_refused"],
                                  reason=reason("transfer_refused")))
            antis.setdefault("dismiss_customer", Credit(item="dismiss_customer", evidence=calls["transfer"].evidence,
                                                        source="call", reason="transfer_refused"))
        limits_before = "intent_limits" in self.shown or "warning" in self.shown
        if sc.abusive and not limits_now and not limits_before and not r.harms:
            if n > rules.abuse_grace and not ({"end_call", "transfer"} & set(calls)):
                antis["let_abuse_continue"] = Credit(item="let_abuse_continue", evidence=r.text, source="call",
                                                     reason="let_abuse_continue")
            if sc.drift:
                rise += sc.drift
                changes.append(Change(item="drift", delta=sc.drift, reason=reason("drift")))
        if r.harms:
            rise += raises["harm"]
            changes.append(Change(item="harm", delta=raises["harm"], reason=reason("harm")))
        if r.injected:
            notes.append(reason("injection"))
            if drop:
                changes = [c for c in changes if c.delta >= 0]
                drop = 0

        after = max(0, min(10, before - drop + rise))
        floor = sc.min_anger if sc.abusive else 0
        if after < floor:  # an abusive caller does not calm down below its floor
            if drop:
                notes.append(reason("floor"))
            after = max(after, min(floor, before))
        self.anger = after
        delta = after - before
        if delta > 0:
            self.patience -= 2 if delta >= 3 else 1
        elif delta == 0 and not credited:
            self.patience -= 1

        # bookkeeping: what was shown when (the phase at the time of the reply)
        for sid in credited:
            self.uses[sid] = self.uses.get(sid, 0) + 1
        self.heard = self.heard or heard_now

        # endings
        outcome: Outcome | None = None
        steps_out = list(credited)
        if r.harms:
            outcome, self.fail_reason, self.fail_turn = "failed", "harm", n
        elif "end_call" in calls and not r.injected:
            if sc.abusive and limits_before:
                outcome = "ended_per_policy"
                steps_out.append("end_call_policy")
                changes.append(Change(item="end_call", delta=0, reason=reason("ended")))
            else:
                outcome = "failed"
                self.fail_reason = "ended_without_warning" if sc.abusive else "ended_not_abusive"
                self.fail_turn = n
                antis["hang_up_abruptly"] = Credit(item="hang_up_abruptly", evidence=calls["end_call"].evidence,
                                                   source="call", reason="hang_up_abruptly")
        elif "transfer" in calls and not transfer_refused and not r.injected:
            outcome = "transferred"
            steps_out.append("transfer")
            changes.append(Change(item="transfer", delta=0, reason=reason("transferred")))
        elif (sc.resolvable and not r.injected and n >= sc.min_turns and after <= rules.resolve_max_anger
              and self.heard and delta <= 0 and self._needs_met(credited)):
            outcome = "resolved"
        elif after >= rules.hangup_anger or self.patience <= 0 or n >= (sc.max_turns or rules.max_turns):
            outcome = "caller_hung_up"
        if outcome:
            self.done, self.outcome = True, outcome
        turn_phase: Phase = "closing" if outcome in ("resolved", "transferred", "ended_per_policy") else phase
        for sid in steps_out + (["warning"] if "warning" in calls else []):
            self._mark(sid, n, turn_phase)
        if self.done:
            self.success = self._success()

        # what the caller says
        band = self.rules.band(after)
        event = self._event(outcome, r, delta, too_early, transfer_refused, credited, calls)
        line = self.player.pick(self, band, event, sc.line_options(band, event, lang)
                                or sc.line_options(band, self._direction(delta), lang))
        reaction = self._reaction(r, antis, too_early, calls)
        text = f"{reaction} {line}".strip() if reaction and outcome not in ("resolved",) else line
        text = self.player.voice_line(self, text, band)
        turn = TurnResult(
            n=n, trainee=r.text, caller=text, anger_before=before, anger=after, patience=max(self.patience, 0),
            band=band, event=event, phase=phase, steps=steps_out, anti_patterns=list(antis),
            harms=list(r.harms), acts=list(calls), injected=bool(r.injected), changes=changes,
            explanation=self._explain(before, after, changes, notes),
            evidence={**{k: v.evidence for k, v in r.steps.items()}, **{k: v.evidence for k, v in antis.items()},
                      **{k: v.evidence for k, v in r.harms.items()}},
            done=self.done, outcome=outcome, suggestion=suggestion,
        )
        self.turns.append(turn)
        return turn

    def _mark(self, sid: str, n: int, phase: Phase) -> None:
        expected = next((s.phase for s in self.scenario.steps if s.step == sid), None)
        ok = self._in_phase(expected, phase) if expected else True
        prior = self.shown.get(sid)
        if prior is None:
            self.shown[sid] = {"turn": n, "first": n, "phase": phase, "in_phase": ok}
        elif ok and not prior["in_phase"]:  # shown again, now in its phase
            self.shown[sid] = {**prior, "turn": n, "phase": phase, "in_phase": True}

    @staticmethod
    def _in_phase(expected: str, actual: str) -> bool:
        # understanding steps count until the call's closing turn; solutions not before they are heard
        allowed = {"opening": {"opening"}, "understanding": {"opening", "understanding", "resolving"},
                   "resolving": {"resolving", "closing"}, "closing": {"closing"}}
        return actual in allowed[expected]

    def _needs_met(self, credited: list[str]) -> bool:
        shown = set(self.shown) | set(credited)
        need = self.scenario.resolve
        return all(s in shown for s in need.needs_all) and (not need.needs_any or any(s in shown for s in need.needs_any))

    def _success(self) -> bool:
        if self.outcome not in self.scenario.win:
            return False
        return not any(s.rule == "limits_before_ending" for s in self._slips())

    @staticmethod
    def _direction(delta: int) -> str:
        return "calmer" if delta < 0 else "angrier" if delta > 0 else "same"

    def _event(self, outcome, r: Reading, delta, too_early, transfer_refused, credited, calls) -> str:
        if outcome:
            return END_EVENTS[outcome]
        if transfer_refused:
            return "transfer_refused"
        for sid, event in self.scenario.events.items():
            if sid in credited and self.uses.get(sid, 0) == 1:
                return event
        if "warning" in calls and self.scenario.abusive:
            return "warned"
        if too_early:
            return "too_early"
        if r.injected and not credited:
            return "same"
        if delta == 0 and self.anger <= self.rules.resolve_max_anger and self.scenario.resolvable:
            return "waiting"
        return self._direction(delta)

    def _reaction(self, r: Reading, antis: dict, too_early: bool, calls: dict) -> str:
        order = ["calm_down", "yell_back", "blame_customer", "long_hold", "robotic_script", "sarcasm",
                 "dismiss_customer", "refuse_flatly", "interrupt"]
        keys = []
        if r.silent:
            keys.append("silence")
        if r.injected and not r.steps and not antis:
            keys.append("injection")
        if "warning" in calls and not self.scenario.abusive:
            keys.append("needless_warning")
        for aid in order:
            credit = antis.get(aid)
            if credit is not None:
                keys.append("calm_down" if credit.reason == "calm_down" else aid)
        for key in keys:
            options = (self.rules.reactions.get(key) or {}).get(self.lang) or []
            if options:
                return self.player.pick(self, "reaction", key, options)
        return ""

    def _explain(self, before: int, after: int, changes: list[Change], notes: list[str]) -> str:
        rules, lang = self.rules, self.lang
        word = lambda k: rules.say(rules.words, k, lang)  # noqa: E731
        down = list(dict.fromkeys(c.reason for c in changes if c.delta < 0))
        up = list(dict.fromkeys(c.reason for c in changes if c.delta > 0))
        same = list(dict.fromkeys(c.reason for c in changes if c.delta == 0))

        def join(parts):
            return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + f" {word('and')} " + parts[-1]

        if down and up:
            body = f"{join(down)}, {word('but')} {join(up)}"
        elif down or up:
            body = join(down or up)
        elif same:
            body = join(same)
        else:
            body = rules.say(rules.reasons, "nothing", lang)
        tail = "".join(f" ({n})" for n in notes)
        return f"{word('anger')} {before} → {after}: {body}{tail}"

    # -- coaching ------------------------------------------------------------------------
    def _suggest(self) -> str:
        """The step a coach would suggest now (a hint; the debrief's better line)."""
        sc = self.scenario
        if sc.abusive:
            if "intent_limits" not in self.shown and "warning" not in self.shown:
                if "personalise" not in self.shown and any(s.step == "personalise" for s in sc.steps):
                    return "personalise"
                return "intent_limits"
            if "warning" not in self.shown:
                return "warning"
            return "transfer" if sc.transfer == "win" else "end_call"
        phase_rank = {p: i for i, p in enumerate(PHASES)}
        now = phase_rank[self.phase]
        limit = 2 if self.heard else 1
        for s in sorted(sc.steps, key=lambda s: phase_rank[s.phase]):
            if s.step in self.shown or s.step in self.rules.unobservable or s.step not in self.rules.better_lines:
                continue
            if phase_rank[s.phase] <= max(now, limit):
                return s.step
        for sid in self.rules.heard_steps:
            if self.uses.get(sid, 0) < self.rules.repeat_uses and sid in self.rules.better_lines:
                return sid
        return "offer_options" if sc.resolvable else "intent_limits"

    def _better(self, sid: str) -> Better:
        rules, lang, sc = self.rules, self.lang, self.scenario
        catalogue = self.player.catalogue
        template = (rules.better_lines.get(sid) or {}).get(lang) or (rules.better_lines.get(sid) or {}).get("en", "")
        line = template.format(name=sc.t("caller_name", lang), problem=sc.t("problem", lang),
                               options=sc.t("options", lang), agent=rules.agent_name.get(lang, "Alex"))
        step_id = {"warning": "end_call_policy", "end_call": "end_call_policy"}.get(sid, sid)
        step = catalogue.steps.get(step_id)
        if sid in ("warning", "end_call"):
            title = rules.say(rules.messages, f"{sid}_title", lang)
        else:
            title = step.t("title", lang) if step else sid
        passage = None
        if step and step.passages:
            pid = step.passages[1 if sid == "warning" and len(step.passages) > 1 else 0]
            passage = self.player.cite(pid, lang)
        return Better(step=sid, title=title, line=line, passage=passage)

    def hint(self) -> Hint:
        """What to do next (it costs points: ``score.hint_cost`` each)."""
        if self.done:
            raise CallOver("the call has ended")
        sid = self._suggest()
        better = self._better(sid)
        step = self.player.catalogue.steps.get({"warning": "end_call_policy", "end_call": "end_call_policy"}.get(sid, sid))
        self.hints.append({"turn": len(self.turns) + 1, "step": sid})
        return Hint(step=sid, title=better.title, line=better.line, passage=better.passage,
                    why=step.t("description", self.lang) if step else "", cost=int(self.rules.score["hint_cost"]))

    def after_end(self, reply: str) -> TurnResult:
        """What the trainee still says once the call has ended (the rest of a scripted call,
        which is a whole call). Nothing can be won there, but harm still fails the call: a
        coach hears "I'll make sure you never get another order" after the caller said
        thank you as clearly as before it."""
        if not self.done:
            raise RuntimeError("the call has not ended; use say()")
        rules, lang = self.rules, self.lang
        n = len(self.turns) + 1
        previous = [" ".join(words(t.trainee)) for t in self.turns]
        r = self.player.reader.read(reply, lang, self.scenario, previous)
        changes = []
        outcome = None
        if r.harms:
            changes.append(Change(item="harm", delta=0, reason=rules.say(rules.reasons, "harm", lang)))
            if self.outcome != "failed":
                outcome = self.outcome = "failed"
                self.fail_reason, self.fail_turn, self.success = "harm", n, False
        notes = [rules.say(rules.reasons, "after_end", lang)]
        turn = TurnResult(
            n=n, trainee=r.text, caller="", anger_before=self.anger, anger=self.anger,
            patience=max(self.patience, 0), band=self.band, event="after_end", phase="closing", steps=[],
            anti_patterns=[], harms=list(r.harms), injected=bool(r.injected), changes=changes,
            explanation=self._explain(self.anger, self.anger, changes, notes),
            evidence={k: v.evidence for k, v in r.harms.items()}, done=True, outcome=outcome, after_end=True)
        self.turns.append(turn)
        return turn

    def stop(self) -> None:
        """The learner stops the call before it ends (scored as unfinished)."""
        if not self.done:
            self.done, self.outcome, self.success = True, "unfinished", False

    def close(self) -> None:
        """The script is over: the trainee has said all they will say, so the caller ends
        the call as things stand. A caller who feels heard, has the solution on the table
        and is no longer furious takes it; anyone else hangs up. (A scripted call is a
        whole call; ``stop`` is for a learner who walks away mid-call.)"""
        if self.done:
            return
        sc = self.scenario
        if sc.resolvable and self.heard and self.band != "furious" and self._needs_met([]):
            self.outcome = "resolved"
        else:
            self.outcome = "caller_hung_up"
        self.done = True
        self.success = self._success()

    # -- the debrief ------------------------------------------------------------------------
    def _slips(self) -> list[Slip]:
        slips = []
        lang = self.lang
        first = {k: v["first"] for k, v in self.shown.items()}
        first.update({"end_call": self.shown["end_call_policy"]["first"]} if "end_call_policy" in self.shown else {})
        for rule in self.rules.order_rules:
            strict = rule["id"] == "limits_before_ending"
            befores = [first[b] for b in rule["before"] if b in first]
            for item in rule["after"]:
                if item not in first:
                    continue
                t = first[item]
                ok = any(b < t if strict else b <= t for b in befores)
                if not ok:
                    title = self._better(item).title
                    slips.append(Slip(rule=rule["id"], item=item, turn=t,
                                      message=self.rules.say(self.rules.messages, rule["id"], lang, turn=t, title=title)))
        # a failed transfer ("transferred before limits") on an abusive call
        if self.outcome == "transferred" and self.scenario.abusive and not any(s.rule == "limits_before_ending"
                                                                               for s in slips):
            t = self.shown.get("transfer", {}).get("first")
            lim = [first[b] for b in ("intent_limits", "warning") if b in first]
            if t and not any(b < t for b in lim):
                slips.append(Slip(rule="limits_before_ending", item="transfer", turn=t,
                                  message=self.rules.say(self.rules.messages, "transferred_early", lang, turn=t)))
        return slips

    def scorecard(self) -> Scorecard:
        rules, sc, lang = self.rules, self.scenario, self.lang
        catalogue = self.player.catalogue
        score_rules = rules.score
        checks = []
        for s in sc.steps:
            seen = self.shown.get(s.step)
            step = catalogue.steps.get(s.step)
            checks.append(StepCheck(step=s.step, title=step.t("title", lang) if step else s.step, phase=s.phase,
                                    required=s.required, shown=bool(seen), turn=seen["turn"] if seen else None,
                                    phase_at_turn=seen["phase"] if seen else None,
                                    in_phase=bool(seen and seen["in_phase"])))
        slips = self._slips()
        antis, harms = [], []
        for t in self.turns:
            for aid in t.anti_patterns:
                a = catalogue.anti_patterns.get(aid)
                antis.append(Incident(kind="anti", id=aid, title=a.t("title", lang) if a else aid, turn=t.n,
                                      evidence=t.evidence.get(aid, t.trainee)))
            for hid in t.harms:
                h = catalogue.harms.get(hid)
                harms.append(Incident(kind="harm", id=hid, title=h.t("title", lang) if h else hid, turn=t.n,
                                      evidence=t.evidence.get(hid, t.trainee)))
        reviews = []
        for t in self.turns:
            did = [catalogue.steps[s].t("title", lang) for s in t.steps if s in catalogue.steps]
            weak = t.anger >= t.anger_before or t.anti_patterns or t.harms
            better = self._better(t.suggestion) if weak and t.suggestion and not t.outcome == "resolved" else None
            reviews.append(TurnReview(n=t.n, trainee=t.trainee, caller=t.caller, anger_before=t.anger_before,
                                      anger=t.anger, explanation=t.explanation, did=did, better=better))
        calm_tone = len(self.turns) >= 2 and not harms and not antis and not slips and bool(self.shown)
        injected = [t.n for t in self.turns if t.injected]

        # the score
        required = [c for c in checks if c.required] or checks
        share = sum(1.0 if c.in_phase else score_rules["out_of_phase"] if c.shown else 0.0 for c in required)
        share /= max(len(required), 1)
        outcome_key = "win" if self.success else (self.outcome or "unfinished")
        in_call = [t for t in self.turns if not t.after_end]
        parts = {
            "outcome": float(score_rules["outcome"].get(outcome_key, 0)) if self.done else 0.0,
            "steps": round(score_rules["steps"] * share, 1),
            "clean": round(score_rules["clean"] * (sum(1 for t in in_call if (t.steps or t.acts) and not t.anti_patterns
                                                       and not t.harms and not t.injected and t.anger <= t.anger_before)
                                                   / max(len(in_call), 1)), 1) if in_call else 0.0,
            # a coach names a mistake once; the same one again costs less than a new one
            "anti_patterns": -float(score_rules["per_anti"] * len({a.id for a in antis})
                                    + score_rules.get("per_repeated_anti", score_rules["per_anti"])
                                    * (len(antis) - len({a.id for a in antis}))),
            "order": -float(score_rules["per_order_slip"] * len(slips)),
            "hints": -float(score_rules["hint_cost"] * len(self.hints)),
        }
        score = sum(parts.values())
        caps = score_rules["caps"]
        if harms:
            score = min(score, caps["harm"])
        if injected:
            score = min(score, caps["injection"])
        score = int(round(max(0.0, min(100.0, score))))

        label = rules.say(rules.outcomes, self.outcome, lang) if self.outcome else ""
        if not self.done:
            summary = rules.say(rules.messages, "open", lang)
        else:
            summary = rules.say(rules.messages, "won" if self.success else "lost", lang, outcome=label)
        reasons = []
        if self.fail_reason:
            reasons.append(rules.say(rules.messages, self.fail_reason, lang, turn=self.fail_turn))
        if self.outcome == "caller_hung_up":
            reasons.append(rules.say(rules.messages, "hung_up", lang, turn=len(self.turns)))
        if self.outcome == "transferred" and "transferred" not in sc.win:
            reasons.append(rules.say(rules.messages, "transferred_not_win", lang, turn=len(self.turns)))
        if self.outcome == "unfinished":
            reasons.append(rules.say(rules.messages, "unfinished", lang))
        reasons += [s.message for s in slips]
        if calm_tone:
            reasons.append(rules.say(rules.messages, "calm_tone", lang))
        after = []
        for sid in sc.after_call:
            step = catalogue.steps.get(sid)
            if step:
                after.append(AfterCall(step=sid, title=step.t("title", lang), description=step.t("description", lang),
                                       passage=self.player.cite(step.passages[0], lang) if step.passages else None))
        return Scorecard(
            scenario=sc.id, title=sc.t("title", lang), language=lang, done=self.done, outcome=self.outcome,
            outcome_label=label, success=self.success, score=score, summary=summary, reasons=reasons, steps=checks,
            order=slips, anti_patterns=antis, harms=harms, anger=[sc.anger] + [t.anger for t in self.turns],
            turns=reviews, hints=len(self.hints), hint_cost=int(score_rules["hint_cost"]) * len(self.hints),
            calm_tone=calm_tone, injected_turns=injected, after_call=after, score_parts=parts,
        )

    def result(self) -> dict:
        """The CLI's JSON shape (a contract): scenario, language, turns, outcome, score, scorecard."""
        card = self.scorecard()
        return {
            "scenario": self.scenario.id, "language": self.lang, "opening": self.opening,
            "turns": [{"n": t.n, "caller": t.caller, "trainee": t.trainee, "anger": t.anger, "steps": t.steps,
                       "anti_patterns": t.anti_patterns, "explanation": t.explanation} for t in self.turns],
            "outcome": self.outcome, "score": card.score, "scorecard": card.model_dump(mode="json"),
        }


# -- the caller's voice ---------------------------------------------------------------
class CallerVoice:
    """Says the line the state machine chose. The default says it as written."""

    name = "template"

    def speak(self, line: str, call: Call, band: str) -> str:
        return line


LANG_NAMES = {"en": "English", "sv": "Swedish", "hu": "Hungarian", "it": "Italian", "nl": "Dutch"}
_META = re.compile(r"\b(as an ai|language model|scenario|simulat\w*|prompt|assistant)\b", re.IGNORECASE)


def check_rewording(original: str, candidate: str, lang: str, call: Call) -> tuple[bool, str]:
    """May ``candidate`` replace ``original``? Same language, about as long, no new facts
    (numbers, names), no ending or transfer the original did not have, nothing meta."""
    rules, sc = call.rules, call.scenario
    cand = candidate.strip().strip('"“”«»').strip()
    if not cand:
        return False, "empty"
    vcfg = rules.voice
    if len(cand) > vcfg.get("max_chars", 400) or len(cand) > vcfg.get("max_ratio", 1.8) * len(original) + 20:
        return False, "too long"
    known = " ".join([original, *sc.persona.values(), *sc.situation.values(), *sc.caller_name.values(),
                      *sc.problem.values(), *sc.options.values()])
    if set(re.findall(r"\d+", cand)) - set(re.findall(r"\d+", known)):
        return False, "new number"
    vocab = set(words(known))
    for sentence in split_sentences(cand):
        for w in re.findall(r"\w[\w'’-]*", sentence)[1:]:
            if w[:1].isupper() and w.lower() not in vocab and w not in ("I",):
                return False, f"new name {w!r}"
    forms_c, forms_o = _forms(cand), _forms(original)
    for name in ("end_call", "transfer"):
        act = next(a for a in call.player.reader.acts if a.name == name)
        if act.matches(cand, forms_c, lang) and not act.matches(original, forms_o, lang):
            return False, f"adds {name}"
    if _META.search(cand) and not _META.search(original):
        return False, "meta"
    if len(words(cand)) >= 5:
        from .language import detect

        if detect(cand, default=lang) != lang:
            return False, "language"
    return True, ""


class LLMVoice(CallerVoice):
    """Rewords the chosen line with a langchain chat model; any rewording that fails
    :func:`check_rewording` (or an error, or a timeout) falls back to the line as written."""

    name = "llm"

    def __init__(self, chat_model):
        self.chat_model = chat_model
        self.rejected = 0

    def speak(self, line: str, call: Call, band: str) -> str:
        prompt = call.rules.voice["prompt"].format(
            band=band, language_name=LANG_NAMES.get(call.lang, call.lang), situation=call.scenario.t("situation", "en"),
            line=line)
        try:
            reply = self.chat_model.invoke(prompt)
            text = getattr(reply, "content", reply)
            text = text if isinstance(text, str) else str(text)
        except Exception as exc:  # noqa: BLE001 - a voice that fails must not break the call
            log.warning("caller voice failed (%s); using the written line", exc)
            return line
        ok, why = check_rewording(line, text, call.lang, call)
        if not ok:
            self.rejected += 1
            log.info("caller rewording rejected (%s): %r", why, text)
            return line
        return text.strip().strip('"“”«»').strip()


def _template_voice(settings, chat_model=None) -> CallerVoice:
    return CallerVoice()


def _llm_voice(settings, chat_model=None) -> CallerVoice:
    if chat_model is None:
        from .llm import load_chat_model

        chat_model = load_chat_model(settings)
    if chat_model is None:
        log.warning("CALMCALL_ROLEPLAY_VOICE=llm but no CALMCALL_LLM is set: the caller speaks its written lines")
        return CallerVoice()
    return LLMVoice(chat_model)


VOICES: dict[str, Callable[..., CallerVoice]] = {"template": _template_voice, "llm": _llm_voice}


def load_voice(settings, chat_model=None) -> CallerVoice:
    name = getattr(settings, "roleplay_voice", "template") or "template"
    try:
        return VOICES[name](settings, chat_model)
    except KeyError:
        raise ValueError(f"unknown role-play voice {name!r}; choose one of {sorted(VOICES)}") from None


# -- the service --------------------------------------------------------------------------
class ScenarioInfo(BaseModel):
    id: str
    title: str
    difficulty: Difficulty
    persona: str
    situation: str
    anger: int
    patience: int
    articles: list[str]
    steps: list[str]
    languages: list[str]


def load_rules(root: Path) -> Rules:
    path = Path(root) / SCENARIO_DIR / RULES_FILE
    return Rules(**yaml.safe_load(path.read_text("utf-8")))


def load_scenarios(root: Path) -> dict[str, Scenario]:
    out = {}
    for path in sorted((Path(root) / SCENARIO_DIR).glob("*.yaml")):
        if path.name.startswith("_"):
            continue
        try:
            sc = Scenario(**yaml.safe_load(path.read_text("utf-8")))
        except Exception as exc:
            raise ScenarioError(f"{path.name}: {exc}") from exc
        if sc.id != path.stem:
            raise ScenarioError(f"{path.name}: id {sc.id!r} does not match the file name")
        out[sc.id] = sc
    return out


def validate(scenario: Scenario, rules: Rules, catalogue=None, knowledge=None) -> list[str]:
    """Problems that would make a call fail or speak the wrong language (tests check none)."""
    problems = []
    for s in scenario.steps:
        if catalogue is not None and s.step not in catalogue.steps:
            problems.append(f"unknown step {s.step}")
    for sid in scenario.after_call + scenario.resolve.needs_all + scenario.resolve.needs_any:
        if catalogue is not None and sid not in catalogue.steps:
            problems.append(f"unknown step {sid}")
    if knowledge is not None:
        for pid in scenario.passages:
            if pid not in knowledge.passages:
                problems.append(f"unknown passage {pid}")
    for field_name in ("title", "persona", "situation", "caller_name", "problem", "options", "opening"):
        values = getattr(scenario, field_name)
        for lang in LANGS:
            if not values.get(lang):
                problems.append(f"{field_name} missing in {lang}")
    reachable = BANDS[BANDS.index(rules.band(scenario.min_anger if scenario.abusive else 0)):]
    needed = [(band, ev) for band in reachable for ev in ("calmer", "same", "angrier")]
    ends = ["hangup", "failed"] + (["resolved"] if scenario.resolvable else []) \
        + (["transferred"] if scenario.transfer != "refused" else []) + (["ended"] if scenario.abusive else [])
    needed += [("end", ev) for ev in ends]
    if scenario.transfer == "refused":
        needed.append(("any", "transfer_refused"))
    if scenario.abusive:
        needed.append(("any", "warned"))
    for ev in scenario.events.values():
        needed.append(("any", ev))
    for band, ev in needed:
        for lang in LANGS:
            if not ((scenario.lines.get(band) or {}).get(ev) or {}).get(lang):
                problems.append(f"lines.{band}.{ev} missing in {lang}")
    for band, events in scenario.lines.items():
        if band not in (*BANDS, "any", "end"):
            problems.append(f"unknown line group {band}")
        for ev, by_lang in events.items():
            for lang in by_lang:
                if lang not in LANGS:
                    problems.append(f"lines.{band}.{ev}: unknown language {lang}")
    return problems


class RolePlayer:
    """Scenarios, rules, the reply reader and the caller's voice: what every call shares."""

    def __init__(self, settings, matcher, catalogue, knowledge, voice: CallerVoice | None = None):
        self.settings = settings
        self.catalogue = catalogue
        self.knowledge = knowledge
        root = settings.knowledge_dir
        self.rules = load_rules(root)
        self.scenarios = load_scenarios(root)
        policy = matcher.policy if matcher is not None else None
        self.reader = ReplyReader(self.rules, matcher, policy or _NoPolicy())
        self.voice = voice or load_voice(settings)

    def scenario(self, sid: str) -> Scenario:
        try:
            return self.scenarios[sid]
        except KeyError:
            raise UnknownScenario(sid) from None

    def list(self, lang: str = "en") -> list[ScenarioInfo]:
        order = {"easy": 0, "medium": 1, "hard": 2}
        out = [ScenarioInfo(id=s.id, title=s.t("title", lang), difficulty=s.difficulty, persona=s.t("persona", lang),
                            situation=s.t("situation", lang), anger=s.anger, patience=s.patience, articles=s.articles,
                            steps=[x.step for x in s.steps], languages=[lg for lg in LANGS if s.opening.get(lg)])
               for s in self.scenarios.values()]
        return sorted(out, key=lambda i: (order[i.difficulty], i.id))

    @staticmethod
    def check_lang(lang: str) -> str:
        if lang not in LANGS:
            raise ValueError(f"role-play calls are in {', '.join(LANGS)}, not {lang!r}")
        return lang

    def start(self, sid: str, lang: str = "en", seed: int = 0) -> Call:
        return Call(self, self.scenario(sid), self.check_lang(lang), seed)

    def resume(self, state: dict) -> Call:
        """A stored call, exactly as it was (replay, or the next turn on another worker)."""
        return Call(self, self.scenario(state["scenario"]), state["lang"], state["seed"], state=state)

    def replay(self, sid: str, replies: list[str], lang: str = "en", seed: int = 0, finish: bool = False) -> Call:
        """Run ``replies`` as a call; stops at the end of the call (later replies unused).
        With ``finish``, the replies are the whole call: one they did not end is closed as
        things stand (:meth:`Call.close`), and replies after the ending are still read for
        harm (:meth:`Call.after_end`)."""
        call = self.start(sid, lang, seed)
        for i, reply in enumerate(replies):
            if call.done:
                if finish:  # the whole call: what is said after the ending is read for harm
                    for rest in replies[i:]:
                        call.after_end(rest)
                break
            call.say(reply)
        if finish:
            call.close()
        return call

    def pick(self, call: Call, band: str, event: str, options: list[str]) -> str:
        if not options:
            return ""
        rng = random.Random(f"{call.seed}|{call.scenario.id}|{call.lang}|{len(call.turns) + 1}|{band}|{event}")
        return rng.choice(options)

    def voice_line(self, call: Call, line: str, band: str) -> str:
        return self.voice.speak(line, call, band) if line else line

    def cite(self, pid: str, lang: str) -> Citation | None:
        try:
            return Citation(**self.knowledge.cite(pid, lang).model_dump())
        except Exception:  # noqa: BLE001 - a missing passage never breaks a debrief
            return None


class _NoPolicy:
    covered = 1.0


_PLAYERS_LOCK = threading.Lock()


def roleplayer(coach) -> RolePlayer:
    """The coach's role-player (built once per coach; the matcher and catalogue are the
    grader's, so a reply is read exactly as an answer is)."""
    player = coach.__dict__.get("_roleplayer")
    if player is None:
        with _PLAYERS_LOCK:
            player = coach.__dict__.get("_roleplayer")
            if player is None:
                player = RolePlayer(coach.settings, coach.grader.matcher, coach.catalogue, coach.knowledge)
                coach.__dict__["_roleplayer"] = player
    return player


# -- the command line (python -m calmcall roleplay) -------------------------------------
def _print_turn(turn: TurnResult) -> None:
    print(f"   [{turn.explanation}]")
    if not turn.after_end:
        print(f"caller> {turn.caller}")


def _print_card(card: Scorecard) -> None:
    print(f"\n== {card.title}: {card.outcome_label or card.outcome} · score {card.score}/100")
    print(card.summary)
    for reason in card.reasons:
        print(f"  - {reason}")
    for c in card.steps:
        mark = "[x]" if c.in_phase else "[~]" if c.shown else "[ ]"
        when = f" (turn {c.turn}, {c.phase_at_turn})" if c.shown else ""
        print(f"  {mark} {c.title} — {c.phase}{'' if c.required else ', optional'}{when}")
    for inc in card.harms + card.anti_patterns:
        print(f"  (!) turn {inc.turn}: {inc.title}: \"{inc.evidence}\"")
    print("  anger: " + " → ".join(str(a) for a in card.anger))
    for t in card.turns:
        if t.better:
            print(f"  turn {t.n}, better: \"{t.better.line}\" ({t.better.title}"
                  + (f", {t.better.passage.passage})" if t.better.passage else ")"))


def command(args) -> int:
    """``python -m calmcall roleplay``: --list, an interactive call, --script FILE or --batch FILE."""
    import json
    import sys

    from .coach import Coach
    from .inputs import InputError, decode

    def emit(obj) -> None:
        sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
        sys.stdout.flush()

    def read(path: str, what: str) -> str:
        return decode(sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes(), what)

    coach = Coach()
    lang = args.lang or "en"
    if lang not in LANGS:
        raise InputError(f"role-play calls are in {', '.join(LANGS)}, not {lang!r}")
    light = RolePlayer(coach.settings, None, None, None)  # scenarios only: no models loaded
    if args.list:
        for info in light.list(lang):
            if args.json:
                emit(info.model_dump(mode="json"))
            else:
                print(f"{info.id:22} {info.difficulty:6} anger {info.anger:2}  {info.title}")
        return 0
    if args.batch:
        player = roleplayer(coach)
        failures = 0
        for lineno, line in enumerate(read(args.batch, f"batch file {args.batch}").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                if not isinstance(row, dict):
                    raise ValueError("each line must be a JSON object")
            except ValueError as exc:
                failures += 1
                emit({"id": None, "line": lineno, "error": f"line {lineno}: not a JSON object ({exc})"})
                continue
            rid = row.get("id")
            replies, row_lang = row.get("replies"), row.get("lang") or lang
            if not isinstance(row.get("scenario"), str) or not isinstance(replies, list) \
                    or not all(isinstance(r, str) for r in replies) or not isinstance(row_lang, str):
                failures += 1
                emit({"id": rid, "error": "needs \"scenario\" (text), \"replies\" (a list of texts), \"lang\"? (text)"})
                continue
            try:
                call = player.replay(row["scenario"], replies, player.check_lang(row_lang),
                                     int(row.get("seed") or args.seed), finish=True)
            except (KeyError, ValueError) as exc:
                failures += 1
                emit({"id": rid, "error": str(exc).strip("'\"")})
                continue
            emit({"id": rid, **call.result()})
        return 0 if failures == 0 else 3
    if not args.scenario:
        raise InputError("give --list, --scenario ID (with --script FILE for a scripted call) or --batch FILE")
    scenario = light.scenario(args.scenario)  # an unknown id fails before the models load
    player = roleplayer(coach)
    if args.script:
        replies = [ln.strip() for ln in read(args.script, "script").splitlines() if ln.strip()]
        if not replies:
            raise InputError("the script has no replies (one trainee reply per line)")
        call = player.replay(scenario.id, replies, lang, args.seed, finish=True)
        if args.json:
            emit(call.result())
        else:
            print(f"caller> {call.opening}")
            for t in call.turns:
                print(f"you>    {t.trainee}")
                _print_turn(t)
            _print_card(call.scorecard())
        return 0
    call = player.start(scenario.id, lang, args.seed)
    print(f"{scenario.t('title', lang)} — {scenario.t('situation', lang)}")
    print("(/hint for a hint, /end to stop)\n")
    print(f"caller> {call.opening}")
    while not call.done:
        try:
            reply = input("you>    ")
        except EOFError:
            break
        if reply.strip() == "/hint":
            h = call.hint()
            print(f"   hint ({h.title}, -{h.cost}): {h.line}")
            continue
        if reply.strip() in ("/end", "/quit"):
            break
        _print_turn(call.say(reply))
    call.stop()
    if args.json:
        emit(call.result())
    else:
        _print_card(call.scorecard())
    return 0


__all__ = ["Call", "CallOver", "CallerVoice", "Hint", "LLMVoice", "RolePlayer", "Scenario", "Scorecard",
           "TurnResult", "UnknownScenario", "check_rewording", "load_voice", "roleplayer", "validate"]

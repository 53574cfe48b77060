"""The public step matcher: a parsed answer (or any reply) in, typed evidence per unit out —
which step, anti-pattern or harm a unit shows, affirmed or denied, how sure, and the span.

The grader scores this evidence; the role-play caller reacts to it. Every number it uses
comes from the scoring policy's data file (``knowledge/grading_policy.yaml``).

How a unit is read: its vector is compared with every catalogue phrasing (steps,
anti-patterns, harms, hard negatives, eight languages) and given to a linear probe trained
on them. A step is credited when it is the unit's nearest item (or the probe names it and
it is close enough), it clears the policy's thresholds, and the unit is the candidate's own
affirmed action — not denied, not about someone else, not sarcasm, not a heading.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from .catalogue import Catalogue, StepBridge
from .parsing import ParsedAnswer, parse
from .policy import ScoringPolicy
from .text import (
    GAP,
    callers_act,
    callers_quotes,
    cue_form,
    has_negation,
    is_negated,
    is_pattern,
    mentions_in,
    own_reply_holds,
    padded_words,
    words,
)

Kind = Literal["step", "anti", "harm"]
Polarity = Literal["affirmed", "denied"]
Source = Literal["nearest", "probe", "cue", "denial", "tone"]


@dataclass(frozen=True)
class Evidence:
    """One reading of one unit: the unit shows (or denies) this catalogue item."""

    kind: Kind
    item: str
    unit: int  # index into ParsedAnswer.units
    span: str  # the learner's sentence (what the report quotes)
    polarity: Polarity
    confidence: float  # the similarity the decision rests on (policy thresholds apply)
    source: Source


@dataclass
class Match:
    parsed: ParsedAnswer
    evidence: list[Evidence] = field(default_factory=list)
    vectors: np.ndarray | None = None  # one per unit (the copy check reuses the sentences')

    def best(self, kind: Kind, polarity: Polarity = "affirmed") -> dict[str, Evidence]:
        """Per item, the strongest evidence of that kind and polarity."""
        out: dict[str, Evidence] = {}
        for e in self.evidence:
            if e.kind == kind and e.polarity == polarity:
                if e.item not in out or e.confidence > out[e.item].confidence:
                    out[e.item] = e
        return out

    def steps(self) -> set[str]:
        return set(self.best("step"))


class StepMatcher:
    def __init__(self, embedder, catalogue: Catalogue, bridge: StepBridge, policy: ScoringPolicy,
                 cache_size: int = 4096, max_chars: int = 20000):
        self.embedder = embedder
        self.catalogue = catalogue
        self.bridge = bridge
        self.policy = policy
        self.max_chars = max_chars
        self.cache_size = cache_size
        self.probe = bridge.probe  # fitted (or read back) now, not on the first answer
        self._vec_cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._cues = {
            item.id: {lang: [c.lower() for c in cues if len(c) >= 4] for lang, cues in item.cues.items()}
            for item in [*catalogue.steps.values(), *catalogue.anti_patterns.values()]
        }
        self._harm_cues = {
            h.id: {lang: [c.lower() for c in cues if len(c) >= 4] for lang, cues in h.cues.items()}
            for h in catalogue.harms.values()
        }
        # "beleidigen " (whole word): not "beleidigende Gespräche beenden" (text.cue_form)
        self._harm_words = {h.id: {lang: [cue_form(c) for c in cues] for lang, cues in h.words.items()}
                            for h in catalogue.harms.values() if h.words}
        self._reported = catalogue.tone.reported_speech
        self._speakers = (catalogue.tone.caller_speaking, catalogue.tone.own_speaking, catalogue.tone.speech_verbs)
        self._caller_verbs = catalogue.tone.caller_verbs
        # as cues are matched: lowercase words between spaces ("bitte ihn, sich zu…")
        self._calm_down = {lang: [cue_form(c) for c in cues]
                           for lang, cues in catalogue.tone.calm_down_orders.items()}
        # a step's name in scare quotes ("I 'listen'") is mockery, not the step
        self._step_words = tuple(sorted({
            w for s in catalogue.steps.values() for cues in [*s.cues.values(), *[[t] for t in s.title.values()]]
            for c in cues for w in words(c) if len(w) >= 4
        }))
        # Phrasings that are themselves negative ("I don't take it personally") let a
        # negated answer sentence show a step.
        order = {vid: i for i, vid in enumerate(bridge.ids)}
        self._neg_phrasing = np.zeros(len(bridge.ids), dtype=bool)
        for vid, (text, meta) in bridge.index.docs.items():
            if vid in order:
                self._neg_phrasing[order[vid]] = is_negated(text, meta["lang"])

    # -- reading ----------------------------------------------------------------
    def parse(self, text: str, lang: str | None = None, set_aside: bool = True) -> ParsedAnswer:
        tone = self.catalogue.tone
        return parse(text, self.max_chars, tone.sarcasm_markers, tone.contradicting_asides, lang=lang,
                     step_words=self._step_words, set_aside=set_aside)

    def match_text(self, text: str, lang: str | None = None) -> Match:
        """Text in, evidence out: what role-play and voice call for each reply."""
        return self.match(self.parse(text, lang))

    # -- vectors ------------------------------------------------------------------
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
            unique = list(dict.fromkeys(texts[i] for i in todo))
            fresh = dict(zip(unique, self.embedder.query(unique)))
            with self._cache_lock:
                for i in todo:
                    out[i] = fresh[texts[i]]
                    self._vec_cache[texts[i]] = fresh[texts[i]].copy()  # not a view of the batch
                while len(self._vec_cache) > self.cache_size:
                    self._vec_cache.popitem(last=False)
        return out

    def clear_cache(self) -> None:
        with self._cache_lock:
            self._vec_cache.clear()

    def embed_units(self, us) -> np.ndarray:
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
        vecs = np.zeros((len(us), self.embedder.dim), dtype=np.float32)
        if direct:
            vecs[direct] = self._unit_vectors([us[i].embed_text or us[i].text for i in direct])
        for i, u in enumerate(us):
            if u.text == u.sentence and u.index in parts:
                idx = parts[u.index]
                weights = np.array([len(us[k].text.split()) + 2 for k in idx], dtype=np.float32)
                v = weights @ vecs[idx]
                vecs[i] = v / max(float(np.linalg.norm(v)), 1e-12)
        return vecs

    # -- matching ---------------------------------------------------------------
    def _cue_list(self, hid: str, lang: str) -> list[str]:
        cues = self._harm_cues.get(hid, {})
        return cues.get(lang, []) + cues.get("en", [])

    def _cue_hit(self, item_id: str, padded: str, lang: str, table=None) -> bool:
        cues = (table or self._cues).get(item_id, {})
        return mentions_in(padded, cues.get(lang, []) + cues.get("en", []))

    def _callers_act(self, low: str, sentence: str, cues: list[str], lang: str) -> bool:
        """Is every one of ``cues`` that the unit holds part of the caller's reported act
        (``text.callers_act``)?"""
        held = [c for c in cues if mentions_in(low, [c])]
        caller, own = self._speakers[0], self._speakers[1]
        return bool(held) and all(callers_act(low, sentence, c, lang, caller, own, self._caller_verbs) for c in held)

    def _own_harm_words(self, low: str, sentence: str, lang: str) -> list[str]:
        """Harms whose bare words (harm_words.yaml) the unit ``low`` holds, unless the rest of
        its sentence reports someone else's act ("when a caller calls me an idiot") and the
        word is not in the candidate's own reply after that report (``text.own_reply_holds``,
        "he said I was a moron, so I said he was the moron"); a gapped
        cue's own words do not count as that report ("sag … auch wenn das nicht stimmt"
        holds "auch wenn" without being one)."""
        reported = self._reported.get(lang, []) + self._reported.get("en", [])
        hits, sent = [], None
        for hid, table in self._harm_words.items():
            hit = next((c for c in table.get(lang, []) + table.get("en", []) if mentions_in(low, [c])), None)
            if hit is None:
                continue
            if sent is None:
                sent = padded_words(sentence)
            rest = sent
            for alt in hit.replace(GAP, "|").split("|") if is_pattern(hit) else ():
                rest = rest.replace(f" {alt.strip()}", " ", 1)
            covered = mentions_in(rest, reported) and not own_reply_holds(
                sent, hit, reported, lang, self._speakers[1], self._speakers[2])
            if not covered and not self._callers_act(low, sentence, [hit], lang):
                hits.append(hid)
        return hits

    def _harm_stands(self, hid: str, sentence_unit, us, lang: str) -> bool:
        """Does a harm cue found in a whole sentence stand? Unless every clause that holds it
        is denied; a cue spread over clauses ("tell … which isn't true") stands."""
        holding = []
        for c in us:
            if c.index == sentence_unit.index and c is not sentence_unit and c.text != c.sentence:
                low = padded_words(c.text)
                if self._cue_hit(hid, low, lang, self._harm_cues) or hid in self._own_harm_words(low, c.sentence, lang):
                    holding.append(c)
        return not holding or any(not c.negated or c.condition for c in holding)

    def match(self, parsed: ParsedAnswer) -> Match:
        """Credit steps, flag anti-patterns and harms unit by unit (module docstring)."""
        us, lang = parsed.units, parsed.language
        result = Match(parsed)
        if not us:
            return result
        p = self.policy
        vecs = self.embed_units(us)
        result.vectors = vecs
        sims = self.bridge.similarities(vecs)
        probs_all = self.probe.probabilities(vecs)
        step_probs = self.probe.kind_probabilities(vecs, "step", probs_all)
        harm_probs = self.probe.kind_probabilities(vecs, "harm", probs_all)
        anti_probs = self.probe.kind_probabilities(vecs, "anti", probs_all)
        harm_p = self.bridge.harm_probability(vecs) if self.catalogue.harms else np.zeros(len(us))
        add = result.evidence.append
        quotes: dict[int, list[str]] = {}  # sentence -> the caller's quoted words in it

        for ui, u in enumerate(us):
            low = padded_words(u.text)  # once per unit, not once per catalogue item
            raw_steps = self.bridge.step_scores(sims[ui])
            steps = dict(raw_steps)
            for sid in steps:
                if self._cue_hit(sid, low, lang):
                    steps[sid] += p.cue_bonus
            raw_antis = self.bridge.anti_scores(sims[ui])
            antis = dict(raw_antis)
            cued_antis = set()
            for aid in antis:
                if self._cue_hit(aid, low, lang):
                    antis[aid] += p.cue_bonus
                    cued_antis.add(aid)
            none = self.bridge.none_score(sims[ui])
            top_step = max(steps.values(), default=-1.0)
            top_anti = max(antis.values(), default=-1.0)
            top_any = max(top_step, top_anti, none - p.none_margin)
            tone = parsed.sarcastic.get(u.index, "")
            own = not u.others and not u.heading
            n_words = len(words(u.text))

            # harm: the candidate's own, affirmed, never diluted; cues need the probe's
            # agreement so "when a caller calls me an idiot I stay calm" is not an insult
            if own and (not u.negated or u.condition):
                hs = self.bridge.harm_scores(sims[ui])
                prob = float(harm_p[ui])  # harm or not (binary probe)
                # the caller's quoted words are not the candidate's ("a customer told me "…"")
                if u.index not in quotes:
                    quotes[u.index] = callers_quotes(u.sentence, lang, *self._speakers)
                hlow = low
                for quote in quotes[u.index]:
                    hlow = hlow.replace(padded_words(quote), " ")
                # the probes read the unit's vector, the caller's words in it included: only the
                # candidate's own cue words decide a unit that quotes the caller
                unquoted = hlow == low
                cued = [hid for hid in hs if self._cue_hit(hid, hlow, lang, self._harm_cues)
                        and not self._callers_act(hlow, u.sentence, self._cue_list(hid, lang), lang)]
                # a bare insult or mocking word: the candidate's own act, unless the sentence
                # reports what the caller did ("when a caller calls me an idiot, I…")
                cued += [hid for hid in self._own_harm_words(hlow, u.sentence, lang) if hid not in cued]
                if cued and u.complete:
                    # a sentence read whole holds its clauses' words: one found only in a denied
                    # clause is denied ("…, maar ik ga niet doen alsof ik kan terugbetalen")
                    cued = [hid for hid in cued if self._harm_stands(hid, u, us, lang)]
                near = max(hs.values(), default=-1.0)
                top_raw = max(raw_steps.values(), default=-1.0)
                paired = prob >= p.harm_pair_prob and sum(harm_probs[ui].values()) >= p.harm_pair_kind \
                    and near >= max(top_raw, none)
                if hs and (cued or unquoted and (paired or (prob >= p.harm_prob and near >= p.harm_sim
                                                          and near >= top_raw + p.harm_margin))):
                    # which harm: a cue's, else the many-class probe's choice among harms
                    hid = cued[0] if cued else max(harm_probs[ui], key=lambda h: (harm_probs[ui][h], hs.get(h, 0)))
                    add(Evidence("harm", hid, ui, u.sentence, "affirmed", round(prob, 4), "cue" if cued else "probe"))
            if tone and own and n_words >= 2:
                add(Evidence("anti", "sarcasm", ui, u.sentence, "affirmed", 1.0, "tone"))
            # telling the caller to calm down is dismissing them, never staying calm
            if own and not u.negated and mentions_in(low, self._calm_down.get(lang, []) + self._calm_down.get("en", [])):
                if "dismiss_customer" in self.catalogue.anti_patterns:
                    add(Evidence("anti", "dismiss_customer", ui, u.sentence, "affirmed", 1.0, "cue"))
                continue

            if not u.negated:
                if not own or tone:
                    continue  # someone else's behaviour, a heading, or sarcasm: no credit
                for sid, score in steps.items():
                    if score >= top_any - p.margin:
                        add(Evidence("step", sid, ui, u.sentence, "affirmed", round(score, 4), "nearest"))
                # the probe names the step a paraphrase shows when its nearest phrasing
                # belongs to another step; it still has to be close to the step's phrasings
                for sid, prob in step_probs[ui].items():
                    if prob >= p.probe_min and raw_steps.get(sid, -1.0) >= p.partly - p.probe_slack:
                        conf = max(steps[sid], p.covered) if prob >= p.probe_sure else steps[sid]
                        add(Evidence("step", sid, ui, u.sentence, "affirmed", round(conf, 4), "probe"))
                # only the unit's single nearest item can be an anti-pattern, and only in a
                # clause long enough to describe an action
                if antis and n_words >= p.min_anti_words:
                    aid, score = max(antis.items(), key=lambda kv: kv[1])
                    if score >= p.anti and score >= top_step + p.anti_margin and score >= none \
                            and (raw_antis[aid] >= p.anti_sure or anti_probs[ui].get(aid, 0.0) >= p.anti_probe
                                 or (aid in cued_antis and not has_negation(u.sentence, lang))):
                        add(Evidence("anti", aid, ui, u.sentence, "affirmed", round(score, 4), "nearest"))
                continue
            if u.complete or not own:
                continue  # "I didn't interrupt, I just let him talk": each clause decides
            # "I would never yell back" shows the step opposite to that anti-pattern;
            # "I would not apologise" denies a step and earns nothing for it.
            plain_antis = self.bridge.anti_scores(np.where(self._neg_phrasing, -1.0, sims[ui]))
            for aid, score in antis.items():
                if score >= max(p.anti, top_any - p.margin) and plain_antis.get(aid, -1.0) >= score - p.cue_bonus - p.margin:
                    add(Evidence("anti", aid, ui, u.sentence, "denied", round(score, 4), "denial"))
                    for sid in self.catalogue.anti_patterns[aid].opposite_steps:
                        # a denial of a bad behaviour earns "partly" for its opposite step
                        add(Evidence("step", sid, ui, u.sentence, "affirmed",
                                     round(min(score, p.covered - 1e-4), 4), "denial"))
            agreeing = self.bridge.step_scores(np.where(self._neg_phrasing, sims[ui], -1.0))
            for sid, score in steps.items():
                if score < top_any - p.margin:
                    continue
                if raw_steps[sid] >= p.covered and agreeing.get(sid, -1.0) >= raw_steps[sid] - p.margin:
                    add(Evidence("step", sid, ui, u.sentence, "affirmed", round(score, 4), "nearest"))
                elif score >= p.partly:
                    add(Evidence("step", sid, ui, u.sentence, "denied", round(score, 4), "nearest"))
        return result

"""The documented-steps catalogue: steps, anti-patterns and conflicts distilled from the
articles (``knowledge/catalogue.yaml``) and the practice questions
(``knowledge/questions.yaml``), plus the ``StepBridge`` that embeds their example phrasings.

The bridge is what makes a small embedder work across languages: a Dutch user's sentence
is compared with Dutch (and every other language's) phrasings of each step, and each step
knows the passages that teach it.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import yaml
from pydantic import BaseModel, Field

from .knowledge import Knowledge, KnowledgeError, load_yaml
from .text import inflected_forms

log = logging.getLogger(__name__)

CATEGORIES = ("core", "abusive_caller", "after_call", "interview_delivery")


class UnknownQuestion(KeyError):
    """A question id that is not in ``knowledge/questions.yaml`` (a typo, not free text)."""

    def __init__(self, qid: str):
        super().__init__(f"unknown question id {qid!r}; see `python -m calmcall questions`")
        self.qid = qid


class _Localized(BaseModel):
    def t(self, field: str, lang: str) -> str:
        """A per-language field in ``lang``, falling back to English."""
        values = getattr(self, field)
        return values.get(lang) or values.get("en", "")


class Step(_Localized):
    id: str
    category: str
    title: dict[str, str]
    description: dict[str, str]
    passages: list[str]
    weight: int = 1
    model_sentence: dict[str, str] = Field(default_factory=dict)
    examples: dict[str, list[str]] = Field(default_factory=dict)
    cues: dict[str, list[str]] = Field(default_factory=dict)


class AntiPattern(_Localized):
    id: str
    title: dict[str, str]
    description: dict[str, str]
    passages: list[str] = Field(default_factory=list)
    opposite_steps: list[str] = Field(default_factory=list)
    examples: dict[str, list[str]] = Field(default_factory=dict)
    cues: dict[str, list[str]] = Field(default_factory=dict)


class Harm(_Localized):
    """Conduct beyond the anti-patterns that disqualifies an answer (``knowledge/harms.yaml``):
    one such sentence caps the score, however good the rest is."""

    id: str
    severity: int = 3  # 3 disqualifying, 2 serious
    title: dict[str, str]
    description: dict[str, str]
    cues: dict[str, list[str]] = Field(default_factory=dict)
    examples: dict[str, list[str]] = Field(default_factory=dict)
    words: dict[str, list[str]] = Field(default_factory=dict)  # bare words: own acts only


class Tone(BaseModel):
    """Markers of sarcasm and mock agreement: a step named in such a sentence is not done."""

    sarcasm_markers: dict[str, list[str]] = Field(default_factory=dict)
    reported_speech: dict[str, list[str]] = Field(default_factory=dict)  # "calls me an idiot"
    calm_down_orders: dict[str, list[str]] = Field(default_factory=dict)  # "tell them to calm down"
    sarcasm_examples: dict[str, list[str]] = Field(default_factory=dict)
    contradicting_asides: dict[str, list[str]] = Field(default_factory=dict)
    caller_speaking: dict[str, list[str]] = Field(default_factory=dict)  # "a customer told me "…""
    own_speaking: dict[str, list[str]] = Field(default_factory=dict)  # "I said "…""
    speech_verbs: dict[str, list[str]] = Field(default_factory=dict)
    caller_verbs: dict[str, list[str]] = Field(default_factory=dict)  # "He said sorry for …"


class ConflictSide(BaseModel):
    passages: list[str]
    position: dict[str, str]


class Conflict(BaseModel):
    id: str
    topic: dict[str, str]
    sides: list[ConflictSide]
    steps: list[str] = Field(default_factory=list)
    anti_patterns: list[str] = Field(default_factory=list)
    cues: dict[str, list[str]] = Field(default_factory=dict)

    @property
    def all_cues(self) -> list[str]:
        """Its cue words in every language (too-short ones would match inside other words)."""
        return [cue for cues in self.cues.values() for cue in cues if len(cue) >= 3]


class Question(BaseModel):
    id: str
    text: dict[str, str]
    required: list[str]
    bonus: list[str] = Field(default_factory=list)
    conflicts: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)

    @property
    def expected(self) -> list[str]:
        return self.required + [s for s in self.bonus if s not in self.required]


@dataclass
class Catalogue:
    steps: dict[str, Step]
    anti_patterns: dict[str, AntiPattern]
    conflicts: dict[str, Conflict]
    questions: dict[str, Question]
    fingerprint: str
    harms: dict[str, Harm] = field(default_factory=dict)
    tone: Tone = field(default_factory=Tone)
    # sentences that share a step's words without doing it, and neutral filler, per language
    negatives: dict[str, list[str]] = field(default_factory=dict)

    def question(self, qid: str) -> Question:
        try:
            return self.questions[qid]
        except KeyError:
            raise UnknownQuestion(qid) from None


def conflict_note(conflict: Conflict, knowledge: Knowledge, lang: str):
    """A conflict with both sides and their quoted passages, in ``lang`` where we have it."""
    from .models import ConflictNote

    return ConflictNote(
        id=conflict.id,
        topic=conflict.topic.get(lang) or conflict.topic["en"],
        sides=[
            {
                "position": side.position.get(lang) or side.position["en"],
                "passages": [knowledge.cite(pid, lang).model_dump() for pid in side.passages[:3]],
            }
            for side in conflict.sides
        ],
    )


def load_catalogue(root: Path, knowledge: Knowledge) -> Catalogue:
    """Load and cross-check the catalogue: every passage, step and conflict it names exists."""
    root = Path(root)
    raw_cat = (root / "catalogue.yaml").read_bytes()
    raw_q = (root / "questions.yaml").read_bytes()
    try:
        cat = load_yaml(raw_cat)  # libyaml's safe loader where available (~12x faster)
        qs = load_yaml(raw_q)
    except yaml.YAMLError as exc:
        raise KnowledgeError(f"malformed catalogue YAML: {exc}") from None
    steps = {s["id"]: Step(**s) for s in cat["steps"]}
    anti = {a["id"]: AntiPattern(**a) for a in cat["anti_patterns"]}
    conflicts = {c["id"]: Conflict(**c) for c in cat.get("conflicts", [])}
    questions = {q["id"]: Question(**q) for q in qs["questions"]}
    for item in [*steps.values(), *anti.values()]:
        for pid in item.passages:
            knowledge.get(pid)  # raises KnowledgeError for an unknown id
    for c in conflicts.values():
        for side in c.sides:
            for pid in side.passages:
                knowledge.get(pid)
    for q in questions.values():
        for sid in q.expected:
            if sid not in steps:
                raise KnowledgeError(f"question {q.id} names unknown step {sid!r}")
        for cid in q.conflicts:
            if cid not in conflicts:
                raise KnowledgeError(f"question {q.id} names unknown conflict {cid!r}")
    extra_raw = _merge_phrasings(root, steps, anti)
    harms, tone, negatives, raw_h = _load_harms(root, extra_raw.pop("none", {}), extra_raw.pop("harms", {}))
    fingerprint = hashlib.sha256(raw_cat + raw_q + raw_h + extra_raw["_raw"]).hexdigest()[:16]
    return Catalogue(steps, anti, conflicts, questions, fingerprint, harms, tone, negatives)


def _read_yaml(path: Path):
    try:
        return load_yaml(path.read_bytes())  # libyaml's safe loader + the parsed cache
    except yaml.YAMLError as exc:
        raise KnowledgeError(f"malformed YAML in {path.name}: {exc}") from None


def _merge_phrasings(root: Path, steps: dict, anti: dict) -> dict:
    """Add ``knowledge/phrasings/*.yaml`` (more example phrasings per step / anti-pattern in
    other shapes: talking points, stories, paraphrases, contrasts) to the catalogue items."""
    raw = b""
    none: dict[str, list[str]] = {}
    harms: dict[str, dict[str, list[str]]] = {}
    for path in sorted((root / "phrasings").glob("*.yaml")):
        raw += path.read_bytes()
        data = _read_yaml(path) or {}
        for section, items in (("steps", steps), ("anti_patterns", anti)):
            for item_id, by_lang in (data.get(section) or {}).items():
                if item_id not in items:
                    raise KnowledgeError(f"{path.name}: unknown {section[:-1]} {item_id!r}")
                for lang, examples in (by_lang or {}).items():
                    items[item_id].examples.setdefault(lang, []).extend(str(x) for x in examples or [])
        for lang, examples in (data.get("none") or {}).items():
            none.setdefault(lang, []).extend(str(x) for x in examples or [])
        for harm_id, by_lang in (data.get("harms") or {}).items():  # checked against harms.yaml
            for lang, examples in (by_lang or {}).items():
                harms.setdefault(harm_id, {}).setdefault(lang, []).extend(str(x) for x in examples or [])
    return {"_raw": raw, "none": none, "harms": harms}


def _load_harms(root: Path, none: dict[str, list[str]], more: dict[str, dict[str, list[str]]] | None = None):
    path = root / "harms.yaml"
    if not path.exists():
        return {}, Tone(), none, b""
    data = _read_yaml(path) or {}
    harms = {h["id"]: Harm(**h) for h in data.get("harms") or []}
    for hid, by_lang in (more or {}).items():  # more examples from knowledge/phrasings/*.yaml
        if hid not in harms:
            raise KnowledgeError(f"phrasings: unknown harm {hid!r}")
        for lang, examples in by_lang.items():
            harms[hid].examples.setdefault(lang, []).extend(examples)
    words_path = root / "harm_words.yaml"
    words = _read_yaml(words_path) if words_path.exists() else {}
    for hid, by_lang in (words.get("words") or {}).items():
        if hid not in harms:
            raise KnowledgeError(f"harm_words.yaml: unknown harm {hid!r}")
        harms[hid].words = {lang: [f for w in ws for f in inflected_forms(str(w).lower(), lang)]
                            for lang, ws in by_lang.items()}
    tone = dict(data.get("tone") or {})
    tone["reported_speech"] = words.get("reported_speech") or {}
    tone["calm_down_orders"] = words.get("calm_down_orders") or {}
    tone["caller_speaking"] = words.get("caller_speaking") or {}
    tone["own_speaking"] = words.get("own_speaking") or {}
    tone["speech_verbs"] = words.get("speech_verbs") or {}
    tone["caller_verbs"] = words.get("caller_verbs") or {}
    # harms.yaml's `negatives` are benign sentences (many of them good steps: "I'd let the
    # caller finish without interrupting") written to check the harm cues against; they
    # are not a class that competes with the steps, so only the phrasings' `none` are used
    negatives = {lang: list(v) for lang, v in none.items()}
    raw = path.read_bytes() + (words_path.read_bytes() if words_path.exists() else b"")
    return harms, Tone(**tone), negatives, raw


def phrasing_docs(catalogue: Catalogue) -> dict[str, tuple[str, dict]]:
    """Every phrasing to embed: step/anti-pattern examples, step titles and model-answer
    sentences, all languages (built once per loaded catalogue)."""
    from .index import memoized_docs

    return memoized_docs(catalogue, "phrasings", lambda: _phrasing_docs(catalogue))


def _phrasing_docs(catalogue: Catalogue) -> dict[str, tuple[str, dict]]:
    docs: dict[str, tuple[str, dict]] = {}

    def add(kind: str, item_id: str, lang: str, n: int, text: str) -> None:
        text = " ".join(str(text).split())
        if not text:
            return
        digest = hashlib.sha256(text.encode()).hexdigest()[:16]
        docs[f"{kind}:{item_id}:{lang}:{n}"] = (
            text,
            {"kind": kind, "item": item_id, "lang": lang, "hash": digest},
        )

    for s in catalogue.steps.values():
        for lang, title in s.title.items():
            add("step", s.id, lang, 0, title)
        for lang, sentence in s.model_sentence.items():  # what the model answer says
            add("step", s.id, lang, 1000, sentence)
        for lang, examples in s.examples.items():
            for n, ex in enumerate(examples, start=1):
                add("step", s.id, lang, n, ex)
    for a in catalogue.anti_patterns.values():
        for lang, examples in a.examples.items():
            for n, ex in enumerate(examples, start=1):
                add("anti", a.id, lang, n, ex)
    for h in catalogue.harms.values():
        for lang, examples in h.examples.items():
            for n, ex in enumerate(examples, start=1):
                add("harm", h.id, lang, n, ex)
    for lang, examples in catalogue.tone.sarcasm_examples.items():
        for n, ex in enumerate(examples, start=1):
            add("anti", "sarcasm", lang, 5000 + n, ex)
    for lang, examples in catalogue.negatives.items():  # hard negatives: a class of their own
        for n, ex in enumerate(examples, start=1):
            add("none", "none", lang, n, ex)
    return docs


PROBE_C = 100.0  # inverse regularisation of the probe (chosen on the grading dev half)
PROBE_VERSION = 1  # bump when Probe.fit changes


@dataclass
class Probe:
    """Which catalogue item a sentence expresses: a multinomial logistic regression over
    the vectors of every phrasing (steps and anti-patterns, eight languages).

    The nearest phrasing follows sentence shape ("Once, I…") as much as meaning; a linear
    probe learns the directions that separate one step from another. Fitted once per
    catalogue and embedder (~3 s), then read from the data dir."""

    weights: np.ndarray  # (classes, dim)
    bias: np.ndarray  # (classes,)
    classes: list[str]  # "step:listen", "anti:yell_back", …

    @classmethod
    def fit(cls, matrix: np.ndarray, labels: list[str], c: float = PROBE_C, balanced: bool = False) -> Probe:
        from sklearn.linear_model import LogisticRegression

        clf = LogisticRegression(C=c, max_iter=3000, class_weight="balanced" if balanced else None)
        clf.fit(matrix, np.array(labels))
        coef, bias, classes = clf.coef_, clf.intercept_, [str(x) for x in clf.classes_]
        if len(classes) == 2:  # binary: one row for classes[1]; make it a two-class softmax
            coef = np.vstack([np.zeros_like(coef), coef])
            bias = np.concatenate([np.zeros_like(bias), bias])
        return cls(coef.astype(np.float32), bias.astype(np.float32), classes)

    def probabilities(self, vectors: np.ndarray) -> np.ndarray:
        z = np.atleast_2d(vectors) @ self.weights.T + self.bias
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        return p / p.sum(axis=1, keepdims=True)

    def step_probabilities(self, vectors: np.ndarray) -> list[dict[str, float]]:
        return self.kind_probabilities(vectors, "step")

    def kind_probabilities(self, vectors: np.ndarray, kind: str, probs: np.ndarray | None = None) -> list[dict[str, float]]:
        """Per row, the probability of each item of ``kind`` ("step", "anti", "harm", "none")."""
        cols = [(j, c.split(":", 1)[1]) for j, c in enumerate(self.classes) if c.startswith(kind + ":")]
        probs = self.probabilities(vectors) if probs is None else probs
        return [{sid: float(row[j]) for j, sid in cols} for row in probs]

    def save(self, path: Path) -> None:
        from .embeddings import save_npz

        save_npz(path, weights=self.weights, bias=self.bias, classes=np.array(self.classes))

    @classmethod
    def load(cls, path: Path) -> Probe | None:
        try:
            with np.load(path) as z:
                return cls(z["weights"], z["bias"], [str(x) for x in z["classes"]])
        except Exception as exc:  # noqa: BLE001 - truncated zip, EOF, bad arrays: refit
            log.warning("ignoring unreadable step probe %s (%s)", path, exc)
            return None


class StepBridge:
    """Embedded catalogue phrasings (a second Chroma collection), held as one matrix."""

    def __init__(self, settings, embedder, catalogue: Catalogue, client=None, cache=None):
        from .index import VectorIndex

        self.settings = settings
        self.catalogue = catalogue
        self.embedder = embedder
        self.index = VectorIndex(
            settings,
            embedder,
            lambda: phrasing_docs(catalogue),  # built when needed (the grader's matcher reads them)
            catalogue.fingerprint,
            name=f"{settings.collection}_catalogue",
            side="query",
            client=client,
            cache=cache,
        )
        self.index.ensure_current()
        ids, metas, matrix = self.index.all_vectors()
        self.ids = list(ids)
        self.kinds = np.array([m["kind"] for m in metas])
        self.items = np.array([m["item"] for m in metas])
        self.langs = np.array([m["lang"] for m in metas])
        self.matrix = matrix
        self.step_ids = list(catalogue.steps)
        self.anti_ids = list(catalogue.anti_patterns)
        self._step_rows = {
            s: np.flatnonzero((self.kinds == "step") & (self.items == s)) for s in self.step_ids
        }
        self._anti_rows = {
            a: np.flatnonzero((self.kinds == "anti") & (self.items == a)) for a in self.anti_ids
        }
        self.harm_ids = list(catalogue.harms)
        self._harm_rows = {
            h: np.flatnonzero((self.kinds == "harm") & (self.items == h)) for h in self.harm_ids
        }
        self._none_rows = np.flatnonzero(self.kinds == "none")

    @cached_property
    def probe(self) -> Probe:
        """The phrasing classifier, fitted once and kept in the data dir under a name derived
        from exactly what it is fitted from (vectors, labels, recipe, scikit-learn version),
        so any change there fits a new one."""
        return self._fitted("probe", lambda i: f"{self.kinds[i]}:{self.items[i]}", balanced=False)

    @cached_property
    def harm_probe(self) -> Probe:
        """Harm or not: a binary classifier over the same phrasings, classes weighted to
        balance. The many-class probe spreads a harmful sentence's probability over steps
        and hard negatives that share its words; a binary one asks only the question that
        decides the cap."""
        return self._fitted("probe-harm", lambda i: "harm" if self.kinds[i] == "harm" else "other", balanced=True)

    def harm_probability(self, vectors: np.ndarray) -> np.ndarray:
        probs = self.harm_probe.probabilities(vectors)
        return probs[:, self.harm_probe.classes.index("harm")] if "harm" in self.harm_probe.classes \
            else np.zeros(len(probs))

    @cached_property
    def _probe_rows(self):
        """The phrasing rows in id order (the same rows in the same order everywhere), as
        one matrix, and the hash of its bytes: what every probe is fitted from."""
        order = np.argsort(np.array(self.ids))
        matrix = np.ascontiguousarray(self.matrix[order])
        return order, matrix, hashlib.sha256(matrix.tobytes())

    def _fitted(self, name: str, label, balanced: bool) -> Probe:
        from importlib.metadata import version  # not `import sklearn`: ~1.4 s, only needed to fit

        sklearn_version = version("scikit-learn")
        order, matrix, matrix_hash = self._probe_rows
        labels = [label(i) for i in order]
        h = matrix_hash.copy()  # = sha256(matrix bytes), hashed once for both probes
        h.update("|".join(labels).encode())
        h.update(f"{PROBE_VERSION}|{PROBE_C}|{balanced}|{sklearn_version}".encode())
        path = Path(self.settings.data_dir) / "probe" / f"{name}-{h.hexdigest()[:16]}.npz"
        probe = Probe.load(path) if path.exists() else None
        if probe is None or probe.classes != sorted(set(labels)) or probe.weights.shape[1] != matrix.shape[1]:
            if len(set(labels)) < 2:
                return Probe(np.zeros((1, matrix.shape[1]), np.float32), np.zeros(1, np.float32), sorted(set(labels)))
            probe = Probe.fit(matrix, labels, balanced=balanced)
            try:
                probe.save(path)
            except OSError as exc:  # a read-only data dir costs ~3 s per start, nothing else
                log.warning("could not save the %s to %s (%s)", name, path, exc)
        return probe

    def similarities(self, vectors: np.ndarray) -> np.ndarray:
        """(n_texts, n_phrasings) cosine matrix."""
        return np.atleast_2d(vectors) @ self.matrix.T

    def step_scores(self, sims_row: np.ndarray) -> dict[str, float]:
        return {s: float(sims_row[rows].max()) for s, rows in self._step_rows.items() if len(rows)}

    def anti_scores(self, sims_row: np.ndarray) -> dict[str, float]:
        return {a: float(sims_row[rows].max()) for a, rows in self._anti_rows.items() if len(rows)}

    def harm_scores(self, sims_row: np.ndarray) -> dict[str, float]:
        return {h: float(sims_row[rows].max()) for h, rows in self._harm_rows.items() if len(rows)}

    def none_score(self, sims_row: np.ndarray) -> float:
        """How close the unit is to a hard negative or filler sentence."""
        return float(sims_row[self._none_rows].max()) if len(self._none_rows) else -1.0

    def ranked_steps(self, vector: np.ndarray) -> list[tuple[str, float]]:
        scores = self.step_scores(self.similarities(vector)[0])
        return sorted(scores.items(), key=lambda kv: kv[1], reverse=True)

    def passages_for(self, vector: np.ndarray, top_steps: int = 3) -> list[str]:
        """Passages of the steps closest to ``vector``, best step first."""
        out: list[str] = []
        for sid, _ in self.ranked_steps(vector)[:top_steps]:
            for pid in self.catalogue.steps[sid].passages:
                if pid not in out:
                    out.append(pid)
        return out

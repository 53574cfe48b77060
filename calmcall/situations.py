"""Situation -> documented steps: the classifier behind Ask's step set.

Why a situation classifier and not the steps of the retrieved passages: a trainer asks about
a situation ("the caller keeps insulting me and won't stop"), and the answer is the
sequence of steps the articles document for it (state your limits, transfer, end the call
per policy, document it), not the one or two steps of whichever passage the question's words
happen to be closest to in that language. The small 4-bit multilingual encoder places a
question about a passage in eight languages close enough to the same *situation*, but
not reliably to the same passage.

``knowledge/situations.yaml`` lists trainer situations with their steps and phrasings in
eight languages; each situation also takes over practice questions (``questions.yaml``,
eight languages each) and passages (whose doc2query questions in ``knowledge/queries/``
then count as phrasings of it). A linear discriminant (scikit-learn LDA with shrinkage: a
closed-form fit in ~2 s, and its shared within-class covariance discounts the directions
in which the eight language versions of one situation differ) is fitted once on the
query-side vectors of all of them. The fitted weights are stored under a key of exactly what
they are fitted from (texts, labels, model, recipe, scikit-learn version) — shipped in
``knowledge/vectors/`` so a fresh checkout reads them, refitted in the data dir otherwise.
At ask time the classifier is one small matrix product on the question's vector (which
search has computed anyway): no import of scikit-learn, no extra encoder pass.

A lexical channel sits beside it, as bm25 does beside dense search: a logistic regression on
TF-IDF of Snowball-stemmed words, per language ("de:beleidigt"), fitted on the same texts.
The encoder reads "keeps insulting me and won't stop" close to "keeps interrupting me"; the
words tell them apart. The two probability vectors are combined by a weighted geometric mean
(held-out phrasings, with LDA's scores calibrated by a temperature: log-loss 2.97 -> 1.28,
step precision .75 -> .78, cross-language agreement .70 -> .72).

A step's score is the probability mass of the situations that list it; an answer takes the
steps above ``selection.min_score`` (at least ``min_steps``, at most ``max_steps``).
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from .knowledge import KnowledgeError, load_yaml

log = logging.getLogger(__name__)

MODEL_VERSION = 1  # bump when SituationModel.fit changes
SCOPE_VERSION = 1  # bump when ScopeModel.fit changes
FILE_GLOB = "situations-*.npz"
SCOPE_GLOB = "scope-*.npz"


class Situation(BaseModel):
    id: str
    steps: list[str]
    conflicts: list[str] = Field(default_factory=list)
    questions: list[str] = Field(default_factory=list)
    passages: list[str] = Field(default_factory=list)
    text: dict[str, list[str]] = Field(default_factory=dict)


class Selection(BaseModel):
    min_score: float = 0.3
    min_steps: int = 2
    max_steps: int = 6
    # Ask answers a question search finds no close passage for when its nearest reference
    # question is in-domain by at least this cosine margin (Retriever.scope_margin)
    scope_margin: float = 0.04
    passages_per_step: int = 2  # a step cites up to this many of its passages search found
    passages_narrowed: int = 3  # a follow-up narrowed to one or two steps shows more sources
    # among those, the ones teaching most of what the situation calls for come first
    # (else search's order)
    central_first: bool = False


class Recipe(BaseModel):
    kind: str = "lda"
    shrinkage: float = 0.5
    priors: str = "uniform"  # "uniform": every situation equally likely a priori; "frequency": by phrasing count
    lexical_c: float = 30.0  # inverse regularisation of the lexical logistic regression
    lexical_weight: float = 0.5  # its weight in the geometric mean (0 = dense only)
    # LDA's probabilities are far too sure of themselves (held-out log-loss 2.97); dividing its
    # scores by 2 calibrates them (1.70; 1.28 combined) and lets the words have a say
    dense_temperature: float = 2.0


class ScopeSpec(BaseModel):
    """``situations.yaml`` ``scope``: the scope classifier's recipe, its two decision
    thresholds and the out-of-scope texts written for it (see the file's comment)."""

    c: float = 10.0  # inverse regularisation of the dense logistic regression
    lexical_c: float = 1.0  # ... and of the lexical one
    lexical_weight: float = 0.5  # the lexical channel's weight in the combined log-odds
    min_probability: float = 0.5  # Ask refuses below this even when search finds a passage
    min_probability_described: float = 0.6  # ... and below this a situation search finds none for
    accept_probability: float = 0.9  # Ask answers above this even when search finds none close
    # "language": each (in/out, language) group weighs the same in the fit, so a language with
    # more in-scope phrasings than out-of-scope anchors does not lean in scope; "class": the
    # two classes only
    balance: Literal["class", "language"] = "class"
    in_scope: dict[str, list[str]] = Field(default_factory=dict)
    out_of_scope: dict[str, list[str]] = Field(default_factory=dict)

    def recipe_json(self) -> str:
        keys = {"c", "lexical_c", "lexical_weight"} | ({"balance"} if self.balance != "class" else set())
        return self.model_dump_json(include=keys)


@dataclass
class SituationSet:
    situations: dict[str, Situation]
    selection: Selection
    recipe: Recipe
    scope: ScopeSpec


def load_situations(root: Path, catalogue) -> SituationSet:
    """Read and cross-check ``situations.yaml`` against the catalogue and practice questions."""
    path = Path(root) / "situations.yaml"
    data = load_yaml(path.read_bytes()) or {}
    situations = {s["id"]: Situation(**s) for s in data.get("situations") or []}
    seen_q: dict[str, str] = {}
    seen_p: dict[str, str] = {}
    for s in situations.values():
        for sid in s.steps:
            if sid not in catalogue.steps:
                raise KnowledgeError(f"situations.yaml: {s.id} names unknown step {sid!r}")
        for cid in s.conflicts:
            if cid not in catalogue.conflicts:
                raise KnowledgeError(f"situations.yaml: {s.id} names unknown conflict {cid!r}")
        for qid in s.questions:
            catalogue.question(qid)  # UnknownQuestion for a typo
            if qid in seen_q:
                raise KnowledgeError(f"situations.yaml: question {qid} in {seen_q[qid]} and {s.id}")
            seen_q[qid] = s.id
        for pid in s.passages:
            if pid in seen_p:
                raise KnowledgeError(f"situations.yaml: passage {pid} in {seen_p[pid]} and {s.id}")
            seen_p[pid] = s.id
        if not s.steps:
            raise KnowledgeError(f"situations.yaml: {s.id} lists no steps")
    return SituationSet(situations, Selection(**(data.get("selection") or {})), Recipe(**(data.get("model") or {})),
                        ScopeSpec(**(data.get("scope") or {})))


def stems(text: str, lang: str) -> list[str]:
    """The lexical channel's tokens: Snowball stems without stop words, tagged with the
    language they were stemmed in (the same word means different things across languages)."""
    from .lexical import tokenize

    return [f"{lang}:{t}" for t in tokenize([text], lang)[0]]


@dataclass
class SituationModel:
    """Per situation: a dense linear score on the question's vector (LDA's decision function)
    and a lexical one on its stems (logistic regression over TF-IDF), each softmax-normalised
    and combined by a weighted geometric mean."""

    weights: np.ndarray  # (situations, dim)
    bias: np.ndarray  # (situations,)
    classes: list[str]
    vocab: dict[str, int]  # stem -> column
    idf: np.ndarray  # (vocab,)
    lex_weights: np.ndarray  # (situations, vocab)
    lex_bias: np.ndarray  # (situations,)
    lexical_weight: float = 0.5
    dense_temperature: float = 1.0

    @classmethod
    def fit(cls, matrix: np.ndarray, labels: list[str], tokens: list[list[str]], recipe: Recipe) -> SituationModel:
        if recipe.kind != "lda":
            raise KnowledgeError(f"situations.yaml: unknown model kind {recipe.kind!r}")
        from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        classes = sorted(set(labels))
        priors = np.full(len(classes), 1.0 / len(classes)) if recipe.priors == "uniform" else None
        lda = LinearDiscriminantAnalysis(solver="lsqr", shrinkage=recipe.shrinkage, priors=priors)
        lda.fit(matrix, np.array(labels))
        tfidf = TfidfVectorizer(analyzer=lambda toks: toks, sublinear_tf=True, lowercase=False)
        features = tfidf.fit_transform(tokens)
        lex = LogisticRegression(C=recipe.lexical_c, max_iter=3000)
        lex.fit(features, np.array(labels))
        if [str(c) for c in lda.classes_] != classes or [str(c) for c in lex.classes_] != classes:
            raise KnowledgeError("situation classifier: class order differs between its two channels")
        vocab = {str(t): int(i) for t, i in tfidf.vocabulary_.items()}
        return cls(lda.coef_.astype(np.float32), lda.intercept_.astype(np.float32), classes, vocab,
                   tfidf.idf_.astype(np.float32), lex.coef_.astype(np.float32), lex.intercept_.astype(np.float32),
                   recipe.lexical_weight, recipe.dense_temperature)

    @staticmethod
    def _softmax(z: np.ndarray) -> np.ndarray:
        z = z - z.max(axis=1, keepdims=True)
        p = np.exp(z)
        return p / p.sum(axis=1, keepdims=True)

    def dense_probabilities(self, vectors: np.ndarray) -> np.ndarray:
        return self._softmax((np.atleast_2d(vectors) @ self.weights.T + self.bias) / self.dense_temperature)

    def features(self, tokens: list[str]) -> np.ndarray:
        """TF-IDF as scikit-learn computes it (sublinear tf, smoothed idf, l2 norm)."""
        return _tfidf(tokens, self.vocab, self.idf)

    def lexical_probabilities(self, tokens: list[str]) -> np.ndarray:
        return self._softmax(self.features(tokens)[None, :] @ self.lex_weights.T + self.lex_bias)

    def probabilities(self, vector: np.ndarray, tokens: list[str]) -> np.ndarray:
        dense = self.dense_probabilities(vector)[0]
        a = self.lexical_weight
        if a <= 0:
            return dense
        lexical = self.lexical_probabilities(tokens)[0]
        log_p = (1 - a) * np.log(dense + 1e-12) + a * np.log(lexical + 1e-12)
        p = np.exp(log_p - log_p.max())
        return p / p.sum()

    def save(self, path: Path) -> None:
        from .embeddings import save_npz

        order = sorted(self.vocab, key=self.vocab.get)
        save_npz(path, compress=True, weights=self.weights, bias=self.bias, classes=np.array(self.classes),
                 vocab=np.array(order), idf=self.idf, lex_weights=self.lex_weights, lex_bias=self.lex_bias,
                 lexical_weight=np.array(self.lexical_weight, dtype=np.float32),
                 dense_temperature=np.array(self.dense_temperature, dtype=np.float32))

    @classmethod
    def load(cls, path: Path) -> SituationModel | None:
        try:
            with np.load(path) as z:
                vocab = {str(t): i for i, t in enumerate(z["vocab"].tolist())}
                return cls(z["weights"], z["bias"], [str(x) for x in z["classes"]], vocab, z["idf"],
                           z["lex_weights"], z["lex_bias"], float(z["lexical_weight"]), float(z["dense_temperature"]))
        except Exception as exc:  # noqa: BLE001 - truncated zip, EOF, bad or missing arrays: refit
            log.warning("ignoring unreadable situation model %s (%s)", path, exc)
            return None


@dataclass
class ScopeModel:
    """In scope or not: a logistic regression on the question's vector and one on its stems
    (TF-IDF), their log-odds combined with ``lexical_weight`` (the binary case of the
    situation model's weighted geometric mean). Fitted on everything Ask answers (the
    situation classifier's texts, calibration in-domain anchors) against out-of-domain
    anchors and written out-of-scope questions, classes balanced."""

    weights: np.ndarray  # (dim,)
    bias: float
    vocab: dict[str, int]
    idf: np.ndarray
    lex_weights: np.ndarray  # (vocab,)
    lex_bias: float
    lexical_weight: float = 0.5

    @classmethod
    def fit(cls, matrix: np.ndarray, inside: np.ndarray, tokens: list[list[str]], spec: ScopeSpec,
            langs: list[str] | None = None) -> ScopeModel:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        y = inside.astype(int)
        weights = None
        if spec.balance == "language" and langs is not None:
            groups = list(zip(y.tolist(), langs))
            counts = Counter(groups)
            weights = np.array([len(groups) / (len(counts) * counts[g]) for g in groups])
        balanced = "balanced" if weights is None else None
        dense = LogisticRegression(C=spec.c, max_iter=5000, class_weight=balanced).fit(matrix, y, sample_weight=weights)
        tfidf = TfidfVectorizer(analyzer=lambda toks: toks, sublinear_tf=True, lowercase=False)
        features = tfidf.fit_transform(tokens)
        lex = LogisticRegression(C=spec.lexical_c, max_iter=3000, class_weight=balanced).fit(
            features, y, sample_weight=weights)
        vocab = {str(t): int(i) for t, i in tfidf.vocabulary_.items()}
        return cls(dense.coef_[0].astype(np.float32), float(dense.intercept_[0]), vocab,
                   tfidf.idf_.astype(np.float32), lex.coef_[0].astype(np.float32), float(lex.intercept_[0]),
                   spec.lexical_weight)

    def features(self, tokens: list[str]) -> np.ndarray:
        return _tfidf(tokens, self.vocab, self.idf)

    def probability(self, vector: np.ndarray, tokens: list[str]) -> float:
        dense = float(np.asarray(vector, dtype=np.float32) @ self.weights) + self.bias
        lexical = float(self.features(tokens) @ self.lex_weights) + self.lex_bias
        z = (1 - self.lexical_weight) * dense + self.lexical_weight * lexical
        return float(1.0 / (1.0 + np.exp(-max(min(z, 30.0), -30.0))))

    def save(self, path: Path) -> None:
        from .embeddings import save_npz

        order = sorted(self.vocab, key=self.vocab.get)
        save_npz(path, compress=True, weights=self.weights, bias=np.array(self.bias, dtype=np.float32),
                 vocab=np.array(order), idf=self.idf, lex_weights=self.lex_weights,
                 lex_bias=np.array(self.lex_bias, dtype=np.float32),
                 lexical_weight=np.array(self.lexical_weight, dtype=np.float32))

    @classmethod
    def load(cls, path: Path) -> ScopeModel | None:
        try:
            with np.load(path) as z:
                vocab = {str(t): i for i, t in enumerate(z["vocab"].tolist())}
                return cls(z["weights"], float(z["bias"]), vocab, z["idf"], z["lex_weights"], float(z["lex_bias"]),
                           float(z["lexical_weight"]))
        except Exception as exc:  # noqa: BLE001 - truncated zip, EOF, bad or missing arrays: refit
            log.warning("ignoring unreadable scope model %s (%s)", path, exc)
            return None


def _tfidf(tokens: list[str], vocab: dict[str, int], idf: np.ndarray) -> np.ndarray:
    """TF-IDF as scikit-learn computes it (sublinear tf, smoothed idf, l2 norm)."""
    x = np.zeros(len(idf), dtype=np.float32)
    counts: dict[int, int] = {}
    for t in tokens:
        j = vocab.get(t)
        if j is not None:
            counts[j] = counts.get(j, 0) + 1
    for j, n in counts.items():
        x[j] = (1.0 + np.log(n)) * idf[j]
    norm = float(np.linalg.norm(x))
    return x / norm if norm else x


@dataclass
class Guess:
    """What the classifier makes of one question."""

    situation: str  # the most probable situation
    probability: float
    situations: list[tuple[str, float]]  # the most probable few, best first
    step_scores: dict[str, float]  # every step: probability mass of the situations listing it
    steps: list[str]  # the selected steps, best score first


class SituationClassifier:
    """Loads (or fits once) the situation model for the configured embedder."""

    def __init__(self, settings, embedder, catalogue, knowledge, cache=None):
        self.settings = settings
        self.embedder = embedder
        self.catalogue = catalogue
        self.knowledge = knowledge
        self.cache = cache
        self.spec = load_situations(settings.knowledge_dir, catalogue)
        self.texts, self.labels, self.langs = self.training_texts()
        self.model = self._load_or_fit()
        self.scope = self._load_or_fit_scope()
        missing = set(self.spec.situations) - set(self.model.classes)
        if missing:  # a situation without a single phrasing cannot be predicted
            raise KnowledgeError(f"situations.yaml: no training text for {sorted(missing)}")
        self._step_ids = list(catalogue.steps)
        self._member = self._membership()

    def _membership(self) -> np.ndarray:
        """(situations, steps) membership matrix, rows in the model's class order."""
        return np.array(
            [[1.0 if sid in self.spec.situations[c].steps else 0.0 for sid in self._step_ids] for c in self.model.classes],
            dtype=np.float32,
        )

    def set_steps(self, lists: dict[str, list[str]]) -> None:
        """Replace situations' step lists in this process (eval/ask_eval.py ``--step-lists``
        compares candidate lists this way): the model predicts situations, so no refit."""
        unknown = {s for steps in lists.values() for s in steps} - set(self._step_ids)
        if any(not steps for steps in lists.values()):
            raise KnowledgeError(f"step lists: no steps for {sorted(k for k, v in lists.items() if not v)}")
        if unknown or set(lists) - set(self.spec.situations):
            raise KnowledgeError(f"step lists: unknown steps {sorted(unknown)} or situations "
                                 f"{sorted(set(lists) - set(self.spec.situations))}")
        for sid, steps in lists.items():
            self.spec.situations[sid] = self.spec.situations[sid].model_copy(update={"steps": list(steps)})
        self._member = self._membership()

    # -- training data ---------------------------------------------------------------
    def training_texts(self) -> tuple[list[str], list[str], list[str]]:
        """Every phrasing of every situation, in a fixed order, with its label and language:
        its own phrasings, the texts of the practice questions it takes over, the doc2query
        questions of its passages."""
        texts: list[str] = []
        labels: list[str] = []
        langs: list[str] = []
        self._own: set[int] = set()  # positions of situations.yaml's own phrasings

        def add(text: str, label: str, lang: str) -> bool:
            text = " ".join(str(text).split())
            if text:
                texts.append(text)
                labels.append(label)
                langs.append(lang)
            return bool(text)

        for s in self.spec.situations.values():
            for lang in sorted(s.text):
                for t in s.text[lang]:
                    if add(t, s.id, lang):
                        self._own.add(len(texts) - 1)
            for qid in s.questions:
                q = self.catalogue.question(qid)
                for lang in sorted(q.text):
                    add(q.text[lang], s.id, lang)
            for pid in s.passages:
                p = self.knowledge.get(pid)
                for lang in sorted(p.queries):
                    for t in p.queries[lang]:
                        add(t, s.id, lang)
        return texts, labels, langs

    def key(self) -> str:
        from importlib.metadata import version  # not `import sklearn` (~1.4 s): only needed to fit

        h = hashlib.sha256()
        for text, label, lang in zip(self.texts, self.labels, self.langs):
            h.update(f"{label}\t{lang}\t{text}\n".encode())
        h.update(f"{self.embedder.manifest_id}|{MODEL_VERSION}|{self.spec.recipe.model_dump_json()}|"
                 f"{version('scikit-learn')}".encode())
        return h.hexdigest()[:16]

    def model_path(self) -> Path:
        return Path(self.settings.data_dir) / "situations" / f"situations-{self.key()}.npz"

    def _load_or_fit(self) -> SituationModel:
        name = self.model_path().name
        labels = sorted(set(self.labels))
        for folder in (Path(self.settings.knowledge_dir) / "vectors", Path(self.settings.data_dir) / "situations"):
            path = folder / name
            if path.exists():
                model = SituationModel.load(path)
                if model is not None and model.classes == labels and model.weights.shape[1] == self.embedder.dim:
                    self.fitted = False
                    return model
        log.info("Fitting the situation classifier (%d phrasings, %d situations)", len(self.texts), len(labels))
        model = SituationModel.fit(self.training_matrix(), self.labels,
                                   [stems(t, lang) for t, lang in zip(self.texts, self.langs)], self.spec.recipe)
        self.fitted = True
        try:
            model.save(self.model_path())
        except OSError as exc:  # a read-only data dir costs a refit per start, nothing else
            log.warning("could not save the situation model (%s)", exc)
        return model

    def _phrasing_cache(self):
        """Vectors of the training texts: the shared cache (doc2query and practice questions
        are index and scope texts), then ``knowledge/vectors/situations/`` (our phrasings,
        shipped so that a refit after a data change embeds only what changed)."""
        from .embeddings import VectorCache

        return VectorCache([Path(self.settings.knowledge_dir) / "vectors" / "situations"], None, self.embedder.manifest_id)

    def training_matrix(self, texts: list[str] | None = None) -> np.ndarray:
        """Query-side vectors of ``texts`` (default: the situation classifier's texts)."""
        texts = self.texts if texts is None else texts
        own = self._phrasing_cache()
        keys = [own.key(self.embedder.manifest_id, t, True) for t in texts]
        matrix = np.zeros((len(texts), self.embedder.dim), dtype=np.float32)
        todo = []
        for i, k in enumerate(keys):
            v = own.get(k)
            if v is not None and v.shape[0] == self.embedder.dim:
                matrix[i] = v
            else:
                todo.append(i)
        if todo:
            fresh = self.embedder.embed_cached([texts[i] for i in todo], True, self.cache)
            matrix[todo] = fresh
            if self.cache is not None:
                self.cache.save()
        return matrix

    # -- scope -----------------------------------------------------------------------
    def scope_texts(self) -> tuple[list[str], list[bool], list[str | None]]:
        """The scope classifier's texts, whether each is in scope, and its language where
        known (None: detected when fitting). In scope: the situation classifier's texts,
        every practice question and doc2query question, calibration's in-domain anchors.
        situations.yaml ``scope.in_scope`` (short questions). Out of scope: calibration's and
        scope_anchors.yaml's out-of-domain anchors, situations.yaml ``scope.out_of_scope``
        and scope_anchors.yaml ``topics`` (per topic, per language)."""
        texts, inside, langs, _ = self.scope_texts_grouped()
        return texts, inside, langs

    def scope_texts_grouped(self) -> tuple[list[str], list[bool], list[str | None], list[str]]:
        """``scope_texts`` with each text's group: its scope_anchors.yaml topic, or
        "in_scope" / "out_of_scope" for the rest (the folds of eval/ask_eval.py scopecv)."""
        root = Path(self.settings.knowledge_dir)
        cal = load_yaml((root / "calibration.yaml").read_bytes()) or {}
        anchors_file = root / "scope_anchors.yaml"
        anchors = (load_yaml(anchors_file.read_bytes()) or {}) if anchors_file.exists() else {}
        texts: list[str] = []
        inside: list[bool] = []
        langs: list[str | None] = []
        groups: list[str] = []
        seen: set[str] = set()

        def add(text, is_in: bool, lang: str | None, group: str | None = None) -> None:
            text = " ".join(str(text).split())
            if text and text not in seen:
                seen.add(text)
                texts.append(text)
                inside.append(is_in)
                langs.append(lang)
                groups.append(group or ("in_scope" if is_in else "out_of_scope"))

        for t, lang in zip(self.texts, self.langs):
            add(t, True, lang)
        for q in self.catalogue.questions.values():
            for lang in sorted(q.text):
                add(q.text[lang], True, lang)
        for pid in sorted(self.knowledge.passages):
            queries = self.knowledge.passages[pid].queries or {}
            for lang in sorted(queries):
                for t in queries[lang]:
                    add(t, True, lang)
        for t in cal.get("in_domain") or []:
            add(t, True, None)
        for lang in sorted(self.spec.scope.in_scope):
            for t in self.spec.scope.in_scope[lang]:
                add(t, True, lang)
        for lang in sorted(anchors.get("in_scope") or {}):
            for t in anchors["in_scope"][lang] or []:
                add(t, True, lang)
        for t in list(cal.get("out_of_domain") or []) + list(anchors.get("out_of_domain") or []):
            add(t, False, None)
        for lang in sorted(self.spec.scope.out_of_scope):
            for t in self.spec.scope.out_of_scope[lang]:
                add(t, False, lang)
        for topic, by_lang in sorted((anchors.get("topics") or {}).items()):
            for lang in sorted(by_lang or {}):
                for t in by_lang[lang] or []:
                    add(t, False, lang, f"topic:{topic}")
        return texts, inside, langs, groups

    def scope_key(self, texts: list[str], inside: list[bool]) -> str:
        from importlib.metadata import version

        h = hashlib.sha256()
        for text, is_in in zip(texts, inside):
            h.update(f"{int(is_in)}\t{text}\n".encode())
        h.update(f"{self.embedder.manifest_id}|{SCOPE_VERSION}|{self.spec.scope.recipe_json()}|"
                 f"{version('scikit-learn')}".encode())
        return h.hexdigest()[:16]

    def _load_or_fit_scope(self) -> ScopeModel:
        from .language import detect

        texts, inside, langs = self.scope_texts()
        name = f"scope-{self.scope_key(texts, inside)}.npz"
        self._scope_name = name
        for folder in (Path(self.settings.knowledge_dir) / "vectors", Path(self.settings.data_dir) / "situations"):
            path = folder / name
            if path.exists():
                model = ScopeModel.load(path)
                if model is not None and model.weights.shape[0] == self.embedder.dim:
                    self.scope_fitted = False
                    return model
        log.info("Fitting the scope classifier (%d in scope, %d out)", sum(inside), len(inside) - sum(inside))
        langs = [lang or detect(t) for t, lang in zip(texts, langs)]
        tokens = [stems(t, lang) for t, lang in zip(texts, langs)]
        model = ScopeModel.fit(self.training_matrix(texts), np.array(inside), tokens, self.spec.scope, langs)
        self.scope_fitted = True
        try:
            model.save(Path(self.settings.data_dir) / "situations" / name)
        except OSError as exc:
            log.warning("could not save the scope model (%s)", exc)
        return model

    def scope_probability(self, vector: np.ndarray, text: str, lang: str) -> float:
        """How likely the articles answer ``text`` at all (its vector and stems)."""
        return self.scope.probability(vector, stems(text, lang))

    def ship(self) -> list[Path]:
        """Write the fitted model and our phrasings' vectors into ``knowledge/vectors/`` (run
        after changing situations.yaml: ``python -m calmcall.situations``). Older shipped
        models are removed; the data dir keeps its own."""
        from .embeddings import VectorCache, save_npz

        kdir = Path(self.settings.knowledge_dir) / "vectors"
        for old in [*kdir.glob(FILE_GLOB), *kdir.glob(SCOPE_GLOB)]:
            old.unlink()
        target = kdir / self.model_path().name
        self.model.save(target)
        scope_target = kdir / self._scope_name
        self.scope.save(scope_target)
        written = {" ".join(str(t).split()) for part in (self.spec.scope.in_scope, self.spec.scope.out_of_scope)
                   for ts in part.values() for t in ts}
        stexts, _, _, groups = self.scope_texts_grouped()
        anchors_file = Path(self.settings.knowledge_dir) / "scope_anchors.yaml"
        extra = (load_yaml(anchors_file.read_bytes()) or {}).get("in_scope") or {} if anchors_file.exists() else {}
        written |= {t for t, g in zip(stexts, groups) if g.startswith("topic:")}
        written |= {" ".join(str(t).split()) for ts in extra.values() for t in ts or []}
        texts = sorted({self.texts[i] for i in self._own} | (written - {""}))
        matrix = self.training_matrix(texts)
        keys = [VectorCache.key(self.embedder.manifest_id, t, True) for t in texts]
        cache_path = kdir / "situations" / VectorCache.filename(self.embedder.manifest_id)
        save_npz(cache_path, compress=True, keys=np.array(keys), vectors=matrix.astype(np.float32))
        return [target, scope_target, cache_path]

    # -- prediction ------------------------------------------------------------------
    def guess(self, vector: np.ndarray, text: str, lang: str, top: int = 3) -> Guess:
        """``vector``: the question's query-side vector; ``text`` and ``lang``: the question
        and its detected language, for the lexical channel."""
        probs = self.model.probabilities(vector, stems(text, lang))
        scores = probs @ self._member
        step_scores = {sid: float(s) for sid, s in zip(self._step_ids, scores)}
        order = sorted(step_scores, key=lambda s: (-step_scores[s], s))
        sel = self.spec.selection
        chosen = [s for s in order[: sel.max_steps] if step_scores[s] >= sel.min_score]
        if len(chosen) < sel.min_steps:
            chosen = order[: sel.min_steps]
        ranked = sorted(zip(self.model.classes, probs.tolist()), key=lambda kv: (-kv[1], kv[0]))
        return Guess(ranked[0][0], float(ranked[0][1]), [(c, float(p)) for c, p in ranked[:top]], step_scores, chosen)

    def situation(self, sid: str) -> Situation:
        return self.spec.situations[sid]


def main() -> int:
    """Refit the situation classifier from the data and ship it (``python -m calmcall.situations``)."""
    import tempfile

    from .coach import Coach
    from .config import Settings, get_settings

    logging.basicConfig(level=logging.INFO)
    base = get_settings()
    settings = Settings(**{**base.model_dump(), "data_dir": Path(tempfile.mkdtemp(prefix="calmcall-situations-"))})
    coach = Coach(settings)
    clf = SituationClassifier(settings, coach.embedder, coach.catalogue, coach.knowledge, cache=coach.vector_cache)
    for path in clf.ship():
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Hybrid cross-lingual retrieval: dense (Chroma, every passage in five languages) +
lexical (bm25s per language) + the steps catalogue as a bridge, fused by reciprocal rank,
deduplicated per passage, with a relevance score calibrated for the configured model.

Why three signals: a small 4-bit multilingual embedder scores a raw Swedish passage
against an English question barely above noise. Our aligned translations let each
question meet every passage in its own language, bm25 catches exact terms ("hold",
"supervisor"), and the catalogue's example phrasings (in eight languages) map paraphrases
to the passages that teach them. ``eval/`` measures each contribution.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from .config import Settings, get_settings
from .embeddings import Embedder, load_embedder, save_npz
from .index import MATRIX_DIR, VectorIndex, passage_of, query_docs, vector_docs
from .inputs import clean_text
from .knowledge import Knowledge, load_knowledge, load_yaml
from .language import detect
from .lexical import LexicalIndex
from .models import SearchHit, SearchResult

log = logging.getLogger(__name__)
SCOPE_REFS = "scope-references"  # data_dir/matrices/<this>-<hash>.npz: the scope check's reference vectors

FUSION_FILE = "retrieval.yaml"


class Fusion(BaseModel):
    """``knowledge/retrieval.yaml``: how the signals are fused (the file says why each value)."""

    model_config = ConfigDict(extra="forbid")
    rrf_k: int = Field(gt=0)
    dense_k: int = Field(gt=0)
    dense_weight: float = Field(ge=0)
    queries_weight: float = Field(ge=0)
    lexical_weight: float = Field(ge=0)
    bridge_weight: float = Field(ge=0)
    overview_discount: float = Field(gt=0, le=1)

    @classmethod
    def load(cls, knowledge_dir: Path) -> Fusion:
        return cls(**(load_yaml((Path(knowledge_dir) / FUSION_FILE).read_bytes()) or {}))


@dataclass
class Calibration:
    """Maps a raw dense cosine to a 0..1 relevance for the configured model."""

    threshold: float
    scale: float

    def relevance(self, cosine: float) -> float:
        z = (cosine - self.threshold) / self.scale
        return 1.0 / (1.0 + math.exp(-max(min(z, 30.0), -30.0)))

    @classmethod
    def fit(cls, in_domain: np.ndarray, out_domain: np.ndarray) -> Calibration:
        lo_in = float(np.percentile(in_domain, 10))
        hi_out = float(np.percentile(out_domain, 90))
        threshold = (lo_in + hi_out) / 2
        if lo_in < hi_out:  # overlapping anchors: fall back to the midpoint of medians
            threshold = (float(np.median(in_domain)) + float(np.median(out_domain))) / 2
        spread = float(np.median(in_domain) - np.median(out_domain))
        return cls(threshold=threshold, scale=max(spread / 4, 1e-3))


def _rrf(rankings: list[tuple[list[str], float]], k: int) -> dict[str, float]:
    fused: dict[str, float] = {}
    for ranking, weight in rankings:
        for rank, pid in enumerate(ranking):
            fused[pid] = fused.get(pid, 0.0) + weight / (k + rank + 1)
    return fused


def _ranked(scores: dict[str, float]) -> list[str]:
    """Best first; ties broken by id so equal scores rank the same in every process."""
    return sorted(scores, key=lambda pid: (-scores[pid], pid))


class Retriever:
    """Loads models and indexes once; ``search`` is then cheap and thread-safe for reads."""

    def __init__(
        self,
        settings: Settings | None = None,
        embedder: Embedder | None = None,
        knowledge: Knowledge | None = None,
        progress: bool = False,
        bridge=None,
        cache=None,
    ):
        self.settings = settings or get_settings()
        self.knowledge = knowledge or load_knowledge(self.settings.knowledge_dir)
        self.fusion = Fusion.load(self.settings.knowledge_dir)
        self.embedder = embedder or load_embedder(self.settings)
        self.index = VectorIndex(
            self.settings,
            self.embedder,
            lambda: vector_docs(self.knowledge),  # built only if the index must be built
            self.knowledge.fingerprint,
            client=bridge.index.store if bridge is not None else None,  # one lazily opened client
            cache=cache,
        )
        self.index.ensure_current(progress=progress)
        self.queries = VectorIndex(
            self.settings,
            self.embedder,
            lambda: query_docs(self.knowledge),
            self.knowledge.fingerprint,
            name=f"{self.settings.collection}_queries",
            side="query",
            client=self.index.store,
            cache=cache,
        )
        self.queries.ensure_current(progress=progress)
        self.cache = cache
        self.bridge = bridge  # optional: catalogue phrasings -> passages (see catalogue.py)
        self.calibration = self._load_calibration()
        # Built on first use (grading needs neither): bm25 per language, the scope references.
        self._lazy_lock = threading.Lock()
        self._lexical: LexicalIndex | None = None
        self._scope: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def lexical(self) -> LexicalIndex:
        if self._lexical is None:
            with self._lazy_lock:
                if self._lexical is None:
                    self._lexical = LexicalIndex(self.knowledge)
        return self._lexical

    @property
    def _scope_in(self) -> np.ndarray:
        return self._scope_refs()[0]

    @property
    def _scope_out(self) -> np.ndarray:
        return self._scope_refs()[1]

    def _scope_refs(self) -> tuple[np.ndarray, np.ndarray]:
        if self._scope is None:
            with self._lazy_lock:
                if self._scope is None:
                    self._scope = self._scope_references()
        return self._scope

    def warm_steps(self) -> tuple:
        """What search builds on first use, and opening Chroma, as separate steps."""
        return (lambda: self.lexical, self._scope_refs, self.index.open, self.queries.open)

    def warm(self) -> None:
        """Build what search builds on first use, and open Chroma (server start-up)."""
        for step in self.warm_steps():
            step()

    # -- calibration ----------------------------------------------------------
    def _load_calibration(self) -> dict[str, Calibration]:
        """One calibration per dense signal (passages; doc2query questions), fitted on
        anchor questions for the configured model and stored in the index manifest."""
        extra = self.index.manifest.get("extra") or {}
        cal = extra.get("calibration")
        if isinstance(cal, dict) and set(cal) == {"passages", "queries"}:
            return {k: Calibration(**v) for k, v in cal.items()}
        anchors = load_yaml((self.settings.knowledge_dir / "calibration.yaml").read_text("utf-8"))
        # the anchors are scope texts too, so their vectors are in the (shipped) cache
        vin = self.embedder.embed_cached(anchors["in_domain"], True, self.cache)
        vout = self.embedder.embed_cached(anchors["out_of_domain"], True, self.cache)
        result = {}
        for name, index in (("passages", self.index), ("queries", self.queries)):
            _, _, matrix = index.all_vectors()
            if len(matrix) == 0:
                matrix = np.zeros((1, self.embedder.dim), dtype=np.float32)
            result[name] = Calibration.fit((vin @ matrix.T).max(axis=1), (vout @ matrix.T).max(axis=1))
        self.index.set_extra({**extra, "calibration": {k: v.__dict__ for k, v in result.items()}})
        log.info("Calibrated relevance: %s", result)
        return result

    def scope_texts(self) -> tuple[list[str], list[str]]:
        """Reference questions for the nearest-neighbour scope check: what users ask that
        the articles answer (plus the doc2query vectors), versus near-miss and unrelated
        questions (``knowledge/scope_anchors.yaml``)."""
        root = self.settings.knowledge_dir
        cal = load_yaml((root / "calibration.yaml").read_text("utf-8"))
        anchors_file = root / "scope_anchors.yaml"
        anchors = load_yaml(anchors_file.read_text("utf-8")) if anchors_file.exists() else {}
        questions = load_yaml((root / "questions.yaml").read_text("utf-8")).get("questions", [])
        inside = cal["in_domain"] + [t for q in questions for t in q["text"].values()]
        outside = cal["out_of_domain"] + list(anchors.get("out_of_domain", []))
        return inside, outside

    def _scope_references(self) -> tuple[np.ndarray, np.ndarray]:
        inside, outside = self.scope_texts()
        _, _, doc2query = self.queries.all_vectors()
        vin, vout = self._scope_reference_vectors(inside, outside)
        if len(doc2query):
            vin = np.vstack([vin, doc2query])
        return vin, vout

    def _scope_reference_vectors(self, inside: list[str], outside: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """The reference questions' vectors, kept in one small uncompressed file named by
        the model and the texts: otherwise a fresh search process decompresses the whole
        shipped vector cache (13 MB, ~60 ms) for these few hundred vectors."""
        key = json.dumps([self.embedder.manifest_id, inside, outside], ensure_ascii=False)
        folder = Path(self.settings.data_dir) / MATRIX_DIR
        path = folder / f"{SCOPE_REFS}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz"
        try:
            with np.load(path) as z:
                vin, vout = z["inside"], z["outside"]
            if vin.shape == (len(inside), self.embedder.dim) and vout.shape == (len(outside), self.embedder.dim):
                return vin, vout
        except FileNotFoundError:
            pass
        except Exception as exc:  # noqa: BLE001 - truncated or damaged: embed again
            log.warning("ignoring unreadable %s (%s)", path, exc)
        vin = self.embedder.embed_cached(inside, True, self.cache)
        vout = self.embedder.embed_cached(outside, True, self.cache)
        if self.cache is not None:
            self.cache.save()
        try:
            folder.mkdir(parents=True, exist_ok=True)
            save_npz(path, inside=vin, outside=vout)
            for old in folder.glob(f"{SCOPE_REFS}-*.npz"):
                if old != path:
                    old.unlink(missing_ok=True)
        except OSError as exc:  # a read-only data dir: embedded (from the cache) each start
            log.warning("could not keep the scope reference vectors in %s (%s)", path, exc)
        return vin, vout

    def vector(self, text: str) -> np.ndarray:
        """Query-side vector of ``text``; recent ones are reused (ask embeds the same
        question for search, steps and the follow-up check)."""
        return self._vector(text)

    @lru_cache(maxsize=512)  # noqa: B019 - one Retriever per process, bounded cache
    def _vector(self, text: str) -> np.ndarray:
        v = self.embedder.query([text])[0]
        v.setflags(write=False)
        return v

    def clear_cache(self) -> None:
        """Forget remembered question vectors (benchmarks time embedding afresh)."""
        self._vector.cache_clear()

    def nearest_is_in_domain(self, vector: np.ndarray) -> bool:
        return float((self._scope_in @ vector).max()) > float((self._scope_out @ vector).max())

    def scope_margin(self, vector: np.ndarray) -> float:
        """How much closer the nearest in-domain reference question is than the nearest
        out-of-domain one (> 0: in domain); ask reads a clear margin as in scope even when
        no single passage is close (a situation described rather than a passage asked for)."""
        return float((self._scope_in @ vector).max()) - float((self._scope_out @ vector).max())

    # -- search ---------------------------------------------------------------
    @staticmethod
    def _best_per_passage(hits) -> dict[str, float]:
        best: dict[str, float] = {}
        for vector_id, score in hits:
            pid = passage_of(vector_id)
            if score > best.get(pid, -1.0):
                best[pid] = score
        return best

    def dense(self, vector: np.ndarray) -> dict[str, float]:
        """Best cosine per passage over all its language versions."""
        return self._best_per_passage(self.index.query(vector, k=self.fusion.dense_k))

    def dense_queries(self, vector: np.ndarray) -> dict[str, float]:
        """Best cosine per passage over the questions it answers (doc2query)."""
        if not self.queries.docs:
            return {}
        return self._best_per_passage(self.queries.query(vector, k=self.fusion.dense_k))

    def search(self, question: str, k: int = 5, language: str | None = None,
               demote_overviews: bool = True) -> SearchResult:
        """Hybrid search. Overview passages ("Here are some tips…") hold no advice, so they
        are listed after advice passages unless the caller (ask) handles them itself."""
        question, _ = clean_text(question, "question", self.settings.max_question_chars)
        lang = language or detect(question)
        vector = self.vector(question)
        dense = self.dense(vector)
        dq = self.dense_queries(vector)
        lexical = self.lexical.search(question, lang)
        rankings = [
            (_ranked(dense), self.fusion.dense_weight),
            (_ranked(dq), self.fusion.queries_weight),
            ([pid for pid, _ in lexical], self.fusion.lexical_weight),
        ]
        if self.bridge is not None:
            rankings.append((self.bridge.passages_for(vector), self.fusion.bridge_weight))
        fused = _rrf(rankings, self.fusion.rrf_k)
        if demote_overviews:  # an introduction ranks after the advice it introduces
            for pid in fused:
                if self.knowledge.is_overview(pid):
                    fused[pid] *= self.fusion.overview_discount
        order = _ranked(fused)
        cal_p, cal_q = self.calibration["passages"], self.calibration["queries"]

        def relevance(pid: str) -> float:
            return max(cal_p.relevance(dense.get(pid, -1.0)), cal_q.relevance(dq.get(pid, -1.0)))

        top_rel = max((relevance(pid) for pid in order), default=0.0)
        # Two independent checks must agree: a calibrated relevance to some passage, and the
        # nearest reference question being one the articles answer (not a near miss).
        in_scope = top_rel >= 0.5 and self.nearest_is_in_domain(vector)
        best_fused = fused[order[0]] if order else 1.0
        # The score: the calibrated relevance of the best match (how sure we are that the
        # articles answer this at all), shared out by each passage's fused rank evidence,
        # so the order and the score tell one story.
        scored = [(top_rel * fused[pid] / best_fused, pid) for pid in order[:k]]
        hits = []
        for score, pid in scored:
            p = self.knowledge.get(pid)
            hits.append(
                SearchHit(
                    id=p.id,
                    article=p.article,
                    language=p.language,
                    heading=p.heading,
                    text=p.text,
                    text_en=p.text_en,
                    score=round(float(score), 4),
                )
            )
        return SearchResult(question=question, language=lang, in_scope=in_scope, passages=hits)

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

import logging
import math
from dataclasses import dataclass

import numpy as np

from .config import Settings, get_settings
from .embeddings import Embedder, load_embedder
from .index import VectorIndex, vector_docs
from .inputs import clean_text
from .knowledge import Knowledge, load_knowledge
from .language import detect
from .lexical import LexicalIndex
from .models import SearchHit, SearchResult

log = logging.getLogger(__name__)

RRF_K = 10  # small corpus: let the top ranks dominate
DENSE_K = 80
LEX_WEIGHT = 0.8
BRIDGE_WEIGHT = 0.8


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


def _rrf(rankings: list[tuple[list[str], float]]) -> dict[str, float]:
    fused: dict[str, float] = {}
    for ranking, weight in rankings:
        for rank, pid in enumerate(ranking):
            fused[pid] = fused.get(pid, 0.0) + weight / (RRF_K + rank + 1)
    return fused


class Retriever:
    """Loads models and indexes once; ``search`` is then cheap and thread-safe for reads."""

    def __init__(
        self,
        settings: Settings | None = None,
        embedder: Embedder | None = None,
        knowledge: Knowledge | None = None,
        progress: bool = False,
        bridge=None,
    ):
        self.settings = settings or get_settings()
        self.knowledge = knowledge or load_knowledge(self.settings.knowledge_dir)
        self.embedder = embedder or load_embedder(self.settings)
        self.index = VectorIndex(
            self.settings, self.embedder, vector_docs(self.knowledge), self.knowledge.fingerprint
        )
        self.index.ensure_current(progress=progress)
        self.lexical = LexicalIndex(self.knowledge)
        self.bridge = bridge  # optional: catalogue phrasings -> passages (see catalogue.py)
        self.calibration = self._load_calibration()

    # -- calibration ----------------------------------------------------------
    def _load_calibration(self) -> Calibration:
        extra = self.index.manifest.get("extra") or {}
        cal = extra.get("calibration")
        if cal:
            return Calibration(**cal)
        import yaml

        anchors = yaml.safe_load((self.settings.knowledge_dir / "calibration.yaml").read_text("utf-8"))
        _, _, matrix = self.index.all_vectors()
        def top(qs):
            return (self.embedder.query(qs) @ matrix.T).max(axis=1)
        cal = Calibration.fit(top(anchors["in_domain"]), top(anchors["out_of_domain"]))
        self.index.set_extra({**extra, "calibration": cal.__dict__})
        log.info("Calibrated relevance: threshold %.4f, scale %.4f", cal.threshold, cal.scale)
        return cal

    # -- search ---------------------------------------------------------------
    def dense(self, vector: np.ndarray) -> dict[str, float]:
        """Best cosine per passage over all its language versions."""
        best: dict[str, float] = {}
        for meta, score in self.index.query(vector, k=DENSE_K):
            pid = meta["passage"]
            if score > best.get(pid, -1.0):
                best[pid] = score
        return best

    def search(self, question: str, k: int = 5, language: str | None = None) -> SearchResult:
        question, _ = clean_text(question, "question", self.settings.max_question_chars)
        lang = language or detect(question)
        vector = self.embedder.query([question])[0]
        dense = self.dense(vector)
        dense_rank = sorted(dense, key=dense.get, reverse=True)
        lexical = self.lexical.search(question, lang)
        rankings = [(dense_rank, 1.0), ([pid for pid, _ in lexical], LEX_WEIGHT)]
        if self.bridge is not None:
            rankings.append((self.bridge.passages_for(vector), BRIDGE_WEIGHT))
        fused = _rrf(rankings)
        order = sorted(fused, key=fused.get, reverse=True)
        top_dense = max(dense.values()) if dense else 0.0
        in_scope = self.calibration.relevance(top_dense) >= 0.5
        hits = []
        # A passage's score: its calibrated dense relevance, lifted by agreement of the
        # other signals (rank fusion share), so the ordering and the score tell one story.
        best_fused = fused[order[0]] if order else 1.0
        for pid in order[:k]:
            p = self.knowledge.get(pid)
            rel = self.calibration.relevance(dense.get(pid, min(dense.values(), default=0.0)))
            score = 0.5 * rel + 0.5 * (fused[pid] / best_fused) * self.calibration.relevance(top_dense)
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
        return SearchResult(question=question, language=lang, in_scope=in_scope, passages=hits if in_scope else hits)

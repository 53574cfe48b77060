"""Lexical retrieval: one bm25s index per knowledge language, over originals and our
translations, each with its own Snowball stemmer and stop words.

Lexical matching is what rescues the exact-term questions ("hold", "supervisor",
"refund") that a small multilingual embedder scores barely above noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .knowledge import Knowledge

STEMMERS = {
    "en": "english",
    "sv": "swedish",
    "hu": "hungarian",
    "it": "italian",
    "nl": "dutch",
    "de": "german",
    "es": "spanish",
    "fr": "french",
}
# bm25s ships stop-word lists for all of these but Hungarian.
_BM25S_STOPWORDS = {"en": "en", "sv": "sv", "it": "it", "nl": "nl", "de": "de", "es": "es", "fr": "fr"}
_HU_STOPWORDS = (
    "a az egy és is hogy nem de ha meg mi mit ez azt ezt van vagy csak már még el ki be le "
    "fel mint amit ami aki akkor így úgy nagyon lehet kell minden sőt pedig vagyis vele velük "
    "őket ők ő én te ön önt neki nekik nekem sem se volt lesz legyen mert amikor hogyan miért"
).split()


def stopwords_for(lang: str):
    return _HU_STOPWORDS if lang == "hu" else _BM25S_STOPWORDS.get(lang, [])


def tokenize(texts: list[str], lang: str) -> list[list[str]]:
    import Stemmer

    from . import thirdparty

    bm25s = thirdparty.bm25s()

    stemmer = Stemmer.Stemmer(STEMMERS.get(lang, "english"))
    return bm25s.tokenize(
        texts,
        stopwords=stopwords_for(lang),
        stemmer=stemmer,
        return_ids=False,
        show_progress=False,
    )


@dataclass
class _LangIndex:
    lang: str
    retriever: object
    ids: list[str]


class LexicalIndex:
    """In-memory BM25 over every passage in each knowledge language (built in ~100 ms)."""

    def __init__(self, knowledge: Knowledge, languages: tuple[str, ...] = ("en", "sv", "hu", "it", "nl")):
        import logging

        from . import thirdparty

        bm25s = thirdparty.bm25s()

        logging.getLogger("bm25s").setLevel(logging.WARNING)  # it sets DEBUG on import
        passages = knowledge.indexable()
        self._indexes: dict[str, _LangIndex] = {}
        for lang in languages:
            ids = [p.id for p in passages]
            texts = [f"{p.heading_in(lang)} {p.text_in(lang)}" for p in passages]
            retriever = bm25s.BM25()
            retriever.index(tokenize(texts, lang), show_progress=False)
            self._indexes[lang] = _LangIndex(lang, retriever, ids)

    def search(self, query: str, lang: str, k: int = 20) -> list[tuple[str, float]]:
        """Best passages for ``query`` in the query's language index and in English."""
        best: dict[str, float] = {}
        for index_lang in dict.fromkeys([lang, "en"]):
            index = self._indexes.get(index_lang)
            if index is None:
                continue
            tokens = tokenize([query], index_lang)[0]
            if not tokens:
                continue
            scores = np.asarray(index.retriever.get_scores(tokens))
            for i in np.flatnonzero(scores > 0):
                pid = index.ids[i]
                best[pid] = max(best.get(pid, 0.0), float(scores[i]))
        ranked = sorted(best.items(), key=lambda kv: kv[1], reverse=True)
        return ranked[:k]

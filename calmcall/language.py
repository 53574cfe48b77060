"""Offline language detection (lingua ships its models inside the wheel).

We detect among the five knowledge languages plus the ones users commonly write in;
the five core languages get a small prior because a short Italian question is often
scored close to Spanish, and an answer in the user's core language is what matters.
"""

from __future__ import annotations

from functools import lru_cache

CORE = ("en", "sv", "hu", "it", "nl")
EXTRA = ("de", "es", "fr")
SUPPORTED = CORE + EXTRA
_CORE_PRIOR = 1.5
_DEFAULT = "en"


@lru_cache(maxsize=1)
def _detector():
    from lingua import IsoCode639_1, LanguageDetectorBuilder

    codes = [getattr(IsoCode639_1, c.upper()) for c in SUPPORTED]
    return LanguageDetectorBuilder.from_iso_codes_639_1(*codes).with_preloaded_language_models().build()


def warm() -> None:
    """Load the detector models now (server start-up) rather than on the first request."""
    _detector()


def detect(text: str, default: str = _DEFAULT) -> str:
    """ISO 639-1 code of ``text`` among SUPPORTED; ``default`` when there is no signal."""
    sample = " ".join(text.split())[:1000]
    if sum(ch.isalpha() for ch in sample) < 3:
        return default
    values = _detector().compute_language_confidence_values(sample)
    scored = {}
    for v in values:
        code = v.language.iso_code_639_1.name.lower()
        scored[code] = v.value * (_CORE_PRIOR if code in CORE else 1.0)
    if not scored:
        return default
    best = max(scored, key=scored.get)
    total = sum(scored.values()) or 1.0
    if scored[best] / total < 0.3 and len(sample.split()) < 3:
        return default
    return best

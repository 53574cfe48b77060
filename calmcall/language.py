"""The languages (one module: knowledge/UI languages, the extra ones answers come in) and
offline language detection (lingua ships its models inside the wheel).

We detect among the five knowledge languages plus the ones users commonly write in;
the five core languages get a small prior because a short Italian question is often
scored close to Spanish, and an answer in the user's core language is what matters.
"""

from __future__ import annotations

import threading

CORE = ("en", "sv", "hu", "it", "nl")
EXTRA = ("de", "es", "fr")
SUPPORTED = CORE + EXTRA
_CORE_PRIOR = 1.5
_DEFAULT = "en"


# lingua reads texts of 120 letters or more with its trigram models only (shorter ones
# with its 1- to 5-gram models). Loading every model of the eight languages takes ~1.5 s
# on 2 cores; loading just the trigram ones ~0.1 s. So a process that has not loaded them
# all yet reads a long text (an answer) with a detector that loads models on demand: the
# same languages, the same models, the same confidence values.
_LONG_TEXT_LETTERS = 128  # margin over lingua's 120


def _builder():
    from lingua import IsoCode639_1, LanguageDetectorBuilder

    codes = [getattr(IsoCode639_1, c.upper()) for c in SUPPORTED]
    return LanguageDetectorBuilder.from_iso_codes_639_1(*codes)


_detectors: dict[str, object] = {}
_build_lock = threading.Lock()  # one build at a time: the warm-up and a request may race


def _get(kind: str):
    d = _detectors.get(kind)
    if d is None:
        with _build_lock:
            d = _detectors.get(kind)
            if d is None:
                b = _builder()
                d = _detectors[kind] = (b.with_preloaded_language_models() if kind == "full" else b).build()
    return d


def _detector():
    """Every model loaded at once (in parallel): what short texts need."""
    return _get("full")


def _on_demand_detector():
    return _get("on_demand")


def full_detector_loaded() -> bool:
    return "full" in _detectors


def _detector_for(sample: str):
    if full_detector_loaded() or sum(ch.isalpha() for ch in sample) < _LONG_TEXT_LETTERS:
        return _detector()
    return _on_demand_detector()


def warm() -> None:
    """Load the detector models now (server start-up) rather than on the first request."""
    _detector()


def detect(text: str, default: str = _DEFAULT) -> str:
    """ISO 639-1 code of ``text`` among SUPPORTED; ``default`` when there is no signal."""
    sample = " ".join(text.split())[:1000]
    if sum(ch.isalpha() for ch in sample) < 3:
        return default
    values = _detector_for(sample).compute_language_confidence_values(sample)
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

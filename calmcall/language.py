"""The languages (one module: knowledge/UI languages, the extra ones answers come in) and
offline language detection (lingua ships its models inside the wheel).

We detect among the five knowledge languages plus the ones users commonly write in;
the five core languages get a small prior (knowledge/language.yaml).
"""

from __future__ import annotations

import threading
from functools import lru_cache
from pathlib import Path

CORE = ("en", "sv", "hu", "it", "nl")
EXTRA = ("de", "es", "fr")
SUPPORTED = CORE + EXTRA
_DEFAULT = "en"
_SETTINGS_FILE = Path(__file__).resolve().parent.parent / "knowledge" / "language.yaml"

# lingua reads texts of 120 letters or more with its trigram models only (shorter ones
# with its 1- to 5-gram models); its low-accuracy mode reads every text with the trigram
# ones. So a long text gets the same confidence values from either detector, and the
# low-accuracy one loads in ~0.1 s where the full one takes ~2.4 s on 2 cores.
_LONG_TEXT_LETTERS = 128  # margin over lingua's 120


@lru_cache(maxsize=1)
def _settings() -> dict:
    from .knowledge import load_yaml  # one YAML loader (libyaml's safe one, parsed cache)

    data = load_yaml(_SETTINGS_FILE.read_text("utf-8"))
    return {"core_prior": float(data["core_prior"]), "short_text_min_share": float(data["short_text_min_share"])}


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
                b = b.with_preloaded_language_models() if kind == "full" else b.with_low_accuracy_mode()
                d = _detectors[kind] = b.build()
    return d


def full_detector_loaded() -> bool:
    return "full" in _detectors


def warm() -> None:
    """Load every model now (server start-up) rather than on the first short request."""
    _get("full")


def _scores(detector, sample: str) -> dict[str, float]:
    prior = _settings()["core_prior"]
    scored = {}
    for v in detector.compute_language_confidence_values(sample):
        code = v.language.iso_code_639_1.name.lower()
        scored[code] = v.value * (prior if code in CORE else 1.0)
    return scored


def _share(scored: dict[str, float]) -> float:
    return max(scored.values()) / (sum(scored.values()) or 1.0) if scored else 0.0


def detect(text: str, default: str = _DEFAULT) -> str:
    """ISO 639-1 code of ``text`` among SUPPORTED; ``default`` when there is no signal.

    A process that has not loaded lingua's full models (a CLI command) reads the text with
    the trigram models first and loads the rest only for a short text the trigrams leave
    in doubt (see knowledge/language.yaml)."""
    sample = " ".join(text.split())[:1000]
    letters = sum(ch.isalpha() for ch in sample)
    if letters < 3:
        return default
    if full_detector_loaded():
        scored = _scores(_get("full"), sample)
    else:
        scored = _scores(_get("trigram"), sample)
        if letters < _LONG_TEXT_LETTERS and _share(scored) < _settings()["short_text_min_share"]:
            scored = _scores(_get("full"), sample)
    if not scored:
        return default
    best = max(scored, key=scored.get)
    if _share(scored) < 0.3 and len(sample.split()) < 3:
        return default
    return best

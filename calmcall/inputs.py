"""Validation of user text: one place that decides what is too empty, too big or not text."""

from __future__ import annotations

import logging
import re
import unicodedata

log = logging.getLogger(__name__)

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


class InputError(ValueError):
    """User input that cannot be used; the message is meant for the user."""


def decode(data: bytes, what: str = "input") -> str:
    """Bytes from stdin/files/HTTP must be UTF-8 text; say so clearly when they are not."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{what} is not valid UTF-8 text (undecodable byte at position {exc.start}); "
            "save it as UTF-8 and try again"
        ) from None


def clean_text(text: str, what: str, max_chars: int) -> tuple[str, list[str]]:
    """Normalise ``text`` and bound its size. Returns (text, warnings).

    Empty or whitespace-only text is an error; oversize text is truncated with a warning
    (the caller decides whether that is acceptable), so nothing the user typed is lost
    silently.
    """
    if not isinstance(text, str):
        raise InputError(f"{what} must be text")
    warnings: list[str] = []
    text = unicodedata.normalize("NFC", _CONTROL.sub(" ", text))
    stripped = text.strip()
    if not stripped:
        raise InputError(f"{what} is empty; please write something")
    if len(stripped) > max_chars:
        warnings.append(
            f"{what} is {len(stripped):,} characters; only the first {max_chars:,} were used"
        )
        log.warning(warnings[-1])
        cut = stripped[:max_chars]
        # prefer to cut at a sentence or word boundary
        boundary = max(cut.rfind(". "), cut.rfind("\n"))
        if boundary > max_chars * 0.8:
            cut = cut[: boundary + 1]
        stripped = cut.rstrip()
    if not any(ch.isalpha() for ch in stripped):
        raise InputError(f"{what} contains no words")
    return stripped, warnings

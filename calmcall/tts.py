"""The caller speaks: text to speech for role-play caller lines.

Why espeak-ng: it is a Debian package (no weights, nothing downloaded), it has voices for
all eight languages (the five knowledge ones, German, Spanish, French), and speed, pitch
and loudness are plain options — enough to make an angry caller sound angrier
(``knowledge/voices.yaml`` holds a preset per anger band). It is optional: without it :func:`available` is False, :meth:`Synthesizer.speak`
raises :class:`TTSUnavailable` with a message the app shows, and the app stays text-only.

Swappable like the other models: :class:`Synthesizer` + ``register`` + :func:`load_tts`.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from abc import ABC, abstractmethod
from functools import lru_cache
from pathlib import Path
from typing import ClassVar

import yaml

from .config import REPO_ROOT

VOICES_FILE = "voices.yaml"
MISSING = ("espeak-ng is not installed, so the caller's lines are shown as text only "
           "(Debian/Ubuntu: apt-get install espeak-ng)")


class TTSUnavailable(RuntimeError):
    """Speech synthesis cannot run here; the message says what to install."""


@lru_cache(maxsize=4)
def voices_config(knowledge_dir: str | None = None) -> dict:
    root = Path(knowledge_dir) if knowledge_dir else REPO_ROOT / "knowledge"
    return yaml.safe_load((root / VOICES_FILE).read_text(encoding="utf-8"))


def band_for(anger: int | float | str, config: dict) -> dict:
    """The preset for an anger level (0-10) or a band name."""
    bands = config["bands"]
    if isinstance(anger, str):
        for band in bands:
            if band["name"] == anger:
                return band
        raise ValueError(f"unknown anger band {anger!r}; known: {', '.join(b['name'] for b in bands)}")
    level = max(0.0, min(10.0, float(anger)))
    for band in bands:
        if level <= band["max_anger"]:
            return band
    return bands[-1]


def _bounded(text: str, limit: int) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[:limit]
    end = max(cut.rfind(". "), cut.rfind("! "), cut.rfind("? "))
    return cut[: end + 1] if end > limit // 2 else cut


class Synthesizer(ABC):
    name: ClassVar[str] = ""

    def __init__(self, knowledge_dir: str | Path | None = None):
        self.config = voices_config(str(knowledge_dir) if knowledge_dir else None)

    @abstractmethod
    def available(self) -> bool:
        """Whether this synthesizer can run on this machine."""

    @abstractmethod
    def speak(self, text: str, lang: str, anger: int | float | str | None = None) -> bytes:
        """WAV bytes of ``text`` spoken in ``lang``; ``anger`` (0-10 or a band name) picks
        the preset, None the neutral voice."""


REGISTRY: dict[str, type[Synthesizer]] = {}


def register(cls: type[Synthesizer]) -> type[Synthesizer]:
    REGISTRY[cls.name] = cls
    return cls


@register
class EspeakNG(Synthesizer):
    name = "espeak-ng"

    def __init__(self, knowledge_dir: str | Path | None = None, exe: str | None = None):
        super().__init__(knowledge_dir)
        self.exe = exe or shutil.which("espeak-ng")

    def available(self) -> bool:
        return bool(self.exe)

    def command(self, lang: str, anger: int | float | str | None = None) -> list[str]:
        voice = self.config["voices"].get(lang)
        if voice is None:
            raise ValueError(f"no caller voice for {lang!r}; voices: {', '.join(self.config['voices'])}")
        preset = self.config["neutral"] if anger is None else band_for(anger, self.config)
        variant = "" if anger is None else self.config.get("variant", "")
        # text arrives on stdin as UTF-8 (-b 1), never as an argument, and SSML stays off
        return [self.exe or "espeak-ng", "-v", voice + variant, "-s", str(preset["speed"]), "-p",
                str(preset["pitch"]), "-a", str(preset["amplitude"]), "-g", str(preset["gap"]), "-b", "1",
                "--stdout"]

    def speak(self, text: str, lang: str, anger: int | float | str | None = None) -> bytes:
        if not self.available():
            raise TTSUnavailable(MISSING)
        text = _bounded(re.sub(r"[\x00-\x1f\x7f]", " ", text), int(self.config.get("max_chars", 1000)))
        if not text.strip():
            raise ValueError("nothing to say: the caller line is empty")
        try:
            proc = subprocess.run(self.command(lang, anger), input=text.encode("utf-8"),
                                  capture_output=True, timeout=60, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise TTSUnavailable(f"espeak-ng failed to run ({exc}); the caller's lines stay text only") from None
        if proc.returncode != 0 or not proc.stdout.startswith(b"RIFF"):
            detail = proc.stderr.decode("utf-8", "replace").strip()[:200]
            raise TTSUnavailable(f"espeak-ng failed ({detail or proc.returncode}); the caller's lines stay text only")
        return fix_wav_sizes(proc.stdout)


def fix_wav_sizes(wav: bytes) -> bytes:
    """espeak-ng streams its WAV to stdout before it knows the length, so the RIFF and
    data sizes in the header are placeholders; players and decoders then misjudge the
    duration. Write the real sizes."""
    pos = wav.find(b"data", 12, 200)
    if not wav.startswith(b"RIFF") or pos < 0:
        return wav
    out = bytearray(wav)
    out[4:8] = (len(wav) - 8).to_bytes(4, "little")
    out[pos + 4:pos + 8] = (len(wav) - pos - 8).to_bytes(4, "little")
    return bytes(out)


def load_tts(name: str = "espeak-ng", knowledge_dir: str | Path | None = None) -> Synthesizer:
    if name not in REGISTRY:
        raise TTSUnavailable(f"unknown speech synthesizer {name!r}; known: {', '.join(REGISTRY)}")
    return REGISTRY[name](knowledge_dir)


def available() -> bool:
    """Whether the default synthesizer (espeak-ng) is installed."""
    return load_tts().available()

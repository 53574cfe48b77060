"""Synthetic test audio, made at test time (no audio is committed): espeak-ng speaks,
sox mixes, pads, converts and makes the long and silent files. Shared by the voice tests
and bench/bench_speech.py.

On CI both tools are installed by scripts/test.sh; on a developer machine without them the
voice tests skip with a message saying what to install (on CI they fail instead)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import unicodedata
import wave
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
SENTENCES = REPO / "eval" / "speech_sentences.yaml"


def require_tools() -> None:
    missing = [t for t in ("espeak-ng", "sox") if shutil.which(t) is None]
    if missing:
        message = f"{' and '.join(missing)} not installed (Debian: apt-get install espeak-ng sox)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def sentences() -> dict[str, list[str]]:
    return yaml.safe_load(SENTENCES.read_text(encoding="utf-8"))


def speak(text: str, lang: str, out: Path, anger=None, amplitude: int | None = None) -> Path:
    """``text`` spoken by espeak-ng into the WAV ``out`` (the caller's synthesizer, neutral
    voice unless ``anger`` is given)."""
    from calmcall.tts import load_tts

    tts = load_tts()
    if amplitude is None:
        out.write_bytes(tts.speak(text, lang, anger))
    else:
        cmd = tts.command(lang, anger)
        cmd[cmd.index("-a") + 1] = str(amplitude)
        from calmcall.tts import fix_wav_sizes

        out.write_bytes(fix_wav_sizes(subprocess.run(cmd, input=text.encode(), capture_output=True,
                                                     check=True).stdout))
    return out


def sox(*args: str | Path) -> None:
    subprocess.run(["sox", *map(str, args)], check=True, capture_output=True)


def silence(out: Path, seconds: float, rate: int = 22050) -> Path:
    sox("-n", "-r", rate, "-c", 1, "-b", 16, out, "trim", 0, seconds)
    return out


def concat(out: Path, *parts: Path) -> Path:
    sox(*parts, out)
    return out


# An English answer to the angry-call question as a learner speaks it into the browser
# (tests/test_voice_browser.py); the recogniser once looped on the silence after it.
RECORDED_ANSWER = ("First I would let the caller finish without interrupting. I would stay calm and keep an even "
                   "tone. I understand how frustrating this must be, and I apologise for the trouble. "
                   "Then I would offer a refund or a replacement.")


def fake_microphone(text: str, lang: str, out: Path, lead_s: float = 0.5, tail_s: float = 4.0,
                    rate: int = 48000) -> tuple[Path, float]:
    """A WAV for Chromium's ``--use-file-for-fake-audio-capture``: ``text`` spoken, with
    ``lead_s`` of silence before and ``tail_s`` after (stopping a recording inside the tail
    keeps a looping fake microphone from starting the answer again), 16-bit mono at
    ``rate``. Returns the file and the seconds until the speech ends."""
    voice = speak(text, lang, out.with_name(out.stem + "-voice.wav"))
    sox(voice, "-r", rate, "-c", 1, "-b", 16, out, "pad", lead_s, tail_s)
    with wave.open(str(voice)) as w:
        spoken = w.getnframes() / w.getframerate()
    return out, lead_s + spoken


def long_tone(out: Path, seconds: float, rate: int = 8000) -> Path:
    """A long, quiet tone (a 20-minute file in ~1 s of sox time)."""
    sox("-n", "-r", rate, "-c", 1, "-b", 16, out, "synth", seconds, "sine", 300, "vol", 0.1)
    return out


_PUNCT = re.compile(r"[^\w\s']|(?<!\w)'|'(?!\w)", re.UNICODE)


def normalise(text: str) -> list[str]:
    text = unicodedata.normalize("NFC", text).lower().replace("’", "'")
    return _PUNCT.sub(" ", text).split()


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(edit distance in words, reference length) after normalising both."""
    ref, hyp = normalise(reference), normalise(hypothesis)
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1], len(ref)


def wer(pairs) -> float:
    errors = total = 0
    for ref, hyp in pairs:
        e, n = word_errors(ref, hyp)
        errors, total = errors + e, total + n
    return errors / max(total, 1)

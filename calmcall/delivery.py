"""Delivery feedback: *how* a spoken answer was said, from the recogniser's word timestamps
and the loudness of each word.

Why it is separate from grading: the grade is about what the learner said (the steps the
articles teach); delivery is pace, long pauses, filler words and a raised voice. Mixing
them would make a fluent but empty answer look better, and a careful non-native speaker
look worse, so delivery is reported beside the score and never changes it.

Every number lives in ``knowledge/delivery.yaml`` (bands per language, thresholds, filler
lists, messages in the learner's language) and every remark cites the article passage it
rests on (article 001: breathe, speak slowly, don't raise your voice, mind your tone).

Two steps: :func:`measure` turns a :class:`~calmcall.speech.Transcription` into the
``transcribe --json`` contract (:class:`Transcript`); :func:`assess` turns that into the
remarks (:class:`Delivery`).
"""

from __future__ import annotations

import re
import statistics
from functools import lru_cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, Field

from .models import Citation

DELIVERY_FILE = "delivery.yaml"
_EDGE_PUNCT = re.compile(r"^[\W_]+|[\W_]+$", re.UNICODE)


# -- the JSON contracts ----------------------------------------------------------------------
class Filler(BaseModel):
    word: str
    start: float
    end: float


class Pause(BaseModel):
    start: float
    end: float
    duration_s: float


class TranscriptSegment(BaseModel):
    start: float
    end: float
    text: str


class TranscriptWord(BaseModel):
    start: float
    end: float
    word: str
    probability: float
    level_db: float


class Transcript(BaseModel):
    """``python -m calmcall transcribe --json`` and ``POST /v1/transcribe``."""

    text: str
    language: str
    duration_s: float
    words_per_minute: float = Field(description="Words per minute of talk time (first word to last).")
    fillers: list[Filler]
    long_pauses: list[Pause]
    segments: list[TranscriptSegment]
    talk_time_s: float = 0.0
    fillers_per_minute: float = 0.0
    words: list[TranscriptWord] = Field(default_factory=list)
    model: str = ""


RemarkKind = Literal["pace_fast", "pace_slow", "pace_ok", "pace_short", "pauses_many", "fillers_many",
                     "fillers_ok", "raised_voice", "volume_even"]


class Remark(BaseModel):
    kind: RemarkKind
    status: Literal["good", "improve", "info"]
    text: str
    passages: list[Citation] = Field(default_factory=list)


class TimelinePoint(BaseModel):
    start: float
    end: float
    words_per_minute: float
    fillers: int
    pause_s: float
    level_db: float | None = None


class Delivery(BaseModel):
    """Delivery feedback, in the learner's language, beside the content score."""

    language: str
    words_per_minute: float
    band: list[int]
    pace: Literal["slow", "calm", "fast", "unknown"]
    talk_time_s: float
    long_pauses: int
    fillers: int
    fillers_per_minute: float
    raised_voice: bool
    remarks: list[Remark]
    timeline: list[TimelinePoint]
    note: str


# -- configuration ---------------------------------------------------------------------------
@lru_cache(maxsize=4)
def _config(knowledge_dir: str) -> dict:
    return yaml.safe_load((Path(knowledge_dir) / DELIVERY_FILE).read_text(encoding="utf-8"))


def delivery_config(knowledge_dir) -> dict:
    return _config(str(knowledge_dir))


def _norm(word: str) -> str:
    return _EDGE_PUNCT.sub("", word).lower()


@lru_cache(maxsize=16)
def _filler_rules(knowledge_dir: str, lang: str):
    spec = (_config(knowledge_dir)["fillers"]["by_language"].get(lang)) or {}
    words = frozenset(w.lower() for w in spec.get("words", []))
    patterns = tuple(re.compile(p) for p in spec.get("patterns", []))
    set_off = tuple(sorted((tuple(s.lower().split()) for s in spec.get("set_off", [])), key=len, reverse=True))
    return words, patterns, set_off


def find_fillers(words: list, lang: str, knowledge_dir) -> list[Filler]:
    """Filler words in ``words`` (objects with ``text``/``word``, ``start``, ``end``).
    Hesitations ("um", "öh", "izé") always count; discourse words ("like", "typ", "nou")
    only when set off by a comma after them or by pauses on both sides."""
    cfg = _config(str(knowledge_dir))["fillers"]
    always, patterns, set_off = _filler_rules(str(knowledge_dir), lang)
    gap = float(cfg.get("set_off_pause_s", 0.3))
    raw = [getattr(w, "text", None) or getattr(w, "word", "") for w in words]
    norm = [_norm(t) for t in raw]
    out: list[Filler] = []
    i = 0
    while i < len(words):
        n = norm[i]
        if n and (n in always or any(p.match(n) for p in patterns)):
            out.append(Filler(word=n, start=words[i].start, end=words[i].end))
            i += 1
            continue
        matched = 0
        for phrase in set_off:
            k = len(phrase)
            if tuple(norm[i:i + k]) != phrase:
                continue
            last = i + k - 1
            comma_after = raw[last].rstrip().endswith(",")
            before = words[i].start - words[i - 1].end if i > 0 else 0.0
            after = words[last + 1].start - words[last].end if last + 1 < len(words) else 0.0
            if comma_after or (before >= gap and after >= gap):
                out.append(Filler(word=" ".join(phrase), start=words[i].start, end=words[last].end))
                matched = k
            break
        i += matched or 1
    return out


# -- measuring -------------------------------------------------------------------------------
def _per_minute(count: int, seconds: float) -> float:
    return round(count * 60.0 / seconds, 1) if seconds > 0 else 0.0


def measure(tr, knowledge_dir) -> Transcript:
    """A :class:`~calmcall.speech.Transcription` -> the ``transcribe`` JSON: words per minute
    over the talk time, long pauses between words, fillers."""
    cfg = _config(str(knowledge_dir))
    words = [w for w in tr.words if _norm(w.text)]
    talk = round(words[-1].end - words[0].start, 2) if words else 0.0
    long_s = float(cfg["pauses"]["long_s"])
    pauses = [
        Pause(start=a.end, end=b.start, duration_s=round(b.start - a.end, 2))
        for a, b in zip(words, words[1:])
        if b.start - a.end >= long_s
    ]
    fillers = find_fillers(words, tr.language, knowledge_dir)
    return Transcript(
        text=tr.text,
        language=tr.language,
        duration_s=round(tr.duration_s, 2),
        words_per_minute=_per_minute(len(words), talk),
        fillers=fillers,
        long_pauses=pauses,
        segments=[TranscriptSegment(start=s.start, end=s.end, text=s.text) for s in tr.segments],
        talk_time_s=talk,
        fillers_per_minute=_per_minute(len(fillers), talk),
        words=[TranscriptWord(start=w.start, end=w.end, word=w.text, probability=w.probability,
                              level_db=w.level_db) for w in words],
        model=tr.model,
    )


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 60}:{s % 60:02d}"


def loud_runs(levels: list[float], raised_db: float, min_run: int,
              baseline_percentile: float = 30.0) -> list[tuple[int, int, float]]:
    """Runs of at least ``min_run`` consecutive words louder than the speaker's usual level
    by ``raised_db``: (first index, last index, dB above it). The usual level is a low
    percentile of the word levels, not the median, so an answer that is half shouted still
    has its calm half as the reference."""
    if not levels:
        return []
    ordered = sorted(levels)
    median = ordered[min(len(ordered) - 1, int(len(ordered) * baseline_percentile / 100))]
    runs, start = [], None
    for i, level in enumerate([*levels, float("-inf")]):
        if level - median >= raised_db:
            start = i if start is None else start
        elif start is not None:
            if i - start >= min_run:
                runs.append((start, i - 1, round(max(levels[start:i]) - median, 1)))
            start = None
    return runs


def timeline(t: Transcript, bin_s: float) -> list[TimelinePoint]:
    points = []
    end = max(t.duration_s, t.words[-1].end if t.words else 0.0)
    n = max(1, int(-(-end // bin_s)))
    for k in range(n):
        last = k == n - 1
        a, b = k * bin_s, (end if last else (k + 1) * bin_s)
        span = max(b - a, 1e-6)
        in_bin = [w for w in t.words if a <= (w.start + w.end) / 2 and ((w.start + w.end) / 2 < b or last)]
        pause = sum(max(0.0, min(p.end, b) - max(p.start, a)) for p in t.long_pauses)
        levels = [w.level_db for w in in_bin]
        points.append(TimelinePoint(
            start=round(a, 2), end=round(b, 2),
            words_per_minute=round(len(in_bin) * 60.0 / span, 1),
            fillers=sum(1 for f in t.fillers if a <= f.start < b),
            pause_s=round(pause, 2),
            level_db=round(statistics.fmean(levels), 1) if levels else None,
        ))
    return points


def assess(t: Transcript, lang: str, knowledge, knowledge_dir) -> Delivery:
    """Remarks on pace, pauses, fillers and volume, in ``lang`` (English where we have no
    messages), each citing the passages it rests on."""
    cfg = _config(str(knowledge_dir))
    messages = cfg["messages"].get(lang) or cfg["messages"]["en"]
    msg_lang = lang if lang in cfg["messages"] else "en"

    def cite(topic: str) -> list[Citation]:
        return [knowledge.cite(pid, msg_lang) for pid in cfg["passages"][topic]]

    remarks: list[Remark] = []
    bands = cfg["pace"]["band"]
    lo, hi = bands.get(t.language) or bands["default"]
    wpm = t.words_per_minute
    if len(t.words) < cfg["pace"]["min_words"] or t.talk_time_s < cfg["pace"]["min_talk_s"]:
        pace = "unknown"
        remarks.append(Remark(kind="pace_short", status="info", passages=cite("pace"),
                              text=messages["pace_short"].format(seconds=round(t.talk_time_s))))
    else:
        pace = "fast" if wpm > hi else "slow" if wpm < lo else "calm"
        kind = {"fast": "pace_fast", "slow": "pace_slow", "calm": "pace_ok"}[pace]
        remarks.append(Remark(kind=kind, status="good" if pace == "calm" else "improve", passages=cite("pace"),
                              text=messages[kind].format(wpm=round(wpm), lo=lo, hi=hi)))

    minutes_s = max(t.talk_time_s, 1e-6)
    pauses_per_min = _per_minute(len(t.long_pauses), minutes_s)
    if t.long_pauses and pauses_per_min > cfg["pauses"]["max_per_minute"]:
        remarks.append(Remark(kind="pauses_many", status="improve", passages=cite("pauses"),
                              text=messages["pauses_many"].format(count=len(t.long_pauses), per_min=pauses_per_min,
                                                                  pause_s=cfg["pauses"]["long_s"])))

    if t.fillers and t.fillers_per_minute > cfg["fillers"]["max_per_minute"]:
        common = sorted({f.word for f in t.fillers}, key=lambda w: -sum(f.word == w for f in t.fillers))[:3]
        remarks.append(Remark(kind="fillers_many", status="improve", passages=cite("fillers"),
                              text=messages["fillers_many"].format(count=len(t.fillers), per_min=t.fillers_per_minute,
                                                                   examples=", ".join(f"“{w}”" for w in common))))
    elif pace != "unknown":
        remarks.append(Remark(kind="fillers_ok", status="good", passages=cite("fillers"),
                              text=messages["fillers_ok"].format(count=len(t.fillers))))

    vol = cfg["volume"]
    runs = loud_runs([w.level_db for w in t.words], float(vol["raised_db"]), int(vol["min_run"]),
                     float(vol.get("baseline_percentile", 30))) if len(t.words) >= vol["min_words"] else []
    if runs:
        times = ", ".join(_clock(t.words[a].start) for a, _, _ in runs[:3])
        remarks.append(Remark(kind="raised_voice", status="improve", passages=cite("volume"),
                              text=messages["raised_voice"].format(times=times, db=round(max(r[2] for r in runs)))))
    elif len(t.words) >= vol["min_words"]:
        remarks.append(Remark(kind="volume_even", status="good", passages=cite("volume"),
                              text=messages["volume_even"]))

    return Delivery(
        language=msg_lang,
        words_per_minute=wpm,
        band=[int(lo), int(hi)],
        pace=pace,
        talk_time_s=t.talk_time_s,
        long_pauses=len(t.long_pauses),
        fillers=len(t.fillers),
        fillers_per_minute=t.fillers_per_minute,
        raised_voice=bool(runs),
        remarks=remarks,
        timeline=timeline(t, float(cfg["timeline_bin_s"])),
        note=messages["note"],
    )


# -- terminal output (CLI) ---------------------------------------------------------------------
def print_transcript(t: Transcript) -> None:
    print(f"[{t.language}, {t.model}] {t.duration_s:.1f} s, talk time {t.talk_time_s:.1f} s, "
          f"{t.words_per_minute:.0f} words/min, {len(t.fillers)} fillers, {len(t.long_pauses)} long pauses")
    for seg in t.segments:
        print(f"  {_clock(seg.start)}-{_clock(seg.end)}  {seg.text}")


def print_delivery(d: Delivery) -> None:
    marks = {"good": "+", "improve": "!", "info": "i"}
    print(f"Delivery ({d.note})")
    for r in d.remarks:
        cited = ", ".join(p.passage for p in r.passages)
        print(f"  {marks[r.status]} {r.text}  [{cited}]")

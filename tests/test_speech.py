"""Speech to text with the real bundled models on speech espeak-ng makes now: English word
error rate (target <= 15 %), the other seven languages (sv, hu, it, nl, de, es, fr) measured (sanity floor only:
synthetic voices are hard), clear errors for silent, corrupt, over-long, empty and
non-audio files, the language always passed, models loaded once and never downloaded,
and the end-to-end path spoken answer -> transcript -> grade."""

from __future__ import annotations

import json
import time

import pytest
from voice_audio import concat, long_tone, require_tools, sentences, silence, speak, wer, word_errors

from calmcall.speech import (
    AudioError,
    SpeechUnavailable,
    decode_audio,
    join_parts,
    load_speech,
    resolve_model,
    sniff_format,
    speech_config,
)


@pytest.fixture(scope="module", autouse=True)
def _tools():
    require_tools()


@pytest.fixture(scope="module")
def stt(settings):
    return load_speech(settings)


@pytest.fixture(scope="module")
def answers(tmp_path_factory):
    """One spoken answer per language: its sentences with half a second between them."""
    tmp = tmp_path_factory.mktemp("speech")
    gap = silence(tmp / "gap.wav", 0.5)
    made = {}
    for lang, texts in sentences().items():
        texts = texts if lang == "en" else texts[:2]
        parts = []
        for i, text in enumerate(texts):
            parts += [speak(text, lang, tmp / f"{lang}{i}.wav"), gap]
        made[lang] = (" ".join(texts), concat(tmp / f"{lang}.wav", *parts[:-1]).read_bytes())
    return made


def test_wer_helper_counts_substitutions_insertions_and_deletions():
    assert word_errors("stay calm and listen", "Stay calm, and listen.") == (0, 4)
    assert word_errors("stay calm and listen", "stay clam and then listen") == (2, 4)
    assert word_errors("stay calm and listen", "calm listen") == (2, 4)


def test_english_word_error_rate_on_synthetic_speech(stt, answers):
    reference, audio = answers["en"]
    result = stt.transcribe(audio, "en")
    error = wer([(reference, result.text)])
    print(f"\nen WER {error:.3f} ({result.model}, {result.duration_s:.1f} s audio, "
          f"{result.cpu_s / result.duration_s:.3f} CPU-s per audio-s): {result.text}")
    assert result.model == "tiny.en" and result.language == "en"
    assert error <= 0.15, result.text
    # word timestamps are in order, inside the recording, and segments cover the words
    starts = [w.start for w in result.words]
    assert starts == sorted(starts) and result.words[-1].end <= result.duration_s + 0.1
    assert result.segments[0].start <= result.words[0].start + 0.01


@pytest.mark.parametrize("lang", ["sv", "hu", "it", "nl", "de", "es", "fr"])
def test_other_languages_are_measured(stt, answers, lang):
    """No target: reported, with a floor that catches a wrong model or language."""
    reference, audio = answers[lang]
    result = stt.transcribe(audio, lang)
    error = wer([(reference, result.text)])
    print(f"\n{lang} WER {error:.3f} ({result.model}): {result.text}")
    assert result.model == "base" and result.language == lang
    assert error < 0.95, result.text  # a wrong model or language gives ~1.0


def test_the_language_is_always_passed_to_the_model(settings, answers, monkeypatch):
    stt = load_speech(settings)
    model = stt.model("en")
    seen = []
    original = model.transcribe

    def spy(*args, **kwargs):
        seen.append(kwargs.get("language"))
        return original(*args, **kwargs)

    monkeypatch.setattr(model, "transcribe", spy)
    stt.transcribe(answers["en"][1][: 44 + 16000 * 2 * 3], "en")  # first ~3 s
    assert seen == ["en"]
    with pytest.raises(AudioError) as err:
        stt.transcribe(answers["en"][1], "ja")
    assert err.value.problem == "language" and err.value.status == 422 and "en, sv" in str(err.value)


def test_models_load_once_and_are_shared(settings):
    from calmcall.coach import Coach

    a, b = Coach(settings), Coach(settings)
    assert a.speech is b.speech
    assert a.speech.model("en") is b.speech.model("en")
    assert a.speech.model("sv") is a.speech.model("nl")  # one multilingual model


def test_nothing_is_downloaded(settings, tmp_path):
    models = speech_config(settings)["models"]
    with pytest.raises(SpeechUnavailable, match="nothing is downloaded"):
        resolve_model(settings, "Systran/faster-whisper-small", models)
    with pytest.raises(SpeechUnavailable, match="not installed"):
        resolve_model(settings, "x", {"x": {"package": "no_such_model_package", "dir": "model"}})
    with pytest.raises(SpeechUnavailable, match="CALMCALL_SPEECH"):
        load_speech(settings.model_copy(update={"speech": "cloud"}))


def test_split_model_is_joined_once_and_checked(settings, tmp_path):
    spec = speech_config(settings)["models"]["base"]
    target = join_parts(spec, tmp_path / "base")
    model_bin = target / "model.bin"
    assert model_bin.stat().st_size == spec["size"] and (target / "tokenizer.json").is_file()
    mtime = model_bin.stat().st_mtime_ns
    join_parts(spec, target)
    assert model_bin.stat().st_mtime_ns == mtime  # not joined again
    with pytest.raises(SpeechUnavailable, match="checksum"):
        join_parts({**spec, "sha256": "0" * 64}, tmp_path / "bad")
    assert not list((tmp_path / "bad").glob("model.bin*"))  # nothing half-written left behind


def test_made_up_segments_are_dropped():
    from types import SimpleNamespace as Seg

    from calmcall.speech import is_hallucination

    opts = {"max_compression_ratio": 2.4, "no_speech_prob": 0.6, "min_avg_logprob": -1.0}
    assert not is_hallucination(Seg(compression_ratio=1.4, no_speech_prob=0.1, avg_logprob=-0.15), opts)
    assert is_hallucination(Seg(compression_ratio=10.8, no_speech_prob=0.74, avg_logprob=-0.2), opts)  # a loop
    assert is_hallucination(Seg(compression_ratio=1.2, no_speech_prob=0.9, avg_logprob=-1.4), opts)  # a guess
    assert not is_hallucination(Seg(compression_ratio=1.2, no_speech_prob=0.9, avg_logprob=-0.3), opts)


@pytest.mark.parametrize("text,lang,dropped", [
    ("Thank you so much for watching. Thank you so much.", "en", True),  # a CI run's tail
    ("Thanks for watching!", "en", True),
    ("Vielen Dank fürs Zuschauen.", "de", True),
    ("Sous-titres réalisés par la communauté d'Amara.org", "fr", True),
    ("Sous-titres réalisés par Marie, merci de votre écoute et à demain.", "fr", False),  # more than the phrase
    ("Merci d'avoir regardé. Merci.", "fr", True),
    ("Thank you so much.", "en", False),  # a filler alone may be what was said
    ("Thank you so much for your patience, I will fix this today.", "en", False),
    ("Tack för att ni tittade", "sv", True),
])
def test_a_segment_of_video_sign_offs_is_dropped(stt, text, lang, dropped):
    from types import SimpleNamespace as Seg

    from calmcall.speech import is_hallucination

    opts = stt.config["decode"]
    seg = Seg(text=text, compression_ratio=1.3, no_speech_prob=0.2, avg_logprob=-0.3)
    assert is_hallucination(seg, opts, lang) is dropped


def test_no_text_is_made_up_after_the_last_word(stt, tmp_path):
    """The browser test's recording (an answer, then silence): tiny.en, decoding once, wrote
    "Thank you so much for watching, and I'll see you in the next video, see you in the next
    video, …" after it. That segment is dropped; the answer's own words stay."""
    from voice_audio import RECORDED_ANSWER, fake_microphone

    wav, speech_ends_s = fake_microphone(RECORDED_ANSWER, "en", tmp_path / "answer.wav")
    result = stt.transcribe(wav.read_bytes(), "en")
    assert "video" not in result.text.lower() and "watching" not in result.text.lower(), result.text
    assert wer([(RECORDED_ANSWER, result.text)]) <= 0.15, result.text
    assert result.words[-1].end <= speech_ends_s + 0.5


# -- bad files -------------------------------------------------------------------------------
def _problem(stt, data: bytes, lang: str = "en") -> AudioError:
    with pytest.raises(AudioError) as err:
        stt.transcribe(data, lang)
    assert str(err.value)
    return err.value


def test_silent_file_is_a_clear_422(stt, tmp_path):
    err = _problem(stt, silence(tmp_path / "silent.wav", 3.0).read_bytes())
    assert (err.problem, err.status) == ("silent", 422) and "microphone" in str(err)


def test_corrupt_files_are_a_clear_422(stt, answers, tmp_path):
    from voice_audio import sox

    wav = tmp_path / "a.wav"
    wav.write_bytes(answers["en"][1])
    sox(wav, tmp_path / "a.ogg")
    sox(wav, tmp_path / "a.flac")
    ogg, flac = (tmp_path / "a.ogg").read_bytes(), (tmp_path / "a.flac").read_bytes()
    for damaged in (ogg[:300] + bytes(range(256)) * 40, flac[:100] + b"\xaa" * 5000, b"\x1a\x45\xdf\xa3" + b"\0" * 999):
        err = _problem(stt, damaged)
        assert (err.problem, err.status) == ("corrupt", 422)
        assert "damaged" in str(err) or "no decodable" in str(err)


def test_twenty_minute_file_is_refused_quickly(stt, tmp_path):
    path = long_tone(tmp_path / "long.wav", 20 * 60)
    start = time.perf_counter()
    err = _problem(stt, path.read_bytes())
    assert (err.problem, err.status) == ("too_long", 422)
    assert "20:00" in str(err) and "10:00" in str(err)
    assert time.perf_counter() - start < 5  # from the header, before decoding it all


def test_length_is_checked_while_decoding_too(answers):
    with pytest.raises(AudioError) as err:
        decode_audio(answers["en"][1], max_seconds=5)
    assert err.value.problem == "too_long"


@pytest.mark.parametrize("data", [
    b"I would stay calm and listen to the caller.",
    b"%PDF-1.7\n" + b"\0" * 200,
    b"\x89PNG\r\n\x1a\n" + b"\0" * 200,
    b"PK\x03\x04" + b"\0" * 200,
])
def test_non_audio_is_a_clear_415(stt, data):
    err = _problem(stt, data)
    assert (err.problem, err.status) == ("not_audio", 415) and "WAV" in str(err)


def test_empty_file_is_a_clear_422(stt):
    assert _problem(stt, b"").problem == "empty"


def test_formats_are_sniffed_not_guessed():
    assert sniff_format(b"RIFF\0\0\0\0WAVEfmt ") == "wav"
    assert sniff_format(b"OggS\0\x02") == "ogg"
    assert sniff_format(b"\x1a\x45\xdf\xa3\x9f") == "matroska"
    assert sniff_format(b"\0\0\0\x20ftypM4A ") == "mov"
    assert sniff_format(b"#EXTM3U\nhttp://x/") is None  # playlists never reach FFmpeg


# -- end to end ------------------------------------------------------------------------------
SPOKEN_ANSWER = ("First I would stay calm and let the caller finish without interrupting. "
                 "Then I would acknowledge how frustrated they are and apologize for the trouble. "
                 "I would not take it personally. Next I would explain what I will do to fix the problem.")


def test_spoken_answer_is_graded_with_the_steps_its_text_shows(coach, tmp_path):
    audio = speak(SPOKEN_ANSWER, "en", tmp_path / "answer.wav").read_bytes()
    report, transcript, delivery = coach.grade_audio(audio, "q01_angry_call", "en")
    from_text = coach.grade(SPOKEN_ANSWER, "q01_angry_call")
    covered = {s.step for s in report.covered}
    assert covered and covered == {s.step for s in from_text.covered}, transcript.text
    assert report.score == pytest.approx(from_text.score, abs=10)
    assert delivery.remarks and all(r.passages for r in delivery.remarks)
    assert transcript.words_per_minute > 0


def test_cli_transcribe_and_grade_audio_contracts(coach, settings, tmp_path):
    from conftest import run_cli

    env = {"CALMCALL_DATA_DIR": str(settings.data_dir)}
    wav = speak(SPOKEN_ANSWER, "en", tmp_path / "answer.wav")
    r = run_cli("transcribe", str(wav), "--lang", "en", "--json", env=env)
    assert r.returncode == 0, r.stderr.decode()
    out = json.loads(r.stdout)
    assert {"text", "language", "duration_s", "words_per_minute", "fillers", "long_pauses", "segments"} <= set(out)
    assert out["language"] == "en" and out["segments"] and {"start", "end", "text"} <= set(out["segments"][0])
    r = run_cli("grade", "--audio", str(wav), "--question", "q01_angry_call", "--lang", "en", "--json", env=env)
    assert r.returncode == 0, r.stderr.decode()
    graded = json.loads(r.stdout)
    assert {"score", "steps", "transcript", "delivery"} <= set(graded)
    assert graded["transcript"]["text"] == out["text"]
    assert graded["delivery"]["remarks"][0]["passages"][0]["passage"].startswith("001#")
    bad = tmp_path / "notes.txt"
    bad.write_text("not audio")
    r = run_cli("transcribe", str(bad), env=env)
    assert r.returncode == 2 and b"not an audio file" in r.stderr


# -- the caller's voice (calmcall/tts.py) ----------------------------------------------------------
CALLER_LINES = {
    "en": "This is the third time I am calling about the same bill!",
    "sv": "Det här är tredje gången jag ringer om samma faktura!",
    "hu": "Már harmadszor hívom ugyanazért a számláért!",
    "it": "È la terza volta che chiamo per la stessa bolletta!",
    "nl": "Dit is de derde keer dat ik bel over dezelfde rekening!",
    "de": "Das ist das dritte Mal, dass ich wegen derselben Rechnung anrufe!",
    "es": "¡Es la tercera vez que llamo por la misma factura!",
    "fr": "C'est la troisième fois que j'appelle pour la même facture !",
}


def _wav_seconds_and_level(data: bytes) -> tuple[float, float]:
    import io
    import wave

    import numpy as np

    with wave.open(io.BytesIO(data)) as w:
        samples = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float64)
        return w.getnframes() / w.getframerate(), float(np.sqrt(np.mean(samples ** 2)))


@pytest.mark.parametrize("lang", list(CALLER_LINES))
def test_the_caller_speaks_every_language_and_angrier_is_faster_and_louder(lang):
    from calmcall.tts import load_tts, voices_config

    tts = load_tts()
    assert set(CALLER_LINES) <= set(voices_config()["voices"])
    calm = tts.speak(CALLER_LINES[lang], lang, 1)
    furious = tts.speak(CALLER_LINES[lang], lang, 10)
    for wav in (calm, furious):
        assert wav[:4] == b"RIFF" and int.from_bytes(wav[4:8], "little") == len(wav) - 8  # real sizes
    (calm_s, calm_rms), (furious_s, furious_rms) = map(_wav_seconds_and_level, (calm, furious))
    assert calm_s > 1.0 and furious_s < calm_s * 0.85, (calm_s, furious_s)
    assert furious_rms > calm_rms * 1.3, (calm_rms, furious_rms)


def test_the_caller_voice_refuses_what_it_cannot_say():
    from calmcall.tts import EspeakNG, TTSUnavailable

    with pytest.raises(ValueError, match="no caller voice"):
        EspeakNG().speak("Hello", "ja")
    with pytest.raises(ValueError, match="empty"):
        EspeakNG().speak("\x00\x07  ", "en")
    missing = EspeakNG()
    missing.exe = None  # as on a machine without espeak-ng
    assert not missing.available()
    with pytest.raises(TTSUnavailable, match="apt-get install espeak-ng"):
        missing.speak("Hello", "en")

"""Delivery feedback: pace against the band, long pauses, fillers per language, a raised
voice — measured on speech espeak-ng makes now (real recogniser), and the rules on word
lists where the recogniser is not the point. Every remark cites article 001."""

from __future__ import annotations

import pytest
from voice_audio import REPO, concat, require_tools, silence, speak

from calmcall.delivery import Transcript, TranscriptWord, assess, delivery_config, find_fillers, measure
from calmcall.speech import SegmentText, Transcription, Word

KNOWLEDGE = REPO / "knowledge"
LANGS = ("en", "sv", "hu", "it", "nl", "de", "es", "fr")
TRANSLATED = ("sv", "it", "nl")  # passages translated (hu is the original, en is quote_en)


@pytest.fixture(scope="module")
def voice(settings):
    """A Coach for voice only (no index needed): transcribe + delivery."""
    require_tools()
    from calmcall.coach import Coach

    return Coach(settings)


def _words(spec: list[tuple[str, float, float]], level: float = -20.0) -> list[Word]:
    return [Word(start=a, end=b, text=t, level_db=level) for t, a, b in spec]


def _transcription(words: list[Word], lang: str = "en", duration: float | None = None) -> Transcription:
    duration = duration if duration is not None else (words[-1].end + 0.3 if words else 1.0)
    return Transcription(text=" ".join(w.text for w in words), language=lang, duration_s=duration, model="t",
                         words=words, segments=[SegmentText(0.0, duration, " ".join(w.text for w in words))])


def _even(n: int, wpm: float, lang: str = "en", text: str = "word") -> list[Word]:
    step = 60.0 / wpm
    return [Word(start=round(i * step, 2), end=round(i * step + step * 0.8, 2), text=text, level_db=-20.0)
            for i in range(n)]


# -- rules -------------------------------------------------------------------------------------
def test_every_language_has_every_message_band_and_filler_list():
    cfg = delivery_config(KNOWLEDGE)
    keys = set(cfg["messages"]["en"])
    for lang in LANGS:
        assert set(cfg["messages"][lang]) == keys, lang
        assert lang in cfg["pace"]["band"] and lang in cfg["fillers"]["by_language"]
        for text in cfg["messages"][lang].values():
            assert text.format(wpm=1, lo=1, hi=2, seconds=3, count=4, per_min=5, pause_s=2, examples="x",
                               times="0:01", db=9)


def test_cited_passages_are_the_articles_delivery_advice(knowledge):
    cfg = delivery_config(KNOWLEDGE)
    p32 = knowledge.get("001#p32").text_en
    assert "speak slowly" in p32 and "raise your voice" in p32 and "Breathe" in p32
    assert "how you say things" in knowledge.get("001#p33").text_en
    for ids in cfg["passages"].values():
        for pid in ids:
            knowledge.get(pid)


@pytest.mark.parametrize("lang,text,expected", [
    ("en", "Um, I would, uh, listen.", ["um", "uh"]),
    ("en", "I'd like to help you today.", []),
    ("en", "It was, like, awful, you know, really.", ["like", "you know"]),
    ("en", "Hmm. Ummm, fine.", ["hmm", "ummm"]),
    ("sv", "Öh, jag skulle liksom, lyssna typ först.", ["öh", "liksom"]),
    ("hu", "Hát, izé, meghallgatnám ööö az ügyfelet.", ["hát", "izé", "ööö"]),
    ("it", "Ehm, cioè, ascolterei tipo il cliente.", ["ehm", "cioè"]),
    ("nl", "Eh, nou, ik zou zeg maar, luisteren.", ["eh", "nou", "zeg maar"]),
    ("de", "Ähm, also, ich würde, äh, zuerst zuhören.", ["ähm", "also", "äh"]),
    ("de", "Also ich würde halt zuerst, sozusagen, zuhören.", ["sozusagen"]),
    ("de", "Ich höre zu und erkläre also die Lösung.", []),
    ("es", "Eh, pues, yo escucharía, o sea, primero.", ["eh", "pues", "o sea"]),
    ("es", "Este cliente está enfadado, este, mucho.", ["este"]),
    ("es", "Bueno es escuchar primero a la persona.", []),
    ("fr", "Euh, du coup, j'écouterais, genre, d'abord.", ["euh", "du coup", "genre"]),
    ("fr", "Ben, en fait, je resterais, hum, calme.", ["ben", "en fait", "hum"]),
    ("fr", "Je lui proposerais une bonne solution en fait rapide.", []),
])
def test_fillers_per_language(lang, text, expected):
    words = [Word(start=i * 0.4, end=i * 0.4 + 0.3, text=t) for i, t in enumerate(text.split())]
    assert [f.word for f in find_fillers(words, lang, KNOWLEDGE)] == expected


def test_filler_lists_are_the_languages_own():
    """Each language has hesitations and set-off discourse words of its own; a language's
    ordinary words (German "also" = "so", Spanish "este" = "this") are never always-fillers."""
    cfg = delivery_config(KNOWLEDGE)["fillers"]["by_language"]
    for lang in LANGS:
        assert cfg[lang]["words"] and cfg[lang]["set_off"], lang
    assert {"äh", "ähm"} <= set(cfg["de"]["words"]) and "also" not in cfg["de"]["words"]
    assert "este" in cfg["es"]["set_off"] and "este" not in cfg["es"]["words"]
    assert {"euh", "hum"} <= set(cfg["fr"]["words"]) and "du coup" in cfg["fr"]["set_off"]
    # nobody's hesitation is another language's word here: German "eh" (= anyway) is not one
    assert "eh" not in cfg["de"]["words"]


def test_a_discourse_word_between_pauses_counts_without_commas():
    words = _words([("I", 0.0, 0.2), ("was", 0.3, 0.5), ("like", 1.0, 1.2), ("tired", 1.8, 2.1)])
    assert [f.word for f in find_fillers(words, "en", KNOWLEDGE)] == ["like"]


def test_pace_bands_and_short_answers(knowledge):
    fast = assess(measure(_transcription(_even(60, 200)), KNOWLEDGE), "en", knowledge, KNOWLEDGE)
    slow = assess(measure(_transcription(_even(30, 80)), KNOWLEDGE), "en", knowledge, KNOWLEDGE)
    calm = assess(measure(_transcription(_even(40, 130)), KNOWLEDGE), "en", knowledge, KNOWLEDGE)
    short = assess(measure(_transcription(_even(5, 130)), KNOWLEDGE), "en", knowledge, KNOWLEDGE)
    assert (fast.pace, slow.pace, calm.pace, short.pace) == ("fast", "slow", "calm", "unknown")
    assert fast.remarks[0].kind == "pace_fast" and "slowly" in fast.remarks[0].text
    assert 190 <= fast.words_per_minute <= 210
    assert short.remarks[0].kind == "pace_short"
    # Hungarian words are longer: 120 wpm is calm in English, fast-ish in Hungarian's band
    hu = assess(measure(_transcription(_even(40, 125, "hu"), "hu"), KNOWLEDGE), "hu", knowledge, KNOWLEDGE)
    assert hu.pace == "fast" and hu.band[1] < calm.band[1]


def test_long_pauses_and_raised_voice_from_word_data(knowledge):
    words = _even(20, 130)
    late = [Word(start=w.start + 15, end=w.end + 15, text="loud", level_db=-8.0) for w in _even(6, 130)]
    t = measure(_transcription(words[:10] + [Word(start=w.start + 3, end=w.end + 3, text=w.text, level_db=-20.0)
                                             for w in words[10:]] + late), KNOWLEDGE)
    assert [round(p.duration_s) for p in t.long_pauses] == [3, 3]
    d = assess(t, "en", knowledge, KNOWLEDGE)
    kinds = {r.kind for r in d.remarks}
    assert "raised_voice" in kinds and d.raised_voice
    assert "pauses_many" in kinds
    steady = assess(measure(_transcription(_even(30, 130)), KNOWLEDGE), "en", knowledge, KNOWLEDGE)
    assert not steady.raised_voice and "volume_even" in {r.kind for r in steady.remarks}


def test_remarks_are_in_the_learners_language_and_cite_the_article(knowledge):
    t = measure(_transcription(_even(60, 200)), KNOWLEDGE)
    for lang in LANGS:
        d = assess(t, lang, knowledge, KNOWLEDGE)
        assert d.language == lang
        for r in d.remarks:
            assert r.passages and all(p.article == "001" for p in r.passages)
            if lang in TRANSLATED:
                assert r.passages[0].translation
            else:  # no translation of our own: the original and its English
                assert r.passages[0].quote_en
    texts = {lang: assess(t, lang, knowledge, KNOWLEDGE).remarks[0].text for lang in LANGS}
    for lang, word in {"sv": "långsamt", "de": "langsam", "es": "despacio", "fr": "lentement"}.items():
        assert word in texts[lang], (lang, texts[lang])
    assert len(set(texts.values())) == len(LANGS)  # no language falls back to another's text
    assert assess(t, "ja", knowledge, KNOWLEDGE).language == "en"  # no Japanese messages: English


@pytest.mark.parametrize("lang", ["de", "es", "fr"])
def test_german_spanish_and_french_fillers_reach_the_remark(knowledge, lang):
    """A filler-heavy answer in de/es/fr: the remark is in that language and names them."""
    filled = {"de": "äh", "es": "eh", "fr": "euh"}[lang]
    words = _even(40, 130, lang)
    for i in range(0, 40, 5):
        words[i].text = filled + ","
    d = assess(measure(_transcription(words, lang), KNOWLEDGE), lang, knowledge, KNOWLEDGE)
    remark = next(r for r in d.remarks if r.kind == "fillers_many")
    assert d.fillers == 8 and f"“{filled}”" in remark.text
    assert remark.text == delivery_config(KNOWLEDGE)["messages"][lang]["fillers_many"].format(
        count=8, per_min=d.fillers_per_minute, examples=f"“{filled}”")


def test_timeline_covers_the_recording(knowledge):
    t = measure(_transcription(_even(40, 130), duration=20.0), KNOWLEDGE)
    points = assess(t, "en", knowledge, KNOWLEDGE).timeline
    assert points[0].start == 0 and points[-1].end == pytest.approx(t.duration_s)
    total = sum(p.words_per_minute * (p.end - p.start) / 60 for p in points)
    assert total == pytest.approx(len(t.words), abs=0.5)


def test_transcript_is_the_contract_shape():
    fields = set(Transcript.model_fields)
    assert {"text", "language", "duration_s", "words_per_minute", "fillers", "long_pauses", "segments"} <= fields
    assert set(TranscriptWord.model_fields) >= {"start", "end", "word"}


# -- with the real recogniser --------------------------------------------------------------------
def test_fillers_pauses_and_pace_heard_in_real_speech(voice, tmp_path):
    filled = speak("Um, I would, uh, stay calm and, um, listen to the caller. Uh, then I would apologize.",
                   "en", tmp_path / "fillers.wav")
    t = voice.transcribe(filled.read_bytes(), "en")
    assert len(t.fillers) >= 3, t.text
    a = speak("I would stay calm and let the caller finish.", "en", tmp_path / "a.wav")
    b = speak("Then I would apologize and explain what I will do next.", "en", tmp_path / "b.wav")
    paused = concat(tmp_path / "paused.wav", a, silence(tmp_path / "s.wav", 3.0), b)
    t = voice.transcribe(paused.read_bytes(), "en")
    assert len(t.long_pauses) == 1 and 2.3 <= t.long_pauses[0].duration_s <= 3.6, t.long_pauses


@pytest.mark.parametrize("lang,text", [
    ("de", "Äh, also, ich würde, ähm, zuerst ruhig bleiben und, äh, dem Kunden zuhören. Ähm, dann würde ich "
           "mich entschuldigen."),
    ("es", "Eh, pues, yo, em, mantendría la calma y, eh, escucharía al cliente. Este, luego pediría disculpas."),
])
def test_german_and_spanish_fillers_heard_in_real_speech(voice, tmp_path, lang, text):
    """The disfluent prompt in the language (knowledge/speech.yaml) makes the recogniser
    write the hesitations it would otherwise drop; the remark comes in that language."""
    t = voice.transcribe(speak(text, lang, tmp_path / f"{lang}.wav").read_bytes(), lang)
    assert len(t.fillers) >= 3, t.text
    d = voice.delivery(t)
    remark = next(r for r in d.remarks if r.kind == "fillers_many")
    assert d.language == lang and {"de": "Füllwörter", "es": "muletillas"}[lang] in remark.text


def test_fast_and_slow_speakers_and_a_raised_voice(voice, tmp_path):
    import subprocess

    from calmcall.tts import fix_wav_sizes, load_tts

    text = ("First I would stay calm and let the caller finish without interrupting. Then I would "
            "acknowledge how frustrated they are and explain what I will do next. I would not take it "
            "personally, and after the call I would write down what happened.")
    tts = load_tts()

    def at(speed: int, name: str, amplitude: int = 100):
        cmd = tts.command("en")
        cmd[cmd.index("-s") + 1], cmd[cmd.index("-a") + 1] = str(speed), str(amplitude)
        path = tmp_path / name
        path.write_bytes(fix_wav_sizes(subprocess.run(cmd, input=text.encode(), capture_output=True,
                                                      check=True).stdout))
        return path

    fast = voice.delivery(voice.transcribe(at(240, "fast.wav").read_bytes(), "en"))
    slow = voice.delivery(voice.transcribe(at(110, "slow.wav").read_bytes(), "en"))
    assert fast.pace == "fast" and fast.words_per_minute > 170, fast.words_per_minute
    assert slow.pace in ("calm", "slow") and slow.words_per_minute < 135, slow.words_per_minute
    quiet = speak("I would stay calm and let the caller finish talking first.", "en", tmp_path / "q.wav", amplitude=40)
    loud = speak("Then I would shout that this is not my fault at all!", "en", tmp_path / "l.wav", amplitude=190)
    shouted = voice.delivery(voice.transcribe(concat(tmp_path / "ql.wav", quiet, loud).read_bytes(), "en"), "it")
    assert shouted.raised_voice and any(r.kind == "raised_voice" and "voce" in r.text for r in shouted.remarks)


# -- the page's record button (views/_voice.py) ------------------------------------------------
def _voice_page():
    """A page with the record button and a spoken-language choice; the coach records which
    language it was asked to transcribe in."""
    import streamlit as st

    from calmcall.delivery import Delivery, Transcript
    from views._voice import take_recording, voice_input

    class Coach:
        def transcribe(self, data, lang):
            st.session_state.setdefault("asked", []).append(lang)
            return Transcript(text=f"spoken in {lang}", language=lang, duration_s=8.0, words_per_minute=120.0,
                              fillers=[], long_pauses=[], segments=[], talk_time_s=7.0)

        def delivery(self, transcript, lang):
            return Delivery(language=lang, words_per_minute=120.0, band=[100, 150], pace="calm", talk_time_s=7.0,
                            long_pauses=0, fillers=0, fillers_per_minute=0.0, raised_voice=False, remarks=[],
                            timeline=[], note="")

    ui_lang = st.session_state.get("ui_lang", "en")
    voice_input(Coach(), ui_lang, target="answer", spoken_languages=("en", "sv", "de", "es", "fr"))
    if st.session_state.get("record_now"):  # what the record button's callback does with a recording
        st.session_state["record_now"] = False
        take_recording(Coach(), b"RIFF-a-recording", ui_lang, "voice", "answer")
    st.text_area("answer", key="answer")


def test_the_learner_picks_the_spoken_language_and_remarks_stay_in_the_ui_language():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_function(_voice_page, default_timeout=30).run()
    choice = at.selectbox(key="voice_lang")
    assert choice.value == "en" and choice.options == ["English", "Swedish", "German", "Spanish", "French"]
    choice.set_value("de").run()
    at.session_state["record_now"] = True
    at.run()
    assert at.session_state["asked"] == ["de"]
    assert at.text_area(key="answer").value == "spoken in de"
    assert at.session_state["voice_delivery"]["language"] == "en"  # the UI language
    # the UI language changes: the choice follows it (Swedish is on the list, Hungarian not)
    at.session_state["ui_lang"] = "sv"
    at.run()
    assert at.selectbox(key="voice_lang").value == "sv"
    at.session_state["ui_lang"] = "hu"
    at.run()
    assert at.selectbox(key="voice_lang").value == "en"

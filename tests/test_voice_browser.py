"""Recording an answer in a real browser: Debian's Chromium (Playwright) with a fake
microphone that plays a WAV espeak-ng speaks now (nothing recorded is committed), against
``streamlit run app.py`` on 127.0.0.1. On the Practice page the learner presses Record
(``st.audio_input``), speaks, stops; the transcript lands in the editable answer box; the
graded steps come from that text and the delivery panel sits beside the score.

Why a browser test: the record button, the browser's own encoding of the recording and
the widget callback that fills the answer box only meet in a browser. Streamlit 1.67's
``st.audio_input`` is ``[data-testid=stAudioInput]`` with ``stAudioInputActionButton``
buttons labelled "Record", then "Stop recording"."""

from __future__ import annotations

import pytest
from _browser import launch_chromium, needs_chromium, save_shot, start_app
from voice_audio import RECORDED_ANSWER, fake_microphone, normalise, require_tools

pytestmark = [pytest.mark.browser, pytest.mark.slow, needs_chromium]

FIRST_LOAD_S = 600  # a cold data dir: the first page builds the index


@pytest.fixture(scope="module")
def microphone(tmp_path_factory):
    """The fake microphone's WAV and the seconds until its speech ends."""
    require_tools()
    return fake_microphone(RECORDED_ANSWER, "en", tmp_path_factory.mktemp("voice-browser") / "answer.wav")


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    url, stop = start_app(tmp_path_factory.mktemp("voice-browser-data"))
    yield url
    stop()


@pytest.fixture(scope="module")
def browser(microphone):
    wav, _ = microphone
    b, stop = launch_chromium(extra_args=(
        "--use-fake-ui-for-media-stream",  # grant the microphone without a prompt
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={wav}%noloop",  # played once, from the start
        "--autoplay-policy=no-user-gesture-required",
    ))
    yield b
    stop()


def wait_idle(pg, timeout_s: float = 60) -> None:
    """Until Streamlit has finished the current script run."""
    pg.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=timeout_s * 1000)


def test_record_an_answer_on_the_practice_page(app_url, browser, microphone, tmp_path):
    _, speech_ends_s = microphone
    context = browser.new_context(viewport={"width": 1280, "height": 1000}, permissions=["microphone"])
    page = context.new_page()
    try:
        page.goto(app_url)
        answer_box = page.locator("textarea").first
        answer_box.wait_for(timeout=FIRST_LOAD_S * 1000)
        wait_idle(page)
        assert answer_box.input_value() == ""
        recorder = page.get_by_test_id("stAudioInput")
        assert "English is the strongest language for voice" in page.get_by_text(
            "Speak your answer", exact=False).first.inner_text()

        recorder.get_by_role("button", name="Record", exact=True).click()
        stop = recorder.get_by_role("button", name="Stop recording")
        stop.wait_for(timeout=10_000)  # recording: the fake microphone plays from the start
        page.wait_for_timeout(int((speech_ends_s + 1.5) * 1000))  # stop inside the silent tail
        stop.click()

        # the recording is uploaded, transcribed by the widget's callback into the answer box
        page.wait_for_function("() => document.querySelector('textarea').value.length > 40", timeout=120_000)
        wait_idle(page, 120)
        transcript = answer_box.input_value()
        words = set(normalise(transcript))
        # the fake microphone's capture differs a little from run to run, and Whisper then
        # sometimes hears espeak's "caller" as "color": three of the four words must be there
        assert len({"caller", "interrupting", "calm", "refund"} & words) >= 3, transcript
        assert "video" not in words and len(words) < 60, transcript  # nothing made up in the silence after it
        page.get_by_text("Transcribed", exact=False).first.wait_for(timeout=10_000)
        assert recorder.get_by_role("button", name="Play").count() == 1  # the recording can be replayed
        save_shot(page, tmp_path / "browser_voice_recorded.png", streamlit=True)

        # the learner may fix a misheard word; the grade is of the box's text
        page.get_by_role("button", name="Get feedback").click()
        score = page.get_by_test_id("stMetricValue").first
        score.wait_for(timeout=60_000)
        wait_idle(page)
        # the score itself is the grader's business (tests/test_grading.py); a good answer is not near 0
        assert score.inner_text().endswith("/100") and int(score.inner_text().split("/")[0]) >= 40
        covered, required = page.get_by_test_id("stMetricValue").nth(1).inner_text().split("/")
        assert int(covered) >= 3, (covered, required)
        # the sentences that earned the steps are the transcript's own
        checklist = page.locator(".st-key-cc_checklist")
        marks = checklist.locator("mark.cc-covered")
        assert marks.count() >= 3
        spoken_words = set(normalise(transcript))
        for i in range(marks.count()):
            assert set(normalise(marks.nth(i).inner_text())) <= spoken_words, marks.nth(i).inner_text()

        # the delivery panel beside the score: its metrics, remarks citing article 001
        panel = page.locator("h4", has_text="Delivery (not part of the score)")
        panel.wait_for(timeout=10_000)
        labels = [e.inner_text() for e in page.get_by_test_id("stMetricLabel").all()]
        assert {"Words per minute", "Long pauses", "Filler words", "Talk time (s)"} <= set(labels), labels
        wpm = int(page.get_by_test_id("stMetric").filter(has_text="Words per minute")
                  .get_by_test_id("stMetricValue").inner_text())
        # espeak-ng's neutral voice speaks at 160; talk time leaves pauses out, and a CI run
        # measured 222: the bound catches a wrong unit or a halved clock, not a few percent
        assert 100 <= wpm <= 250, wpm
        talk = int(page.get_by_test_id("stMetric").filter(has_text="Talk time (s)")
                   .get_by_test_id("stMetricValue").inner_text())
        assert abs(talk - (speech_ends_s - 0.5)) <= 3, (talk, speech_ends_s)
        assert page.get_by_text("words a minute", exact=False).first.is_visible()
        assert page.get_by_text("Delivery is measured from the recording; it is not part of the score.").is_visible()
        assert page.get_by_text("Traceback").count() == 0
        shot = save_shot(page, tmp_path / "browser_voice_feedback.png", streamlit=True)
        assert shot.stat().st_size > 20_000
    finally:
        context.close()

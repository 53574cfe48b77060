"""Voice on a page: a record button whose transcript lands in the page's own (editable)
answer box, the delivery panel, and the caller's voice for role-play.

Why the transcript goes into the answer box: small models mishear, so the learner reads
and fixes the text before grading, and the grade is of what they meant. Delivery comes
from the recording and is shown beside the score, never mixed into it.

Wiring (Practice; Role-play the same with its reply box's key)::

    from views._voice import delivery_panel, voice_input
    voice_input(coach, lang, target="answer")      # BEFORE st.text_area(..., key="answer")
    st.text_area(t("answer_label", lang), key="answer", ...)
    ...after the feedback:  delivery_panel(lang, key="voice")

and for a caller line: ``caller_audio(line, lang, anger)``.
"""

from __future__ import annotations

import hashlib
import logging

import streamlit as st

from calmcall import ui

log = logging.getLogger("calmcall.app")
t = ui.t


def _on_record(coach, lang: str, key: str, target: str) -> None:
    """Runs before the rerun (a widget callback), so it may set the answer box's value.
    ``lang`` is the UI language (messages, delivery remarks); the recording is transcribed
    in the spoken language the learner picked, if the page offers the choice."""
    recording = st.session_state.get(f"{key}_audio")
    st.session_state.pop(f"{key}_error", None)
    if recording is not None:
        take_recording(coach, recording.getvalue(), lang, key, target)


def take_recording(coach, data: bytes, lang: str, key: str = "voice", target: str = "answer") -> None:
    """A recording's bytes -> its transcript in ``st.session_state[target]`` and the delivery
    in ``{key}_delivery`` (remarks in ``lang``), or a message in ``{key}_error``."""
    spoken = st.session_state.get(f"{key}_lang") or lang
    digest = hashlib.sha256(data).hexdigest()
    if st.session_state.get(f"{key}_digest") == (digest, spoken):
        return  # the same recording again: keep the learner's edits
    from calmcall.speech import AudioError, SpeechUnavailable

    try:
        transcript = coach.transcribe(data, spoken)
        delivery = coach.delivery(transcript, lang)
    except AudioError as exc:
        minutes = int(coach.settings.max_audio_seconds // 60)
        message = {"silent": "voice_err_silent", "too_long": "voice_err_too_long",
                   "too_large": "voice_err_too_long"}.get(exc.problem, "voice_err_unreadable")
        st.session_state[f"{key}_error"] = t(message, lang, minutes=minutes)
        return
    except SpeechUnavailable as exc:
        log.warning("voice input unavailable: %s", exc)
        st.session_state[f"{key}_error"] = t("voice_err_unavailable", lang)
        return
    st.session_state[f"{key}_digest"] = (digest, spoken)
    st.session_state[target] = transcript.text
    st.session_state[f"{key}_transcript"] = transcript.model_dump(mode="json")
    st.session_state[f"{key}_delivery"] = delivery.model_dump(mode="json")


def voice_input(coach, lang: str, target: str = "answer", key: str = "voice",
                spoken_languages: tuple[str, ...] | None = None) -> dict | None:
    """The record button. A new recording is transcribed into ``st.session_state[target]``,
    in ``lang`` (the language is always passed) or, when ``spoken_languages`` is given, in
    the one the learner picks among them (default ``lang``): a German, Spanish or French
    speaker on an English page answers in their own language, and the delivery remarks
    stay in the UI language. Returns the latest delivery (a dict) or None."""
    st.caption(t("voice_hint", lang))
    if spoken_languages:
        choice = f"{key}_lang"
        # follow the UI language until the learner picks another spoken language
        if st.session_state.get(f"{key}_lang_ui") != lang or st.session_state.get(choice) not in spoken_languages:
            st.session_state[choice] = lang if lang in spoken_languages else spoken_languages[0]
            st.session_state[f"{key}_lang_ui"] = lang
        st.selectbox(t("voice_language", lang), spoken_languages, key=choice,
                     format_func=lambda code: ui.lang_name(code, lang))
    else:
        st.session_state.pop(f"{key}_lang", None)
    st.audio_input(t("voice_record", lang), key=f"{key}_audio", sample_rate=16000,
                   on_change=_on_record, args=(coach, lang, key, target))
    if st.session_state.get(f"{key}_error"):
        st.warning(st.session_state[f"{key}_error"], icon=":material/mic_off:")
    elif st.session_state.get(f"{key}_transcript"):
        st.caption(t("voice_done", lang, seconds=round(st.session_state[f"{key}_transcript"]["talk_time_s"])))
    return st.session_state.get(f"{key}_delivery")


def clear_voice(key: str = "voice") -> None:
    """Forget the recording's transcript and delivery (e.g. on "try again")."""
    for suffix in ("digest", "transcript", "delivery", "error"):
        st.session_state.pop(f"{key}_{suffix}", None)


def delivery_panel(lang: str, key: str = "voice", knowledge=None) -> None:
    """Delivery beside the score: pace against the calm band, long pauses, fillers, talk
    time, a small timeline chart, and each remark with the passage it rests on."""
    delivery = st.session_state.get(f"{key}_delivery")
    if not delivery:
        return
    st.markdown(f"#### {t('delivery_title', lang)}")
    lo, hi = delivery["band"]
    cols = st.columns(4)
    cols[0].metric(t("delivery_pace", lang), round(delivery["words_per_minute"]),
                   help=t("delivery_band", lang, lo=lo, hi=hi))
    cols[1].metric(t("delivery_pauses", lang), delivery["long_pauses"])
    cols[2].metric(t("delivery_fillers", lang), delivery["fillers"])
    cols[3].metric(t("delivery_talk", lang), round(delivery["talk_time_s"]))
    # the chart covers the talk, not the silence before and after it (a trailing second of
    # silence would read as the pace dropping to zero); each bin is drawn at its middle
    points = delivery["timeline"]
    spoken = [i for i, p in enumerate(points) if p["words_per_minute"] > 0]
    points = points[spoken[0]:spoken[-1] + 1] if spoken else []
    if len(points) > 1:
        import altair as alt
        import pandas as pd

        seconds = round(points[0]["end"] - points[0]["start"])
        frame = pd.DataFrame({"s": [round((p["start"] + p["end"]) / 2, 1) for p in points],
                              "wpm": [p["words_per_minute"] for p in points], "lo": lo, "hi": hi})
        x = alt.X("s:Q", title="s")
        band = alt.Chart(frame).mark_area(opacity=0.18, color="#2ca02c").encode(
            x=x, y=alt.Y("lo:Q", title=t("delivery_pace", lang)), y2="hi:Q",
            tooltip=alt.value(t("delivery_band", lang, lo=lo, hi=hi)))
        pace = alt.Chart(frame).mark_line(point=True).encode(
            x=x, y="wpm:Q", tooltip=[alt.Tooltip("s:Q", title="s"),
                                     alt.Tooltip("wpm:Q", title=t("delivery_pace", lang))])
        st.caption(t("delivery_chart", lang, seconds=seconds) + " · " + t("delivery_band", lang, lo=lo, hi=hi))
        st.altair_chart(band + pace, height=200)
    icons = {"good": ":green[:material/check_circle:]", "improve": ":orange[:material/tips_and_updates:]",
             "info": ":gray[:material/info:]"}
    for remark in delivery["remarks"]:
        st.markdown(f"{icons[remark['status']]} {ui.md_escape(remark['text'])}")
        if remark["passages"]:
            with st.expander(ui.source_label(remark["passages"][0]["passage"], knowledge, lang),
                             icon=":material/format_quote:"):
                for c in remark["passages"]:
                    ui.render_citation(st, c, lang, knowledge)
    st.caption(delivery["note"])


@st.cache_data(max_entries=256, show_spinner=False)
def _caller_wav(text: str, lang: str, anger) -> bytes:
    from calmcall.tts import load_tts

    return load_tts().speak(text, lang, anger)


def caller_audio(text: str, lang: str, anger=None, autoplay: bool = False) -> None:
    """The caller's line spoken (espeak-ng, an angrier preset for a higher anger); without
    espeak-ng the page says so once and stays text-only."""
    from calmcall.tts import TTSUnavailable, available

    if not available():
        if not st.session_state.get("_caller_voice_warned"):
            st.session_state["_caller_voice_warned"] = True
            st.info(t("caller_voice_missing", lang), icon=":material/volume_off:")
        return
    try:
        st.audio(_caller_wav(text, lang, anger), format="audio/wav", autoplay=autoplay)
    except (TTSUnavailable, ValueError) as exc:
        log.warning("caller voice failed: %s", exc)

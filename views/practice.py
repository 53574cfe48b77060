"""Practice: pick a question, write an answer, read the feedback (summary first), try again.

Embedded in a portal (``?embed=true&token=…``) this is the only page, bound to the token's
learner; stand-alone, attempts are saved for a learner who opened their name."""

from __future__ import annotations

import random
import time

import streamlit as st

from calmcall import scorm, ui
from calmcall.inputs import InputError, clean_text
from views import common
from views._voice import clear_voice, delivery_panel, voice_input

t = ui.t


def _random_question(ids: list[str]) -> None:
    """Another question, and a clean slate: the previous answer and its feedback go."""
    others = [q for q in ids if q != st.session_state.get("qid")] or ids
    st.session_state.qid = random.choice(others)
    st.session_state.answer = ""
    st.session_state.feedback = None
    st.session_state.practice_error = None
    st.session_state.timer_start = None


def _start_timer() -> None:
    st.session_state.timer_start = time.time()


def _reset_timer() -> None:
    st.session_state.timer_start = None


def _try_again() -> None:
    st.session_state.feedback = None
    clear_voice()
    if st.session_state.get("timer_on"):
        _start_timer()


def timer_panel(lang: str) -> None:
    c_toggle, c_minutes, c_button = st.columns([5, 2, 3], vertical_alignment="bottom")
    on = c_toggle.toggle(t("timer_toggle", lang), key="timer_on", help=t("timer_help", lang))
    if not on:
        return
    running = st.session_state.get("timer_start") is not None
    c_minutes.number_input(t("timer_minutes", lang), min_value=1, max_value=15, step=1, key="timer_minutes",
                           disabled=running)
    if not running:
        c_button.button(t("timer_start", lang), icon=":material/timer:", on_click=_start_timer, width="stretch")
        return
    c_button.button(t("timer_reset", lang), icon=":material/timer_off:", on_click=_reset_timer, width="stretch")

    @st.fragment(run_every=1.0)
    def countdown():
        start = st.session_state.get("timer_start")
        if start is None:
            return
        left_s = st.session_state.timer_minutes * 60 - (time.time() - start)
        if left_s > 0:
            st.info(t("timer_left", lang, left=ui.format_seconds(left_s)), icon=":material/timer:")
        else:
            st.warning(t("timer_up", lang), icon=":material/alarm:")

    countdown()


def submit(coach) -> None:
    """The "Get feedback" callback: grade (feedback in the UI language), record, and keep the
    feedback (or the reason there is none) in the session; it runs before the page is drawn,
    so the timer, the feedback and any message all reflect this submission. The answer box
    is left as is. Who and what are read now, not when the button was drawn: a name typed
    just before the click arrives together with the click."""
    from calmcall.storage import StoreUnavailable  # SQLAlchemy: not needed to draw the page

    lang = st.session_state.get("lang", "en")
    qid = st.session_state.get("qid")
    org_id, learner = common.current_learner(coach)
    answer = st.session_state.get("answer") or ""
    st.session_state.practice_error = None
    if not answer.strip():
        st.session_state.practice_error = t("answer_empty", lang)
        return
    start = st.session_state.get("timer_start") if st.session_state.get("timer_on") else None
    elapsed = time.time() - start if start else None
    try:
        report = coach.grade(answer, qid, feedback_lang=lang)
        graded_text, _ = clean_text(answer, "answer", coach.settings.max_answer_chars)
    except InputError as exc:
        st.session_state.practice_error = t("answer_invalid", lang, reason=ui.md_escape(str(exc)))
        return
    data = report.model_dump(mode="json")
    history = st.session_state.setdefault("history", {})
    previous = history.get((learner, qid))
    saved = None
    if learner and org_id is not None:
        try:
            if previous is None and not scorm.sealed(st):  # a new session: compare with the stored attempt
                earlier = [a for a in coach.store.attempts(org_id, learner) if a["question"] == qid]
                if earlier:
                    previous = coach.store.attempt_report(org_id, earlier[-1]["id"])
            coach.store.record_attempt(org_id, learner, data, answer)
            saved = True
        except StoreUnavailable:
            saved = False
    history[(learner, qid)] = data
    st.session_state.feedback = {
        "qid": qid,
        "lang": lang,
        "answer": answer,
        "previous": previous,
        "report": data,
        "change": ui.compare(previous, data),
        "graded_text": graded_text,
        "elapsed": elapsed,
        "limit": st.session_state.get("timer_minutes", 0) * 60 if elapsed is not None else None,
        "too_long": ui.char_count_note(answer, coach.settings.max_answer_chars),
        "saved": saved,
    }
    st.session_state.timer_start = None
    st.session_state.practice_scroll = True  # a new result: bring its summary into view once


def relabel(coach, fb: dict, lang: str) -> dict:
    """The same feedback in another UI language (the learner switched it): graded again,
    not recorded again; the sentence vectors are cached, so this is quick."""
    try:
        data = coach.grade(fb["answer"], fb["qid"], feedback_lang=lang).model_dump(mode="json")
    except InputError:
        return fb
    fb = {**fb, "lang": lang, "report": data, "change": ui.compare(fb.get("previous"), data)}
    st.session_state.feedback = fb
    return fb


def page() -> None:

    ctx = common.context()
    coach, lang = ctx.coach, ctx.lang
    st.title(t("practice_title", lang))
    st.caption(t("practice_intro", lang))
    questions = coach.catalogue.questions
    ids = list(questions)
    if st.session_state.get("qid") not in questions:
        st.session_state.qid = ids[0]
    col_q, col_r = st.columns([4, 1], vertical_alignment="bottom")
    qid = col_q.selectbox(t("question_label", lang), ids, key="qid",
                          format_func=lambda q: ui.question_text(questions[q], lang))
    col_r.button(t("random_question", lang), icon=":material/casino:", on_click=_random_question, args=(ids,),
                 width="stretch", key="random")
    st.markdown(f"### :material/mic: {ui.md_escape(ui.question_text(questions[qid], lang))}")
    timer_panel(lang)

    # Speak the answer: the transcript lands in the box below, to be corrected before grading
    voice_input(coach, lang, target="answer", spoken_languages=coach.speech.languages)
    # No st.form: the text is committed as it is typed, so it survives a page switch.
    st.text_area(t("answer_label", lang), key="answer", height=220, placeholder=t("answer_placeholder", lang))
    st.button(t("submit", lang), type="primary", icon=":material/grading:", key="submit",
              on_click=submit, args=(coach,))
    error = st.session_state.pop("practice_error", None)
    if error:  # bad input: say why, right under the button; the text stays in the box
        st.error(error, icon=":material/edit_note:")
    if not ctx.learner:
        st.caption(t("locked_hint", lang) if ctx.typed else t("not_saved_hint", lang))
    if error:
        return
    fb = st.session_state.get("feedback")
    if fb and fb["qid"] == qid and fb.get("lang", lang) != lang:
        fb = relabel(coach, fb, lang)
    if fb and fb["qid"] == qid:
        if fb.get("saved"):
            st.caption(":material/cloud_done: " + t("saved", lang))
        elif fb.get("saved") is False:
            st.error(t("store_unavailable", lang))
        ui.render_feedback(st, fb, lang, coach.knowledge, coach.catalogue)
        if st.session_state.pop("practice_scroll", False):
            common.scroll_into_view("cc_summary")
        delivery_panel(lang, knowledge=coach.knowledge)  # beside the score, not mixed into it
        scorm.notify_lms(st, fb)  # opened by a SCORM package: the score goes to the LMS
        st.button(t("try_again", lang), icon=":material/replay:", on_click=_try_again, type="primary",
                  key="try_again")


page()

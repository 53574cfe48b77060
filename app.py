"""CalmCall Coach: the Streamlit app (``streamlit run app.py``).

A thin view over the library. Every score, step, quote and answer comes from
``calmcall.coach.Coach``; UI strings come from ``calmcall/ui_text.yaml`` through
``calmcall.ui``. Models and indexes load once per server process (``st.cache_resource``);
everything per user lives in ``st.session_state``.

Pages: Practice, Ask, Library, Progress. In an HR portal the app is opened as
``?embed=true&token=…`` (a signed, short-lived token from the API): Practice only, bound
to the token's learner and organisation. ``?lang=sv`` picks the starting UI language.
"""

from __future__ import annotations

import logging
import random
import time

import streamlit as st

from calmcall import ui
from calmcall.config import get_settings
from calmcall.inputs import InputError, clean_text
from calmcall.storage import LOCAL_ORG, StoreUnavailable

log = logging.getLogger("calmcall.app")
t = ui.t
WARM_UP = (
    "I would stay calm, listen to the whole story and apologise.",
    "Jag skulle lyssna lugnt och be om ursäkt.",
    "Nyugodt maradnék és meghallgatnám a hívót.",
    "Resterei calmo e ascolterei il cliente.",
    "Ik blijf kalm en luister naar de klant.",
)


@st.cache_resource(show_spinner=False)
def load_coach(settings_key: str):
    """The one Coach of this server process (per settings), warmed: models and index loaded."""
    from calmcall.coach import Coach

    coach = Coach(get_settings())
    coach.warm()
    for sample in WARM_UP:  # the first few calls pay one-off costs; let start-up pay them
        coach.grade(sample)
    coach.ask(WARM_UP[0])
    try:
        _ = coach.store  # migrate now; if the database is down, pages say so when they need it
    except StoreUnavailable as exc:
        log.warning("attempts store unavailable at start-up: %s", exc)
    return coach


def get_coach(lang: str):
    try:
        with st.spinner(t("loading", lang)):
            return load_coach(get_settings().model_dump_json())
    except Exception as exc:  # missing knowledge files, a corrupt index: say so, no traceback
        log.exception("coach failed to load")
        stop_with_error(t("coach_unavailable", lang), str(exc))


def stop_with_error(message: str, detail: str = "", embed: bool = False) -> None:
    st.title("CalmCall Coach")
    st.error(message, icon=":material/lock:" if embed else ":material/error:")
    if detail:
        st.text(detail)
    st.stop()


# -- learners and organisations ---------------------------------------------------------
def local_org_id(coach) -> int | None:
    """The organisation of learners who type their name (None while the store is down)."""
    if st.session_state.get("org_id") is None:
        try:
            st.session_state.org_id = coach.store.organisation(LOCAL_ORG).id
        except StoreUnavailable:
            return None
    return st.session_state.org_id


def current_learner(coach) -> tuple[int | None, str]:
    """(organisation id, learner id) of this session: the embed token's, else the typed name."""
    binding = st.session_state.get("embed")
    if binding:
        return binding["org_id"], binding["learner"]
    try:
        learner = ui.normalize_learner(st.session_state.get("learner_raw"))
    except ValueError:
        return None, ""
    return (local_org_id(coach), learner) if learner else (None, "")


def embed_binding(coach, token: str, lang: str) -> dict:
    """Verify the embed token once per session; refuse the page if it is not valid."""
    cached = st.session_state.get("embed")
    if cached and cached["token"] == token:
        return cached
    if not token:
        stop_with_error(t("embed_missing_token", lang), embed=True)
    error, detail = None, ""
    try:
        from calmcall.api.tokens import TokenError, verify_token
    except ImportError:
        error = t("embed_unavailable", lang)
    else:
        try:
            org, learner = verify_token(coach.store, token)
        except TokenError as exc:
            reason = getattr(exc, "reason", "")
            key = {"expired": "embed_expired", "forged": "embed_forged"}.get(reason, "embed_refused")
            error, detail = t(key, lang), str(exc)
        except StoreUnavailable:
            error = t("store_unavailable", lang)
        except Exception:  # a malformed token must never show a traceback
            log.exception("embed token check failed")
            error = t("embed_refused", lang)
    if error:
        stop_with_error(error, detail, embed=True)
    org_id = org["id"] if isinstance(org, dict) else org.id
    org_name = org["name"] if isinstance(org, dict) else getattr(org, "name", "")
    st.session_state.embed = {"token": token, "org_id": org_id, "org": org_name, "learner": str(learner)}
    return st.session_state.embed


# -- practice ---------------------------------------------------------------------------
def _random_question(ids: list[str]) -> None:
    others = [q for q in ids if q != st.session_state.get("qid")] or ids
    st.session_state.qid = random.choice(others)
    st.session_state.feedback = None


def _start_timer() -> None:
    st.session_state.timer_start = time.time()


def _reset_timer() -> None:
    st.session_state.timer_start = None


def _try_again() -> None:
    st.session_state.feedback = None
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
    """The "Get feedback" callback: grade, record, and keep the feedback (or the reason
    there is none) in the session; it runs before the page is drawn, so the timer, the
    feedback and any message all reflect this submission. The answer box is left as is.
    Who and what are read now, not when the button was drawn: a name typed just before
    the click arrives together with the click."""
    lang = st.session_state.get("lang", "en")
    qid = st.session_state.get("qid")
    org_id, learner = current_learner(coach)
    answer = st.session_state.get("answer") or ""
    st.session_state.practice_error = None
    if not answer.strip():
        st.session_state.practice_error = t("answer_empty", lang)
        return
    start = st.session_state.get("timer_start") if st.session_state.get("timer_on") else None
    elapsed = time.time() - start if start else None
    try:
        report = coach.grade(answer, qid)
        graded_text, _ = clean_text(answer, "answer", coach.settings.max_answer_chars)
    except InputError as exc:
        st.session_state.practice_error = t("answer_invalid", lang, reason=ui.md_escape(str(exc)))
        return
    data = report.model_dump(mode="json")
    history = st.session_state.setdefault("history", {})
    previous = history.get(qid)
    saved = None
    if learner and org_id is not None:
        try:
            if previous is None:  # a new session: compare with the learner's stored attempt
                earlier = [a for a in coach.store.attempts(org_id, learner) if a["question"] == qid]
                if earlier:
                    previous = coach.store.attempt_report(org_id, earlier[-1]["id"])
            coach.store.record_attempt(org_id, learner, data, answer)
            saved = True
        except StoreUnavailable:
            saved = False
    history[qid] = data
    st.session_state.feedback = {
        "qid": qid,
        "report": data,
        "change": ui.compare(previous, data),
        "graded_text": graded_text,
        "elapsed": elapsed,
        "limit": st.session_state.get("timer_minutes", 0) * 60 if elapsed is not None else None,
        "too_long": ui.char_count_note(answer, coach.settings.max_answer_chars),
        "saved": saved,
    }
    st.session_state.timer_start = None


def practice_page(coach, lang: str, org_id: int | None, learner: str) -> None:
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
                 width="stretch")
    st.markdown(f"### :material/mic: {ui.md_escape(ui.question_text(questions[qid], lang))}")
    timer_panel(lang)

    # No st.form: the text is committed as it is typed, so it survives a page switch.
    st.text_area(t("answer_label", lang), key="answer", height=220, placeholder=t("answer_placeholder", lang))
    st.button(t("submit", lang), type="primary", icon=":material/grading:", key="submit",
              on_click=submit, args=(coach,))
    error = st.session_state.pop("practice_error", None)
    if error:  # bad input: say why, right under the button; the text stays in the box
        st.error(error, icon=":material/edit_note:")
    if not learner:
        st.caption(t("not_saved_hint", lang))
    if error:
        return
    fb = st.session_state.get("feedback")
    if fb and fb["qid"] == qid:
        if fb.get("saved"):
            st.caption(":material/cloud_done: " + t("saved", lang))
        elif fb.get("saved") is False:
            st.error(t("store_unavailable", lang))
        ui.render_feedback(st, fb, lang, coach.knowledge.articles)
        st.button(t("try_again", lang), icon=":material/replay:", on_click=_try_again, type="primary",
                  key="try_again")


# -- ask --------------------------------------------------------------------------------
def _clear_chat() -> None:
    st.session_state.chat = []


def ask_page(coach, lang: str) -> None:
    st.title(t("ask_title", lang))
    st.caption(t("ask_intro", lang))
    chat = st.session_state.setdefault("chat", [])
    prompt = st.chat_input(t("ask_placeholder", lang))  # drawn at the bottom wherever it is called
    if chat or prompt:
        st.button(t("clear_chat", lang), icon=":material/add_comment:", on_click=_clear_chat)
    articles = coach.knowledge.articles
    for msg in chat:
        with st.chat_message(msg["role"]):
            if msg["role"] == "user":
                st.text(msg["content"])
            else:
                ui.render_ask_result(st, msg["result"], lang, articles)
    if prompt is None:
        if not chat:
            st.info(t("ask_examples", lang), icon=":material/lightbulb:")
        return
    with st.chat_message("user"):
        st.text(prompt)
    history = [{"role": m["role"], "content": m["content"]} for m in chat]
    with st.chat_message("assistant"):
        try:
            with st.spinner(t("thinking", lang)):
                result = coach.ask(prompt, history=history)
        except InputError as exc:
            st.error(t("question_invalid", lang, reason=ui.md_escape(str(exc))))
            return
        data = result.model_dump(mode="json")
        ui.render_ask_result(st, data, lang, articles)
    chat.append({"role": "user", "content": prompt})
    chat.append({"role": "assistant", "content": result.answer, "result": data})


# -- library ----------------------------------------------------------------------------
def library_page(coach, lang: str) -> None:
    from calmcall.catalogue import conflict_note

    st.title(t("library_title", lang))
    st.caption(t("library_intro", lang))
    knowledge, catalogue = coach.knowledge, coach.catalogue
    arts = knowledge.articles
    tab_articles, tab_steps, tab_conflicts = st.tabs(
        [t("lib_articles", lang), t("lib_steps", lang), t("lib_conflicts", lang)]
    )
    with tab_articles:
        aid = st.selectbox(
            t("article", lang), list(arts), key="lib_article",
            format_func=lambda a: f"{a} · {arts[a].title} ({ui.lang_name(arts[a].language, lang)})",
        )
        art = arts[aid]
        other = lang if lang != art.language else "en"
        st.markdown(f"### {ui.md_escape(art.title)}")
        st.caption(" · ".join(x for x in (ui.md_escape(art.title_en), ui.md_escape(art.author)) if x))
        head_l, head_r = st.columns(2)
        head_l.markdown(f"**{t('original', lang)} · {ui.lang_name(art.language, lang)}**")
        head_r.markdown(f"**{t('translation', lang)} · {ui.lang_name(other, lang)}**")
        heading = None
        for p in knowledge.by_article.get(aid, []):
            if p.kind == "meta":
                continue
            if p.heading and p.heading != heading:
                heading = p.heading
                left, right = st.columns(2)
                left.markdown(f"##### {ui.md_escape(p.heading)}")
                right.markdown(f"##### {ui.md_escape(p.heading_in(other))}")
            left, right = st.columns(2)
            bullet = "• " if p.kind == "bullet" else ""
            left.markdown(bullet + ui.md_escape(p.text))
            fallback = other not in p.translations and other != p.language
            right.markdown(bullet + ui.md_escape(p.text_in(other)) + (f" *({ui.lang_name('en', lang)})*" if fallback else ""))
            left.caption(p.id)
    with tab_steps:
        for category in dict.fromkeys(s.category for s in catalogue.steps.values()):
            st.markdown(f"#### {t('cat_' + category, lang)}")
            for step in (s for s in catalogue.steps.values() if s.category == category):
                with st.expander(f"{step.t('title', lang)}"):
                    st.markdown(ui.md_escape(step.t("description", lang)))
                    st.caption(t("sources_list", lang, ids=", ".join(step.passages)))
                    for pid in step.passages:
                        ui.render_citation(st, knowledge.cite(pid, lang).model_dump(), lang, arts)
        st.markdown(f"#### {t('anti_patterns', lang)}")
        for a in catalogue.anti_patterns.values():
            with st.expander(a.t("title", lang), icon=":material/warning:"):
                st.markdown(ui.md_escape(a.t("description", lang)))
                for pid in a.passages:
                    ui.render_citation(st, knowledge.cite(pid, lang).model_dump(), lang, arts)
    with tab_conflicts:
        st.caption(t("conflicts_intro", lang))
        for c in catalogue.conflicts.values():
            ui.render_conflict(st, conflict_note(c, knowledge, lang).model_dump(), lang, arts)


# -- progress ---------------------------------------------------------------------------
def progress_page(coach, lang: str, org_id: int | None, learner: str) -> None:
    import altair as alt
    import pandas as pd

    st.title(t("progress_title", lang))
    if not learner:
        st.info(t("progress_need_learner", lang), icon=":material/person:")
        return
    if org_id is None:
        return
    try:
        attempts = coach.store.attempts(org_id, learner)
    except Exception:  # StoreUnavailable or a database error: say so, no traceback
        log.exception("reading attempts failed")
        st.error(t("store_unavailable", lang))
        return
    if not attempts:
        st.info(t("progress_empty", lang), icon=":material/edit_note:")
        return
    questions = coach.catalogue.questions
    scores = [a["score"] for a in attempts]
    m1, m2, m3, m4 = st.columns(4)
    m1.metric(t("attempts", lang), len(attempts))
    m2.metric(t("best_score", lang), max(scores))
    m3.metric(t("latest_score", lang), scores[-1],
              delta=None if len(scores) < 2 else f"{scores[-1] - scores[-2]:+d}")
    m4.metric(t("average_score", lang), round(sum(scores) / len(scores)))

    def qlabel(qid: str) -> str:
        q = questions.get(qid)
        return ui.question_text(q, lang) if q else qid

    df = pd.DataFrame({
        "n": range(1, len(attempts) + 1),
        "score": scores,
        "question": [qlabel(a["question"]) for a in attempts],
        "date": [(a.get("created_at") or "")[:16].replace("T", " ") for a in attempts],
    })
    st.markdown(f"#### {t('progress_chart', lang)}")
    chart = (
        alt.Chart(df)
        .mark_line(point=alt.OverlayMarkDef(size=70))
        .encode(
            x=alt.X("n:O", title=t("attempt_no", lang)),
            y=alt.Y("score:Q", title=t("score", lang), scale=alt.Scale(domain=[0, 100])),
            color=alt.Color("question:N", title=t("question_label", lang), legend=alt.Legend(orient="bottom",
                                                                                               labelLimit=400)),
            tooltip=[alt.Tooltip("date:N", title=t("date", lang)), alt.Tooltip("question:N", title=t("question_label", lang)),
                     alt.Tooltip("score:Q", title=t("score", lang))],
        )
    )
    st.altair_chart(chart)

    st.markdown(f"#### {t('mastery', lang)}")
    st.caption(t("mastery_intro", lang))
    rows = ui.mastery(attempts, coach.catalogue, lang)
    st.dataframe(
        pd.DataFrame([{
            t("step", lang): r["title"],
            t("mastery_rate", lang): r["rate"],
            t("covered_times", lang): f"{r['covered']}/{r['expected']}",
            t("latest", lang): r["latest"],
        } for r in rows]),
        hide_index=True,
        column_config={
            t("mastery_rate", lang): st.column_config.ProgressColumn(min_value=0.0, max_value=1.0, format="percent"),
            t("latest", lang): st.column_config.CheckboxColumn(),
        },
    )

    st.markdown(f"#### {t('history', lang)}")
    st.dataframe(
        pd.DataFrame({
            t("date", lang): df["date"],
            t("question_label", lang): df["question"],
            t("score", lang): df["score"],
            t("covered_steps", lang): [len(a.get("covered") or []) for a in attempts],
        }),
        hide_index=True,
    )
    st.download_button(t("download_csv", lang), data=ui.attempts_csv(attempts),
                       file_name=ui.csv_filename(learner), mime="text/csv", icon=":material/download:", on_click="ignore")


# -- the app ----------------------------------------------------------------------------
def _go_to(nav_key: str) -> None:
    st.session_state.page = st.session_state[nav_key]


# Widget values that must survive a visit to another page (Streamlit forgets the state of
# widgets that are not drawn in a run): the answer being written, the question, the timer.
KEEP = ("answer", "qid", "timer_on", "timer_minutes", "lib_article", "learner_raw")


def keep_widget_state() -> None:
    st.session_state.setdefault("timer_minutes", 2)
    for key in KEEP:
        if key in st.session_state:
            st.session_state[key] = st.session_state[key]


def main() -> None:
    keep_widget_state()
    params = st.query_params
    # Streamlit keeps ?embed=true for itself (st.context.is_embedded); a token alone also
    # binds the page to its learner, so a token is never ignored.
    embedded = bool(st.context.is_embedded) or "token" in params
    if "lang" not in st.session_state:
        st.session_state.lang = ui.pick_language(params.get("lang"))
    lang = st.session_state.lang
    page = st.session_state.setdefault("page", "practice") if not embedded else "practice"
    st.set_page_config(page_title="CalmCall Coach", page_icon=":material/support_agent:",
                       layout="wide" if page == "library" else "centered",
                       initial_sidebar_state="collapsed" if embedded else "auto")
    st.html(ui.CSS)
    coach = get_coach(lang)

    if embedded:
        binding = embed_binding(coach, params.get("token", ""), lang)
        left, right = st.columns([3, 1], vertical_alignment="center")
        left.text(t("embed_signed_in", lang, learner=binding["learner"]))
        right.selectbox(t("language", lang), ui.UI_LANGS, key="lang", format_func=ui.NATIVE_NAMES.get, label_visibility="collapsed")
        practice_page(coach, lang, binding["org_id"], binding["learner"])
        return

    st.session_state.pop("embed", None)  # a session is bound to a token only while it carries one
    with st.sidebar:
        st.markdown("## :material/support_agent: CalmCall Coach")
        st.selectbox(t("language", lang), ui.UI_LANGS, key="lang", format_func=ui.NATIVE_NAMES.get)
        # One radio per UI language: its labels change with the language, and a browser
        # keeps a radio's choice by label, so a shared widget would lose the selection.
        nav_key = f"nav_{lang}"
        st.radio(t("page", lang), ui.PAGES, index=ui.PAGES.index(page), key=nav_key, on_change=_go_to, args=(nav_key,),
                 format_func=lambda p: f"{ui.PAGE_ICONS[p]} {t('page_' + p, lang)}")
        st.text_input(t("learner_label", lang), key="learner_raw",
                      placeholder=t("learner_placeholder", lang), help=t("learner_help", lang))
        try:
            learner = ui.normalize_learner(st.session_state.get("learner_raw"))
        except ValueError:
            st.error(t("learner_too_long", lang, n=ui.MAX_LEARNER_CHARS))
            learner = ""
        st.divider()
        st.caption(t("about", lang))
    org_id = local_org_id(coach) if learner else None
    if learner and org_id is None:
        st.sidebar.error(t("store_unavailable", lang))
    if page == "ask":
        ask_page(coach, lang)
    elif page == "library":
        library_page(coach, lang)
    elif page == "progress":
        progress_page(coach, lang, org_id, learner)
    else:
        practice_page(coach, lang, org_id, learner)


main()

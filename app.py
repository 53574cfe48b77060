"""CalmCall Coach: the Streamlit app (``streamlit run app.py``), the router.

Each page is one file under ``views/`` (Practice, Ask, Library, Progress; Role-play when
``views/roleplay.py`` exists); what they share (the Coach, the learner) is ``views/common.py``.
Every score, step, quote and answer comes from ``calmcall.coach.Coach``; UI strings come from
``calmcall/ui_text.yaml`` through ``calmcall.ui``. Models and indexes load once per server
process (``st.cache_resource``); everything per user lives in ``st.session_state``.

In an HR portal the app is opened as ``?embed=true&token=…`` (a signed, short-lived token
from the API): Practice (and Role-play) only, bound to the token's learner and organisation.
``?lang=sv`` picks the starting UI language.

``streamlit run app.py`` finds ``app`` below (an ``st.App``, Streamlit's ASGI app) and serves
it: that is how every response gets the headers Streamlit cannot set itself (CSP
``frame-ancestors`` from ``CALMCALL_FRAME_ANCESTORS``, see ``calmcall/webapp.py``). Each
session then runs this file as the page script (``__main__``), which draws the router.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from calmcall import ui, webapp

HERE = Path(__file__).resolve().parent
t = ui.t
ROLEPLAY = "roleplay"
ROLEPLAY_ICON = ":material/theater_comedy:"

# Widget values that must survive a visit to another page (Streamlit forgets the state of
# widgets that are not drawn in a run): the answer being written, the question, the timer.
KEEP = ("answer", "qid", "timer_on", "timer_minutes", "lib_article", "learner_raw")


def keep_widget_state() -> None:
    st.session_state.setdefault("timer_minutes", 2)
    for key in KEEP:
        if key in st.session_state:
            st.session_state[key] = st.session_state[key]


def page_title(name: str, lang: str) -> str:
    title = t(f"page_{name}", lang)
    return "Role-play" if title == f"page_{name}" else title  # until the role-play strings exist


def pages(lang: str, embedded: bool) -> list:
    """The pages of this session: all of them, or in a portal only what a learner practises."""
    names = ["practice"] if embedded else list(ui.PAGES)
    if (HERE / "views" / f"{ROLEPLAY}.py").is_file():
        names.insert(1, ROLEPLAY)
    return [
        st.Page(f"views/{name}.py", title=page_title(name, lang), url_path=name, default=name == "practice",
                icon=ui.PAGE_ICONS.get(name, ROLEPLAY_ICON))
        for name in names
    ]


def main() -> None:
    from views import common

    keep_widget_state()
    params = st.query_params
    # Streamlit keeps ?embed=true for itself (st.context.is_embedded); a token alone also
    # binds the page to its learner, so a token is never ignored.
    embedded = bool(st.context.is_embedded) or "token" in params
    if "lang" not in st.session_state:
        st.session_state.lang = ui.pick_language(params.get("lang"))
    lang = st.session_state.lang
    st.set_page_config(page_title="CalmCall Coach", page_icon=":material/support_agent:", layout="centered",
                       initial_sidebar_state="collapsed" if embedded else "auto")
    st.html(ui.CSS)
    coach = common.get_coach(lang)

    if embedded:
        binding = common.embed_binding(coach, params.get("token", ""), lang)
        from calmcall.scorm import apply_launch

        apply_launch(st, coach, binding)  # opened by a SCORM package: its question, its LMS channel
        left, right = st.columns([3, 1], vertical_alignment="center")
        left.text(t("embed_signed_in", lang, learner=binding["learner"]))
        right.selectbox(t("language", lang), ui.UI_LANGS, key="lang", format_func=ui.NATIVE_NAMES.get,
                        label_visibility="collapsed")
        available = pages(lang, embedded=True)
        nav = st.navigation(available, position="top" if len(available) > 1 else "hidden")
    else:
        st.session_state.pop("embed", None)  # a session is bound to a token only while it carries one
        nav = st.navigation(pages(lang, embedded=False), position="sidebar")
        with st.sidebar:
            st.markdown("## :material/support_agent: CalmCall Coach")
            st.selectbox(t("language", lang), ui.UI_LANGS, key="lang", format_func=ui.NATIVE_NAMES.get)
            common.learner_panel(coach, lang)
            st.divider()
            st.caption(t("about", lang))
    ctx = common.prepare(coach, lang, embedded)
    if not embedded and ctx.learner and ctx.org_id is None:
        st.sidebar.error(t("store_unavailable", lang))
    common.loading_note(lang)
    nav.run()


class ForegroundMiddleware:
    """Counts every HTTP request in progress (the page, its scripts and styles) as work
    for a visitor, which the background warm-up lets go first (``calmcall.coach.PageRuns``).
    WebSockets are not counted: a session's socket stays open; its script runs are."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        from calmcall.coach import PAGE_RUNS

        with PAGE_RUNS.drawing():
            return await self.app(scope, receive, send)


if __name__ == "__main__":  # a session's script run
    from views import common as _common

    with _common.drawing():  # the background warm-up waits while a page is drawn
        main()
else:  # imported by `streamlit run app.py`: the server
    from views.common import start_warm_up

    # models and index load now, in the background, not on the first visitor; the xAPI
    # sender starts once the attempts store is migrated (views/common.start_warm_up)
    start_warm_up(server=True)
    ui.texts()  # read now, not by the first page run

    from starlette.middleware import Middleware

    app = st.App(__file__, middleware=[Middleware(ForegroundMiddleware), *webapp.middleware()])

"""Ask: a trainer's questions answered from the articles, every line citing its sources
(numbered, with the article's title), follow-ups searched together with the question before."""

from __future__ import annotations

import streamlit as st

from calmcall import ui
from calmcall.inputs import InputError
from views import common

t = ui.t


def _clear_chat() -> None:
    st.session_state.chat = []


def page() -> None:
    ctx = common.context()
    coach, lang = ctx.coach, ctx.lang
    st.title(t("ask_title", lang))
    st.caption(t("ask_intro", lang))
    chat = st.session_state.setdefault("chat", [])
    prompt = st.chat_input(t("ask_placeholder", lang))  # drawn at the bottom wherever it is called
    if chat or prompt:
        st.button(t("clear_chat", lang), icon=":material/add_comment:", on_click=_clear_chat)
    knowledge = coach.knowledge
    for msg in chat:
        with st.chat_message(msg["role"]):
            if msg["role"] == "user":
                st.text(msg["content"])
            else:
                ui.render_ask_result(st, msg["result"], lang, knowledge)
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
        ui.render_ask_result(st, data, lang, knowledge)
    chat.append({"role": "user", "content": prompt})
    chat.append({"role": "assistant", "content": result.answer, "result": data})


page()

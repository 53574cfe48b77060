"""Library: the five articles side by side with our translations, the steps catalogue with
the passages that teach each step, and the conflicts between the articles."""

from __future__ import annotations

import streamlit as st

from calmcall import ui
from calmcall.catalogue import conflict_note
from views import common

t = ui.t


def page() -> None:
    st.set_page_config(layout="wide")
    ctx = common.context()
    coach, lang = ctx.coach, ctx.lang
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
            right.markdown(bullet + ui.md_escape(p.text_in(other))
                           + (f" *({ui.lang_name('en', lang)})*" if fallback else ""))
            left.caption(p.id)
    with tab_steps:
        for category in dict.fromkeys(s.category for s in catalogue.steps.values()):
            st.markdown(f"#### {t('cat_' + category, lang)}")
            for step in (s for s in catalogue.steps.values() if s.category == category):
                with st.expander(f"{step.t('title', lang)}"):
                    st.markdown(ui.md_escape(step.t("description", lang)))
                    for pid in step.passages:
                        ui.render_citation(st, knowledge.cite(pid, lang).model_dump(), lang, knowledge)
        st.markdown(f"#### {t('anti_patterns', lang)}")
        for a in catalogue.anti_patterns.values():
            with st.expander(a.t("title", lang), icon=":material/warning:"):
                st.markdown(ui.md_escape(a.t("description", lang)))
                for pid in a.passages:
                    ui.render_citation(st, knowledge.cite(pid, lang).model_dump(), lang, knowledge)
    with tab_conflicts:
        st.caption(t("conflicts_intro", lang))
        for c in catalogue.conflicts.values():
            ui.render_conflict(st, conflict_note(c, knowledge, lang).model_dump(), lang, knowledge)


page()

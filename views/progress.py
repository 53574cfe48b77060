"""Progress: a learner's own attempts (score chart, per-step mastery, history, CSV). Shown
only to the session that opened the learner's name (or the embed token's / host's learner)."""

from __future__ import annotations

import logging

import streamlit as st

from calmcall import ui
from views import common

log = logging.getLogger("calmcall.app")
t = ui.t


def page() -> None:
    import altair as alt
    import pandas as pd

    ctx = common.context()
    coach, lang, org_id, learner = ctx.coach, ctx.lang, ctx.org_id, ctx.learner
    st.title(t("progress_title", lang))
    if not learner:
        if ctx.typed:
            st.info(t("progress_locked", lang), icon=":material/lock:")
        else:
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
            color=alt.Color("question:N", title=t("question_label", lang),
                            legend=alt.Legend(orient="bottom", labelLimit=400)),
            tooltip=[alt.Tooltip("date:N", title=t("date", lang)),
                     alt.Tooltip("question:N", title=t("question_label", lang)),
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
                       file_name=ui.csv_filename(learner), mime="text/csv", icon=":material/download:",
                       on_click="ignore")


page()

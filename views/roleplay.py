"""Role-play: practise the call itself. Pick a caller (with its difficulty), answer them in
your own words, watch the anger meter and the rule behind each change, take a hint (it
costs points), and read the debrief at the end; replay any stored call.

Every reaction, score and line comes from the Coach's role-player (``calmcall.roleplay``);
this page only draws. The call lives in the session as its state (``Call.to_state``) and,
for a learner who opened their name (or an embed token's learner), in the attempts store
after every turn, so it can be replayed later (and shows in progress reports)."""

from __future__ import annotations

import logging
import secrets

import streamlit as st

from calmcall import ui
from calmcall.roleplay import CallOver, roleplayer
from calmcall.storage import StoreUnavailable, TurnConflict
from views import common

log = logging.getLogger("calmcall.app")
t = ui.t
AVATARS = {"caller": ":material/support_agent:", "trainee": ":material/person:"}


# -- the call in this session ---------------------------------------------------------
def _call(coach, key: str = "rp_state"):
    state = st.session_state.get(key)
    return roleplayer(coach).resume(state) if state else None


def _keep(call) -> None:
    st.session_state.rp_state = call.to_state()


def _store_target(coach):
    org_id, learner = common.current_learner(coach)
    return (org_id, learner) if learner and org_id is not None else (None, "")


def _start(coach, sid: str | None = None) -> None:
    """The "start" callback: a new call (stored for a learner who may keep calls)."""
    lang = st.session_state.get("lang", "en")
    sid = sid or st.session_state.get("rp_scenario")
    call_lang = st.session_state.get("rp_lang") or lang
    call = roleplayer(coach).start(sid, call_lang)
    st.session_state.rp_hint = None
    st.session_state.rp_replay = None
    st.session_state.rp_error = None
    st.session_state.rp_call_id = None
    org_id, learner = _store_target(coach)
    if learner:
        try:
            row, _ = coach.store.create_call(org_id, learner, "rp_" + secrets.token_hex(8), call.scenario.id,
                                             call.lang, call.seed, call.to_state(), call.anger)
            st.session_state.rp_call_id = row["id"]
        except StoreUnavailable:
            st.session_state.rp_error = t("store_unavailable", lang)
    _keep(call)


def _save_turn(coach, call, turn) -> None:
    cid = st.session_state.get("rp_call_id")
    if not cid:
        return
    org_id, learner = _store_target(coach)
    if not learner:
        return
    card = call.scorecard() if call.done else None
    try:
        coach.store.record_turn(org_id, cid, turn.n, turn.trainee, turn.caller, turn.anger,
                                turn.model_dump(mode="json"), call.to_state(), "done" if call.done else "open",
                                call.outcome, card.score if card else None,
                                card.model_dump(mode="json") if card else None)
    except TurnConflict:  # the same call open in two tabs: the first turn recorded wins
        log.warning("role-play turn %s of %s was already recorded", turn.n, cid)
    except StoreUnavailable:
        st.session_state.rp_error = t("store_unavailable", st.session_state.get("lang", "en"))


def _send(coach) -> None:
    """The "say it" callback: the caller reacts before the page is drawn."""
    reply = st.session_state.get("rp_reply") or ""
    call = _call(coach)
    if call is None or call.done:
        return
    try:
        turn = call.say(reply)
    except CallOver:
        return
    st.session_state.rp_reply = ""
    st.session_state.rp_hint = None
    _save_turn(coach, call, turn)
    _keep(call)


def _hint(coach) -> None:
    call = _call(coach)
    if call is None or call.done:
        return
    st.session_state.rp_hint = call.hint().model_dump(mode="json")
    cid = st.session_state.get("rp_call_id")
    org_id, learner = _store_target(coach)
    if cid and learner:
        try:
            coach.store.update_call_state(org_id, cid, len(call.turns), call.to_state())
        except StoreUnavailable:
            pass
    _keep(call)


def _end(coach) -> None:
    call = _call(coach)
    if call is None or call.done:
        return
    call.stop()
    cid = st.session_state.get("rp_call_id")
    org_id, learner = _store_target(coach)
    if cid and learner:
        card = call.scorecard()
        try:
            coach.store.finish_call(org_id, cid, len(call.turns), call.to_state(), call.outcome, card.score,
                                    card.model_dump(mode="json"))
        except StoreUnavailable:
            pass
    st.session_state.rp_hint = None
    _keep(call)


def _new() -> None:
    for key in ("rp_state", "rp_call_id", "rp_hint", "rp_replay", "rp_error"):
        st.session_state[key] = None


def _open_replay(coach, cid: str) -> None:
    org_id, learner = _store_target(coach)
    row = coach.store.get_call(org_id, cid) if learner else None
    st.session_state.rp_replay = row["state"] if row else None


# -- drawing ----------------------------------------------------------------------------
def _difficulty(level: str, lang: str) -> str:
    icon = {"easy": ":green[:material/signal_cellular_1_bar:]", "medium": ":orange[:material/signal_cellular_3_bar:]",
            "hard": ":red[:material/signal_cellular_4_bar:]"}[level]
    return f"{icon} {t('roleplay_difficulty_' + level, lang)}"


def picker(coach, lang: str) -> None:
    player = roleplayer(coach)
    infos = {i.id: i for i in player.list(lang)}
    if st.session_state.get("rp_scenario") not in infos:
        st.session_state.rp_scenario = next(iter(infos))
    left, right = st.columns([3, 2], vertical_alignment="bottom")
    sid = left.selectbox(t("roleplay_scenario", lang), list(infos), key="rp_scenario",
                         format_func=lambda s: f"{infos[s].title} · {t('roleplay_difficulty_' + infos[s].difficulty, lang)}")
    if st.session_state.get("rp_lang") not in ui.UI_LANGS:
        st.session_state.rp_lang = lang
    right.selectbox(t("roleplay_call_lang", lang), list(ui.UI_LANGS), key="rp_lang", format_func=ui.NATIVE_NAMES.get)
    info = roleplayer(coach).scenario(sid)
    call_lang = st.session_state.rp_lang
    with st.container(border=True):
        st.markdown(f"**{ui.md_escape(info.t('title', call_lang))}** · {_difficulty(info.difficulty, lang)}")
        st.markdown(ui.md_escape(info.t("persona", call_lang)))
        st.caption(ui.md_escape(info.t("situation", call_lang)))
        st.caption(t("roleplay_start_anger", lang, anger=info.anger, patience=info.patience))
    st.button(t("roleplay_start", lang), type="primary", icon=":material/call:", key="rp_start",
              on_click=_start, args=(coach,))


def meter(call, lang: str) -> None:
    left, right = st.columns([4, 1], vertical_alignment="center")
    left.progress(min(max(call.anger / 10, 0.0), 1.0), text=t("roleplay_anger", lang, anger=call.anger))
    right.caption(t("roleplay_patience", lang, patience=max(call.patience, 0)))


def transcript(call, lang: str, voice: bool = False) -> None:
    with st.chat_message("assistant", avatar=AVATARS["caller"]):
        st.markdown(ui.md_escape(call.opening))
        if voice and not call.turns:
            _speak(call.opening, call.lang, call.scenario.anger)
    for turn in call.turns:
        with st.chat_message("user", avatar=AVATARS["trainee"]):
            st.text(turn.trainee or "…")
        with st.chat_message("assistant", avatar=AVATARS["caller"]):
            st.markdown(ui.md_escape(turn.caller))
            st.caption(ui.md_escape(turn.explanation))
            if voice and turn is call.turns[-1]:
                _speak(turn.caller, call.lang, turn.anger)


def _speak(text: str, lang: str, anger: int) -> None:
    try:
        from views._voice import caller_audio
    except ImportError:  # the voice page helpers are optional
        return
    caller_audio(text, lang, anger, autoplay=True)


def hint_box(lang: str, knowledge) -> None:
    hint = st.session_state.get("rp_hint")
    if not hint:
        return
    with st.container(border=True):
        st.markdown(f":material/lightbulb: **{ui.md_escape(t('roleplay_hint_title', lang, title=hint['title']))}**")
        st.markdown(f"> {ui.md_escape(hint['line'])}")
        if hint.get("why"):
            st.caption(ui.md_escape(hint["why"]))
        if hint.get("passage"):
            ui.render_citation(st, hint["passage"], lang, knowledge)


def debrief(call, lang: str, knowledge) -> None:
    import altair as alt
    import pandas as pd

    card = call.scorecard()
    st.subheader(t("roleplay_debrief", lang))
    c1, c2, c3 = st.columns(3)
    c1.metric(t("score", lang), f"{card.score}/100")
    c2.metric(t("roleplay_outcome", lang), card.outcome_label or "—")
    c3.metric(t("roleplay_turn_count", lang), len(card.turns))
    (st.success if card.success else st.warning)(ui.md_escape(card.summary))
    for reason in card.reasons:
        st.markdown(f"- {ui.md_escape(reason)}")
    if card.hints:
        st.caption(t("roleplay_hints_used", lang, n=card.hints, points=card.hint_cost))

    st.markdown(f"#### {t('roleplay_chart', lang)}")
    df = pd.DataFrame({"turn": list(range(len(card.anger))), "anger": card.anger})
    chart = alt.Chart(df).mark_line(point=True).encode(
        x=alt.X("turn:O", title=t("roleplay_turn", lang)),
        y=alt.Y("anger:Q", title=t("roleplay_anger_axis", lang), scale=alt.Scale(domain=[0, 10])),
        tooltip=["turn", "anger"])
    st.altair_chart(chart)

    st.markdown(f"#### {t('roleplay_steps', lang)}")
    for s in card.steps:
        if s.in_phase:
            icon, note = ui.STATUS_ICONS["covered"], t("roleplay_in_phase", lang, n=s.turn)
        elif s.shown:
            icon, note = ui.STATUS_ICONS["partly"], t("roleplay_out_of_phase", lang, n=s.turn)
        else:
            icon = ui.STATUS_ICONS["missing"] if s.required else ui.BONUS_MISSING_ICON
            note = t("roleplay_not_shown", lang)
        phase = t("roleplay_phase_" + s.phase, lang)
        optional = "" if s.required else f" · {t('roleplay_optional', lang)}"
        st.markdown(f"{icon} **{ui.md_escape(s.title)}** · {phase}{optional} · *{note}*")
    if card.harms or card.anti_patterns:
        st.markdown(f"#### {t('roleplay_incidents', lang)}")
        for inc in card.harms + card.anti_patterns:
            st.markdown(f":red[:material/warning:] {ui.md_escape(t('roleplay_incident', lang, n=inc.turn, title=inc.title))}")
            st.text(inc.evidence)

    st.markdown(f"#### {t('roleplay_turns', lang)}")
    for review in card.turns:
        with st.expander(f"{t('roleplay_turn', lang)} {review.n} · {review.anger_before} → {review.anger}",
                         icon=":material/forum:"):
            st.caption(t("roleplay_you", lang))
            st.text(review.trainee or "…")
            st.caption(ui.md_escape(review.explanation))
            if review.better:
                st.markdown(f"**{t('roleplay_better', lang)}** ({ui.md_escape(review.better.title)})")
                st.markdown(f"> {ui.md_escape(review.better.line)}")
                if review.better.passage:
                    ui.render_citation(st, review.better.passage.model_dump(), lang, knowledge)
    if card.after_call:
        st.markdown(f"#### {t('roleplay_after_call', lang)}")
        for a in card.after_call:
            st.markdown(f":material/edit_note: **{ui.md_escape(a.title)}**: {ui.md_escape(a.description)}")


def _sealed() -> bool:
    """A session opened by a SCORM package shows no stored calls (calmcall.scorm.sealed)."""
    try:
        from calmcall.scorm import sealed
    except ImportError:
        return False
    return bool(sealed(st))


def _launch_scenario(coach) -> None:
    """``?scenario=ID`` (a SCORM package's or a portal's link) picks the caller, once."""
    sid = st.query_params.get("scenario")
    if sid and sid in roleplayer(coach).scenarios and st.session_state.get("rp_launched") != sid:
        st.session_state.rp_launched = sid
        st.session_state.rp_scenario = sid


def _tell_lms(call) -> None:
    """In a SCORM launch, hand the finished call's score to the LMS (once per call)."""
    try:
        from calmcall.scorm import notify_lms
    except ImportError:
        return
    key = (call.scenario.id, call.opening, len(call.turns), call.outcome)
    sent = st.session_state.get("rp_lms")
    if not sent or sent.get("key") != key:
        sent = {"key": key, "score": call.scorecard().score, "scenario": call.scenario.id}
        st.session_state.rp_lms = sent
    notify_lms(st, sent)


def history(coach, ctx, lang: str) -> None:
    if _sealed():
        return
    if not ctx.learner or ctx.org_id is None:
        st.caption(t("roleplay_not_saved", lang))
        return
    try:
        calls = [c for c in coach.store.calls(ctx.org_id, ctx.learner) if c["status"] == "done"]
    except StoreUnavailable:
        st.error(t("store_unavailable", lang))
        return
    with st.expander(t("roleplay_history", lang), icon=":material/history:"):
        if not calls:
            st.caption(t("roleplay_no_calls", lang))
        player = roleplayer(coach)
        for c in reversed(calls[-20:]):
            sc = player.scenarios.get(c["scenario"])
            title = sc.t("title", c["language"]) if sc else c["scenario"]
            when = (c.get("created_at") or "")[:16].replace("T", " ")
            left, right = st.columns([4, 1], vertical_alignment="center")
            left.markdown(f"{ui.md_escape(title)} · {c['score']}/100 · *{when}*")
            right.button(t("roleplay_replay", lang), key=f"rp_replay_{c['id']}", on_click=_open_replay,
                         args=(coach, c["id"]), icon=":material/replay:")


def page() -> None:
    ctx = common.context()
    coach, lang = ctx.coach, ctx.lang
    st.title(t("roleplay_title", lang))
    st.caption(t("roleplay_intro", lang))
    error = st.session_state.get("rp_error")
    if error:
        st.error(error)

    replay = st.session_state.get("rp_replay")
    if replay:
        call = roleplayer(coach).resume(replay)
        st.info(t("roleplay_replaying", lang), icon=":material/replay:")
        transcript(call, lang)
        debrief(call, lang, coach.knowledge)
        st.button(t("roleplay_new", lang), icon=":material/add_call:", on_click=_new, key="rp_close_replay")
        return

    call = _call(coach)
    if call is None:
        _launch_scenario(coach)
        picker(coach, lang)
        history(coach, ctx, lang)
        return
    st.markdown(f"### :material/call: {ui.md_escape(call.scenario.t('title', call.lang))}")
    meter(call, lang)
    voice = st.toggle(t("roleplay_voice", lang), key="rp_voice", value=False)
    transcript(call, lang, voice=voice)
    if not call.done:
        hint_box(lang, coach.knowledge)
        try:  # a microphone button that fills the reply box (views/_voice.py, when installed)
            from views._voice import voice_input

            voice_input(coach, call.lang, target="rp_reply")
        except ImportError:
            pass
        st.text_area(t("roleplay_say", lang), key="rp_reply", height=110, max_chars=2000)
        b1, b2, b3 = st.columns(3)
        b1.button(t("roleplay_send", lang), type="primary", icon=":material/send:", key="rp_send",
                  on_click=_send, args=(coach,), width="stretch")
        b2.button(t("roleplay_hint", lang, cost=roleplayer(coach).rules.score["hint_cost"]),
                  icon=":material/lightbulb:", key="rp_hint_btn", on_click=_hint, args=(coach,), width="stretch")
        b3.button(t("roleplay_end", lang), icon=":material/call_end:", key="rp_end", on_click=_end,
                  args=(coach,), width="stretch")
        if not ctx.learner:
            st.caption(t("roleplay_not_saved", lang))
        return
    st.caption(":material/call_end: " + t("roleplay_over", lang))
    _tell_lms(call)
    debrief(call, lang, coach.knowledge)
    a, b = st.columns(2)
    a.button(t("roleplay_again", lang), icon=":material/replay:", key="rp_again", on_click=_start,
             args=(coach, call.scenario.id), width="stretch")
    b.button(t("roleplay_new", lang), icon=":material/add_call:", key="rp_new", on_click=_new, width="stretch")


page()

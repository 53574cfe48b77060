"""What every page of the Streamlit app shares: the one Coach of the server process, the UI
language, and who the learner is (an embed token's learner, the host's signed-in user, or a
typed name opened with its passphrase).

``app.py`` (the router) calls :func:`prepare` once per run, before the page; a page calls
:func:`context` to get what it needs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import streamlit as st

from calmcall import ui
from calmcall.config import get_settings

# calmcall.storage (SQLAlchemy, ~0.5 s) is imported where it is used: the server imports
# this module before it answers its first request, and the warm-up opens the store anyway

log = logging.getLogger("calmcall.app")
t = ui.t
WARM_UP = (
    "I would stay calm, listen to the whole story and apologise.",
    "Jag skulle lyssna lugnt och be om ursäkt.",
    "Nyugodt maradnék és meghallgatnám a hívót.",
    "Resterei calmo e ascolterei il cliente.",
    "Ik blijf kalm en luister naar de klant.",
)


def open_store(coach) -> None:
    """Migrate the attempts store now; if the database is down, pages say so when they need it."""
    from calmcall.storage import StoreUnavailable

    try:
        _ = coach.store
    except StoreUnavailable as exc:
        log.warning("attempts store unavailable at start-up: %s", exc)


def warm_samples(coach) -> None:
    """The first few calls pay one-off costs; let start-up pay them."""
    for step in warm_sample_steps():
        step(coach)


def warm_sample_steps() -> tuple:
    """``warm_samples`` as separate warm-up steps (a page being drawn goes first between them)."""
    return (*(lambda coach, s=sample: coach.grade(s) for sample in WARM_UP), lambda coach: coach.ask(WARM_UP[0]))


def wait_for_server(timeout: float = 10.0) -> None:
    """Until this Streamlit server answers its health check (at most ``timeout`` s), so
    that the models load right after the server has started rather than holding it up."""
    import time
    import urllib.request

    address = st.get_option("server.address") or "127.0.0.1"
    if address in ("0.0.0.0", "::", "localhost"):
        address = "127.0.0.1"
    base = (st.get_option("server.baseUrlPath") or "").strip("/")
    url = f"http://{address}:{st.get_option('server.port')}/{base + '/' if base else ''}_stcore/health"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:  # noqa: S310 - our own loopback server
                r.read()
            return
        except OSError:
            time.sleep(0.1)


_serving = False  # imported by `streamlit run app.py` (not by AppTest): set on the first call


def start_warm_up(server: bool = False):
    """Load the Coach in a background thread: called when the server imports app.py
    (``server=True``: models and index load as soon as the server is up, not on the first
    visitor) and on every run (one warm-up per process and settings; a failed one is tried
    again)."""
    from calmcall.coach import PAGE_RUNS
    from calmcall.coach import start_warm_up as start

    # The first page needs knowledge and catalogue only; the attempts store (SQLAlchemy,
    # Alembic: ~0.5 s) opens right after it, before the models; the server's xAPI sender
    # starts once the store is migrated (before, it found no tables on a fresh install)
    global _serving
    _serving = _serving or server  # a warm-up retried from a page run starts the sender too
    then = (open_store, start_xapi_sender) if _serving else (open_store,)
    return start(get_settings(), extra=warm_sample_steps(), then=then,
                 settle=wait_for_server if server else None, pause=PAGE_RUNS.wait_idle)


def start_xapi_sender(coach) -> None:
    """xAPI statements of attempts made in this server go to the LRS (calmcall/xapi.py)."""
    from calmcall.xapi import start_app_sender

    start_app_sender(coach.settings)


def drawing():
    """``with common.drawing(): …`` around a page script run: the warm-up waits meanwhile."""
    from calmcall.coach import PAGE_RUNS

    return PAGE_RUNS.drawing()


def loading_note(lang: str) -> None:
    """Say what is still loading when the page is drawn before the models are (the first
    grade or answer then waits for them, or loads them itself)."""
    warm = start_warm_up()
    if not warm.done:
        st.caption(":material/hourglass_top: " + t("loading_models", lang))


def load_coach(settings_key: str = ""):
    """The one Coach of this server process (per settings), as soon as pages can draw from
    it: knowledge, catalogue and the attempts store are there; the models and the index may
    still be loading behind it (a grade or an answer asked for meanwhile waits for them)."""
    return start_warm_up().wait_usable()


def get_coach(lang: str):
    try:
        warm = start_warm_up()
        if not warm.usable:  # say truthfully what the wait is for
            building = warm.wait_phase(timeout=5) == "building"
            with st.spinner(t("loading_index" if building else "loading_models", lang)):
                return load_coach()
        return load_coach()
    except Exception as exc:  # missing knowledge files, a corrupt index: say so, no traceback
        log.exception("coach failed to load")
        stop_with_error(t("coach_unavailable", lang), str(exc))


def stop_with_error(message: str, detail: str = "", embed: bool = False) -> None:
    st.title("CalmCall Coach")
    st.error(message, icon=":material/lock:" if embed else ":material/error:")
    if detail:
        st.text(detail)
    st.stop()


@st.cache_resource(show_spinner=False)
def passphrases(data_dir: str):
    """The learners' passphrase file of this data dir (one per server process)."""
    from calmcall.passphrases import LearnerPassphrases

    return LearnerPassphrases(data_dir)


# -- who is practising --------------------------------------------------------------------
@dataclass
class PageContext:
    coach: object
    lang: str
    org_id: int | None  # None: nothing is saved (no learner, or the store is down)
    learner: str  # "" unless this session may read and write the learner's attempts
    typed: str  # the name typed in the sidebar (may still be locked)
    embedded: bool


def local_org_id(coach) -> int | None:
    """The organisation of stand-alone learners (None while the store is down)."""
    if st.session_state.get("org_id") is None:
        from calmcall.storage import LOCAL_ORG, StoreUnavailable

        try:
            st.session_state.org_id = coach.store.organisation(LOCAL_ORG).id
        except StoreUnavailable:
            return None
    return st.session_state.org_id


def typed_learner() -> str:
    try:
        return ui.normalize_learner(st.session_state.get("learner_raw"))
    except ValueError:
        return ""


def host_auth_configured() -> bool:
    """The host configured sign-in (``[auth]`` in ``.streamlit/secrets.toml``, ``st.login``)."""
    try:
        return "auth" in st.secrets
    except Exception:  # no secrets file at all
        return False


def host_user() -> str:
    """The learner id of the host's signed-in user ("" when nobody is signed in)."""
    try:
        user = st.user
        if user.get("is_logged_in"):
            return str(user.get("email") or user.get("sub") or "")
    except Exception:  # noqa: BLE001 - no auth configured
        pass
    return ""


def current_learner(coach) -> tuple[int | None, str]:
    """(organisation id, learner id) whose attempts this session may read and write: the
    embed token's learner, the host's signed-in user, or the typed name once its passphrase
    was given in this session; else (None, "")."""
    binding = st.session_state.get("embed")
    if binding:
        return binding["org_id"], binding["learner"]
    learner = host_user()
    if not learner:
        typed = typed_learner()
        learner = typed if typed and st.session_state.get("unlocked_learner") == typed else ""
    return (local_org_id(coach), learner) if learner else (None, "")


def embed_binding(coach, token: str, lang: str) -> dict:
    """Verify the embed token once per session; refuse the page if it is not valid."""
    cached = st.session_state.get("embed")
    if cached and cached["token"] == token:
        return cached
    if not token:
        stop_with_error(t("embed_missing_token", lang), embed=True)
    from calmcall.storage import StoreUnavailable

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


# -- the sidebar's learner panel -----------------------------------------------------------
def _sign_out() -> None:
    st.session_state.unlocked_learner = None


def _open_history(coach, learner: str, protected: bool) -> None:
    """The passphrase form's callback: unlock a protected name, or protect a new one."""
    from calmcall.passphrases import MIN_CHARS, PassphraseError

    lang = st.session_state.get("lang", "en")
    secret = st.session_state.get("passphrase") or ""
    st.session_state.passphrase = ""  # never kept in the session
    guard = passphrases(str(coach.settings.data_dir))
    try:
        if protected:
            guard.unlock(learner, secret)
        else:
            guard.protect(learner, secret)
    except PassphraseError as exc:
        message = {
            "too_short": t("passphrase_too_short", lang, n=MIN_CHARS),
            "too_long": t("passphrase_wrong", lang),
            "taken": t("passphrase_taken", lang),
            "wait": t("passphrase_wait", lang, s=max(1, round(exc.wait_s))),
            "unavailable": t("passphrase_unavailable", lang),
        }.get(exc.reason, t("passphrase_wrong", lang))
        st.session_state.passphrase_error = message
        return
    st.session_state.unlocked_learner = learner
    st.session_state.passphrase_error = None


def learner_panel(coach, lang: str) -> None:
    """Who is practising, in the sidebar. With the host's sign-in configured, only that; else
    a name, and for the name a passphrase: chosen the first time it is used, asked for in
    every new session after that, so nobody else who types the name sees its history."""
    from calmcall.passphrases import MIN_CHARS, PassphraseError

    if host_auth_configured():
        user = host_user()
        if user:
            st.caption(":material/verified_user: " + t("signed_in_as", lang, learner=user))
            st.button(t("sign_out", lang), icon=":material/logout:", on_click=st.logout, key="host_sign_out")
        else:
            st.button(t("sign_in", lang), icon=":material/login:", on_click=st.login, key="host_sign_in")
        return
    st.text_input(t("learner_label", lang), key="learner_raw",
                  placeholder=t("learner_placeholder", lang), help=t("learner_help", lang))
    try:
        learner = ui.normalize_learner(st.session_state.get("learner_raw"))
    except ValueError:
        st.error(t("learner_too_long", lang, n=ui.MAX_LEARNER_CHARS))
        return
    if not learner:
        return
    if st.session_state.get("unlocked_learner") == learner:
        left, right = st.columns([3, 2], vertical_alignment="center")
        left.caption(":material/lock_open: " + t("signed_in_as", lang, learner=ui.md_escape(learner)))
        right.button(t("sign_out", lang), key="sign_out", on_click=_sign_out, width="stretch")
        return
    try:
        protected = passphrases(str(coach.settings.data_dir)).is_protected(learner)
    except PassphraseError:
        st.error(t("passphrase_unavailable", lang))
        return
    with st.form("passphrase_form", border=False, enter_to_submit=True):
        st.text_input(t("passphrase_label", lang) if protected else t("passphrase_new_label", lang),
                      type="password", key="passphrase", max_chars=1024)
        st.form_submit_button(t("passphrase_unlock", lang) if protected else t("passphrase_set", lang),
                              icon=":material/lock_open:" if protected else ":material/lock:", key="passphrase_submit",
                              on_click=_open_history, args=(coach, learner, protected), width="stretch")
    error = st.session_state.pop("passphrase_error", None)
    if error:
        st.error(error, icon=":material/key_off:")
    else:
        st.caption(t("passphrase_help", lang) if protected else t("passphrase_new_help", lang, n=MIN_CHARS))


# -- page context ------------------------------------------------------------------------------
def prepare(coach, lang: str, embedded: bool) -> PageContext:
    org_id, learner = current_learner(coach)
    ctx = PageContext(coach=coach, lang=lang, org_id=org_id, learner=learner, typed=typed_learner(),
                      embedded=embedded)
    st.session_state.cc_page_context = ctx
    return ctx


def context() -> PageContext:
    """The context the router prepared for this run (a page run on its own prepares one)."""
    ctx = st.session_state.get("cc_page_context")
    if ctx is None:
        lang = st.session_state.get("lang", "en")
        ctx = prepare(get_coach(lang), lang, embedded=bool(st.session_state.get("embed")))
    return ctx


def scroll_into_view(key: str) -> None:
    """Scroll the element with Streamlit key ``key`` to the top of the window, once: after
    "Get feedback" the result is drawn below the answer box, and the score and any harm
    warning must be on the first screen the learner sees, not a scroll away. (A zero-height
    component frame: ``st.html`` drops scripts in this Streamlit.)"""
    import streamlit.components.v1 as components

    components.html(
        "<script>(function(){let n=0;const d=window.parent.document;const go=()=>{"
        f"const el=d.querySelector('.st-key-{key}');"
        "if(el){el.scrollIntoView({block:'start'});}else if(n++<50){setTimeout(go,100);}};"
        "setTimeout(go,50);})();</script>", height=0)

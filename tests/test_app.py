"""The Streamlit app through ``streamlit.testing`` (AppTest), on the real models: each
page's main flow, the five UI languages, bad input, and embed tokens.

All tests share one data dir (the first run builds the index, later runs reuse the Coach
that ``st.cache_resource`` keeps for the process)."""

from __future__ import annotations

import re
import string
import time
from pathlib import Path

import pytest
import yaml
from streamlit.testing.v1 import AppTest

REPO = Path(__file__).resolve().parent.parent
APP = REPO / "app.py"
TIMEOUT = 600  # the first run builds the index on a cold data dir
LANGS = ("en", "sv", "hu", "it", "nl")

GOOD = (
    "First I let the caller tell the whole story without interrupting and I note the key points. "
    "I stay calm and keep an even tone, and I remind myself it is not personal. "
    "I show empathy: I understand how frustrating this must be. "
    "Then I repeat back what I heard so they feel understood, and I apologise that they had this bad experience. "
    "Finally I offer two or three options within our policy, such as a refund or a replacement."
)
WEAK = "I would stay calm and listen to the customer until they have finished talking."


def ui_text(key: str, lang: str = "en", **values) -> str:
    from calmcall.ui import t

    return t(key, lang, **values)


@pytest.fixture(scope="module")
def app_data(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("app-data")


@pytest.fixture
def app_env(app_data, monkeypatch):
    """Point every path at the module's data dir (Settings are cached per process)."""
    from calmcall.config import get_settings

    monkeypatch.setenv("CALMCALL_DATA_DIR", str(app_data))
    for var in ("CALMCALL_DATABASE_URL", "CALMCALL_CHROMA_URL", "CALMCALL_CHROMA_PATH", "CALMCALL_LLM"):
        monkeypatch.delenv(var, raising=False)
    get_settings.cache_clear()
    yield app_data
    get_settings.cache_clear()


@pytest.fixture
def store(app_env):
    from calmcall.config import get_settings
    from calmcall.storage import AttemptStore

    return AttemptStore(get_settings().resolved_database_url)


def run(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def open_app(embed: bool = False, **query) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    if embed:  # what ?embed=true does in a browser (Streamlit keeps that parameter to itself)
        at.context["is_embedded"] = True
    at.query_params.update(query)
    return run(at)


def all_text(at: AppTest) -> str:
    """Every piece of text the page shows (Markdown source, alerts, captions, plain text)."""
    parts = []
    for kind in ("title", "header", "subheader", "markdown", "caption", "text", "info", "success",
                 "warning", "error"):
        parts += [str(e.value) for e in getattr(at, kind)]
    parts += [f"{m.label} {m.value} {m.delta}" for m in at.metric]
    parts += [e.label for e in at.expander]
    return "\n".join(parts)


def practice(at: AppTest, answer: str, learner: str | None = None) -> AppTest:
    if learner is not None and at.sidebar.text_input:
        at.sidebar.text_input(key="learner_raw").input(learner)
    at.text_area(key="answer").input(answer)
    at.button(key="submit").click()
    return run(at)


def goto(at: AppTest, page: str) -> AppTest:
    """Pick a page in the sidebar (the next run() shows it)."""
    at.sidebar.radio[0].set_value(page)
    return at


def score_of(at: AppTest, lang: str = "en") -> int:
    metric = next(m for m in at.metric if m.label == ui_text("score", lang))
    return int(metric.value.split("/")[0])


# -- strings -------------------------------------------------------------------------------
def test_every_ui_string_is_in_all_five_languages_with_the_same_placeholders():
    data = yaml.safe_load((REPO / "calmcall" / "ui_text.yaml").read_text(encoding="utf-8"))
    assert len(data) > 50
    for key, entry in data.items():
        assert set(entry) == set(LANGS), (key, sorted(entry))
        fields = {lang: {f for _, f, _, _ in string.Formatter().parse(entry[lang]) if f} for lang in LANGS}
        for lang in LANGS:
            assert str(entry[lang]).strip(), (key, lang)
            assert fields[lang] == fields["en"], (key, lang, fields[lang])
    # the app only asks for keys that exist
    call = re.compile(r"""(?<![\w.])t\(\s*["']([a-z_]+)["']\s*[,)]""")
    used = set(call.findall((REPO / "app.py").read_text()) + call.findall((REPO / "calmcall" / "ui.py").read_text()))
    from calmcall.catalogue import CATEGORIES
    from calmcall.language import SUPPORTED
    from calmcall.ui import PAGES

    used |= {f"cat_{c}" for c in CATEGORIES} | {f"page_{p}" for p in PAGES} | {f"lang_{c}" for c in SUPPORTED}
    used |= {f"status_{s}" for s in ("covered", "partly", "missing")}
    assert len(used) > 50 and used <= set(data), sorted(used - set(data))


def test_ui_helpers_escape_and_compare():
    from calmcall import ui

    html = ui.highlighted_answer_html("<b>I listen.</b> Then <script>x</script>", [("I listen.", "covered", "Listen")])
    assert "<script>" not in html and "&lt;script&gt;" in html and '<mark class="cc-covered"' in html
    both = ui.highlighted_answer_html("I listen and apologise.", [("I listen and apologise.", "covered", "Listen"),
                                                                  ("I listen and apologise.", "partly", "Apologise")])
    assert both.count("<mark") == 1 and "Listen · Apologise" in both
    assert ui.md_escape("**x** :red[y] <i>") == r"\*\*x\*\* \:red\[y\] \<i\>"
    prev = {"score": 40, "steps": [{"step": "a", "status": "covered", "title": "A"},
                                   {"step": "b", "status": "missing", "title": "B"}]}
    cur = {"score": 70, "steps": [{"step": "a", "status": "partly", "title": "A"},
                                  {"step": "b", "status": "covered", "title": "B"}]}
    assert ui.compare(prev, cur) == {"delta": 30, "previous_score": 40, "gained": ["B"], "lost": ["A"]}
    assert ui.attempts_csv([{"id": 1, "answer": "=HYPERLINK(1)", "covered": ["a", "b"]}]).decode("utf-8-sig").splitlines()[1].endswith(",a;b,'=HYPERLINK(1)")
    with pytest.raises(ValueError):
        ui.normalize_learner("x" * 101)
    assert ui.normalize_learner("  Åsa \x00 K ") == "Åsa K"


# -- practice --------------------------------------------------------------------------------
def test_practice_answer_gets_feedback_with_own_sentences(app_env, store):
    at = open_app()
    assert at.title[0].value == ui_text("practice_title")
    practice(at, GOOD, learner="anna")
    assert score_of(at) >= 60
    html = "\n".join(h.value for h in at.html)
    assert "without interrupting" in html and 'class="cc-covered"' in html  # the learner's own sentence
    text = all_text(at)
    assert ui_text("checklist") in text and ui_text("model_answer") in text
    assert ui_text("saved") in text
    from calmcall.storage import LOCAL_ORG

    org = store.organisation(LOCAL_ORG)
    assert len(store.attempts(org.id, "anna")) == 1


def test_missing_steps_show_the_article_quote_and_translation(app_env):
    at = open_app()
    practice(at, WEAK)
    text = all_text(at)
    assert ui_text("status_missing") in text and ui_text("articles_say") in text
    assert re.search(r"\d{3}\\#p\d+", text)  # the cited passage id
    assert "*English:*" in text  # the quote's translation next to the original
    assert ui_text("not_saved_hint") in text  # no learner: feedback, not saved


def test_try_again_shows_the_change_and_progress_after_two_attempts(app_env, store):
    at = open_app()
    practice(at, WEAK, learner="bo")
    first = score_of(at)
    at.button(key="try_again").click()
    run(at)
    assert not at.metric  # the feedback is folded away while the learner rewrites
    assert at.text_area(key="answer").value == WEAK  # and the text is still there
    practice(at, GOOD)
    second = score_of(at)
    assert second > first
    text = all_text(at)
    assert ui_text("change_score", before=first, after=second, delta=f"{second - first:+d}") in text
    assert "Now covered:" in text
    assert next(m for m in at.metric if m.label == ui_text("score")).delta == f"{second - first:+d}"

    goto(at, "progress")
    run(at)
    assert at.title[0].value == ui_text("progress_title")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics[ui_text("attempts")] == "2"
    assert metrics[ui_text("best_score")] == str(second)
    assert at.get("vega_lite_chart")  # the score chart
    assert len(at.dataframe) == 2  # step mastery and the attempts table
    mastery = at.dataframe[0].value
    assert len(mastery) >= 6 and mastery[ui_text("mastery_rate")].between(0, 1).all()
    assert at.get("download_button")
    from calmcall.storage import LOCAL_ORG

    assert [a["score"] for a in store.attempts(store.organisation(LOCAL_ORG).id, "bo")] == [first, second]


def test_progress_without_a_name_asks_for_one(app_env):
    at = open_app()
    goto(at, "progress")
    run(at)
    assert ui_text("progress_need_learner") in all_text(at)


# -- bad input ---------------------------------------------------------------------------------
def test_empty_answer_gets_a_clear_message(app_env):
    at = open_app()
    practice(at, "   \n  ")
    assert [e.value for e in at.error] == [ui_text("answer_empty")]
    assert not at.metric
    practice(at, "!!! ??? 123")  # no words at all: the library's reason, in a sentence
    assert at.error and "no words" in at.error[0].value
    assert at.text_area(key="answer").value == "!!! ??? 123"  # nothing lost


def test_html_and_markdown_in_an_answer_are_shown_as_text(app_env):
    evil = (
        "<script>alert('x')</script><img src=x onerror=alert(1)> **I stay calm** and :red[I listen] "
        "to the whole story without interrupting. [click](javascript:alert(1)) I apologise for the trouble."
    )
    at = open_app()
    practice(at, evil)
    assert at.metric and not at.error
    for md in at.markdown:
        assert "<script" not in md.value and "<img" not in md.value and "javascript:" not in md.value
    html = "\n".join(h.value for h in at.html)
    assert "&lt;script&gt;" in html and "<script" not in html and "<img" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert at.text_area(key="answer").value == evil


def test_a_50kb_paste_with_emoji_and_mixed_scripts_is_graded_and_kept(app_env):
    chunk = GOOD + " 😊🎧 Jag lyssnar lugnt. Nyugodt maradok. Ascolto. Ik blijf kalm. Привет 你好 مرحبا. "
    big = (chunk * (50_000 // len(chunk) + 1))[:50_000]
    at = open_app()
    t0 = time.perf_counter()
    practice(at, big)
    assert time.perf_counter() - t0 < 30
    assert at.metric and score_of(at) >= 0
    from calmcall.config import get_settings

    n, limit = len(big.strip()), get_settings().max_answer_chars
    assert n > limit
    assert any(ui_text("answer_truncated", n=f"{n:,}", limit=f"{limit:,}") == w.value for w in at.warning)
    assert at.text_area(key="answer").value == big


def test_a_database_that_is_down_does_not_stop_practice(app_env, monkeypatch):
    from calmcall.config import get_settings

    monkeypatch.setenv("CALMCALL_DATABASE_URL", "postgresql+psycopg://nobody:x@127.0.0.1:9/none?connect_timeout=2")
    get_settings.cache_clear()
    at = open_app()
    practice(at, GOOD, learner="dora")
    assert at.metric and score_of(at) >= 60  # feedback as usual
    assert ui_text("store_unavailable") in [e.value for e in at.sidebar.error]
    assert ui_text("saved") not in all_text(at)


# -- ask ------------------------------------------------------------------------------------------
def test_ask_gives_a_cited_answer_and_takes_follow_ups(app_env):
    at = open_app()
    goto(at, "ask")
    run(at)
    assert at.title[0].value == ui_text("ask_title")
    at.chat_input[0].set_value("What should I do if a caller swears at me?")
    run(at)
    assert [m.name for m in at.chat_message] == ["user", "assistant"]
    cites = [e.label for e in at.expander if re.match(r"\d{3}#p\d+", e.label)]
    assert cites, [e.label for e in at.expander]
    assistant = at.chat_message[1]
    assert any(re.search(r"\d{3}\\?#p\d+", m.value) for m in assistant.markdown)  # ids in the answer
    assert any("\n> " in m.value for m in assistant.markdown)  # quotes inside the citations

    at.chat_input[0].set_value("And should I put them on hold?")
    run(at)
    assert [m.name for m in at.chat_message] == ["user", "assistant"] * 2
    assert at.chat_message[2].text[0].value == "And should I put them on hold?"  # the user's words as text
    text = all_text(at)
    assert ui_text("conflict") in text  # hold vs. no hold: the articles disagree, highlighted


def test_ask_out_of_scope_says_so(app_env):
    at = open_app()
    goto(at, "ask")
    run(at)
    at.chat_input[0].set_value("What is the capital of France?")
    run(at)
    assert at.chat_message[1].info  # the refusal, no citations
    assert not [e for e in at.expander if re.match(r"\d{3}#p\d+", e.label)]


# -- language and library ------------------------------------------------------------------------------
def test_language_switch_changes_the_ui_strings(app_env):
    at = open_app()
    assert at.title[0].value == ui_text("practice_title", "en")
    for lang in ("sv", "hu", "it", "nl"):
        at.sidebar.selectbox(key="lang").set_value(lang)
        run(at)
        assert at.title[0].value == ui_text("practice_title", lang)
        assert at.button(key="submit").label == ui_text("submit", lang)
        labels = at.sidebar.radio[0].options
        assert any(ui_text("page_ask", lang) in label for label in labels)
    practice(at, "Jag skulle lyssna lugnt på kunden och låta hen prata klart utan att avbryta.")
    assert score_of(at, "nl") > 0
    goto(at, "library")
    run(at)
    at.sidebar.selectbox(key="lang").set_value("en")
    run(at)  # the page and its menu entry survive the switch
    assert at.title[0].value == ui_text("library_title", "en") and at.sidebar.radio[0].value == "library"
    at2 = open_app(lang="hu")  # ?lang=hu opens the Hungarian UI
    assert at2.title[0].value == ui_text("practice_title", "hu")


def test_library_shows_articles_side_by_side_and_the_catalogue(app_env):
    at = open_app()
    at.sidebar.selectbox(key="lang").set_value("it")
    goto(at, "library")
    run(at)
    assert at.title[0].value == ui_text("library_title", "it")
    assert len(at.tabs) == 3
    text = all_text(at)
    assert ui_text("original", "it") in text and ui_text("translation", "it") in text
    at.selectbox(key="lib_article").set_value("002")  # the Italian article: shown with English
    run(at)
    assert "Come gestire un cliente offensivo" in all_text(at)
    conflicts_tab = at.tabs[2]
    assert conflicts_tab.markdown and ui_text("conflict", "it") in "\n".join(m.value for m in conflicts_tab.markdown)


# -- embed mode -------------------------------------------------------------------------------------
def test_embed_mode_refuses_forged_expired_and_missing_tokens(app_env, store):
    from calmcall.api.tokens import mint_token

    org = store.organisation("acme-refusals")
    forged = mint_token(org, "emp-1")[:-4] + "AAAA"
    expired = mint_token(org, "emp-1", ttl_s=60, now=time.time() - 3600)
    cases = [
        (forged, ui_text("embed_forged")),
        ("v1.not-a-token.x", ui_text("embed_refused")),
        (expired, ui_text("embed_expired")),
        ("", ui_text("embed_missing_token")),
    ]
    for token, message in cases:
        at = open_app(embed=True, token=token)
        assert [e.value for e in at.error] == [message], token
        assert not at.text_area and not at.sidebar.radio and not at.metric  # nothing else is shown


def test_embed_mode_with_a_valid_token_is_practice_only_and_records_for_that_learner(app_env, store):
    from calmcall.api.tokens import mint_token
    from calmcall.storage import LOCAL_ORG

    org = store.organisation("acme-portal")
    at = open_app(embed=True, token=mint_token(org, "emp-1042"), lang="nl")
    assert not at.sidebar.radio and not at.sidebar.text_input  # Practice only, no learner box
    assert at.title[0].value == ui_text("practice_title", "nl")
    assert "emp-1042" in at.text[0].value
    practice(at, GOOD)
    assert score_of(at, "nl") >= 60
    attempts = store.attempts(org.id, "emp-1042")
    assert len(attempts) == 1 and attempts[0]["score"] >= 60
    assert store.attempts(store.organisation(LOCAL_ORG).id, "emp-1042") == []

"""The Streamlit app through ``streamlit.testing`` (AppTest), on the real models: each
page's main flow, summary-first feedback in the UI language, the five UI languages, learner
privacy, bad input, and embed tokens.

All tests share one data dir (the first run builds the index, later runs reuse the Coach
that ``st.cache_resource`` keeps for the process)."""

from __future__ import annotations

import re
import string
import time
import uuid
from pathlib import Path

import pytest
import yaml
from streamlit.testing.v1 import AppTest

REPO = Path(__file__).resolve().parent.parent
APP = REPO / "app.py"
TIMEOUT = 600  # the first run builds the index on a cold data dir
LANGS = ("en", "sv", "hu", "it", "nl")
PASS = "correct horse battery"

GOOD = (
    "First I let the caller tell the whole story without interrupting and I note the key points. "
    "I stay calm and keep an even tone, and I remind myself it is not personal. "
    "I show empathy: I understand how frustrating this must be. "
    "Then I repeat back what I heard so they feel understood, and I apologise that they had this bad experience. "
    "Finally I offer two or three options within our policy, such as a refund or a replacement."
)
WEAK = "I would stay calm and listen to the customer until they have finished talking."
OFF_TOPIC = "My favourite food is pizza and in the summer I like to travel to Spain with my family."
HARMFUL = "I would tell him he's an idiot and that he should shut up."


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


def in_order(at: AppTest) -> list[tuple[str, str]]:
    """The main area's elements in page order: (type, text), expanders as ("expander", label)
    followed by what they hold."""
    out: list[tuple[str, str]] = []

    def walk(node):
        kind = getattr(node, "type", "")
        if kind == "expander":
            out.append(("expander", node.label))
        elif kind == "metric":
            out.append(("metric", f"{node.label} {node.value}"))
        elif hasattr(node, "value") and not hasattr(node, "children"):
            out.append((kind, str(node.value)))
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at.main)
    return out


def unescape(md: str) -> str:
    return re.sub(r"\\(.)", r"\1", md)


def sign_in(at: AppTest, learner: str, passphrase: str = PASS) -> AppTest:
    """Type a name in the sidebar and open it with its passphrase (set on first use)."""
    at.sidebar.text_input(key="learner_raw").input(learner)
    run(at)
    at.sidebar.text_input(key="passphrase").input(passphrase)
    at.sidebar.button(key="passphrase_submit").click()
    return run(at)


def practice(at: AppTest, answer: str, learner: str | None = None) -> AppTest:
    if learner is not None:
        sign_in(at, learner)
    at.text_area(key="answer").input(answer)
    at.button(key="submit").click()
    return run(at)


def goto(at: AppTest, page: str) -> AppTest:
    """Open a page (what the sidebar's navigation link does)."""
    at.switch_page(f"views/{page}.py")
    return at


def score_of(at: AppTest, lang: str = "en") -> int:
    metric = next(m for m in at.metric if m.label == ui_text("score", lang))
    return int(metric.value.split("/")[0])


def set_lang(at: AppTest, lang: str) -> AppTest:
    at.sidebar.selectbox(key="lang").set_value(lang)
    return run(at)


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
    sources = [REPO / "app.py", REPO / "calmcall" / "ui.py", *sorted((REPO / "views").glob("*.py"))]
    used = set()
    for path in sources:
        used |= set(call.findall(path.read_text(encoding="utf-8")))
    from calmcall.catalogue import CATEGORIES
    from calmcall.language import SUPPORTED
    from calmcall.ui import PAGES

    used |= {f"cat_{c}" for c in CATEGORIES} | {f"page_{p}" for p in PAGES} | {f"lang_{c}" for c in SUPPORTED}
    used |= {f"status_{s}" for s in ("covered", "partly", "missing")}
    assert len(used) > 80 and used <= set(data), sorted(used - set(data))


def test_ui_helpers_escape_compare_and_number_citations(knowledge):
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
    # answer lines: passage ids become footnote numbers, in order of first appearance
    cites = [knowledge.cite(p, "sv").model_dump() for p in ("001#p13", "004#p4")]
    lines, numbered = ui.number_citations(["1. Lyssna [004#p4]", "2. Empati [001#p13][004#p4]"], cites)
    assert lines == [r"1. Lyssna \[1\]", r"2. Empati \[2\] \[1\]"]
    assert [(n, c["passage"]) for n, c in numbered] == [(1, "004#p4"), (2, "001#p13")]
    # a passage in the reader's language: original if it is in it, else our translation, else English
    sv_passage = knowledge.cite("004#p4", "hu").model_dump()  # a Swedish article
    assert ui.passage_in(sv_passage, "sv", knowledge) == (knowledge.get("004#p4").text, "sv")
    assert ui.passage_in(sv_passage, "hu", knowledge)[1] == "hu"
    assert ui.passage_in(sv_passage, "de", knowledge) == (knowledge.get("004#p4").text_en, "en")
    assert ui.note_text("follow-up: searched together with your previous question", "it") == ui_text("ask_followup", "it")


# -- practice: summary first, in the UI language ------------------------------------------------
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


def test_feedback_starts_with_the_summary_and_the_one_fix(app_env):
    at = open_app()
    practice(at, WEAK)
    order = in_order(at)
    texts = [x for _, x in order]
    start = texts.index(ui_text("feedback_title"))
    gaps = texts.index(f"#### {ui_text('fix_title')}")
    checklist = texts.index(f"#### {ui_text('checklist')}")
    assert start < gaps < checklist
    summary = order[start:gaps]  # score, headline and the one fix: before any step or quote
    assert any(k == "metric" and x.startswith(ui_text("score")) and x.endswith("/100") for k, x in summary)
    assert any(k == "info" and x.startswith(f"**{ui_text('top_fix')}:**") for k, x in summary)
    assert not any("\n> " in x for _, x in summary)
    # missing steps compact: title, status and one line why; the article's quote folded away
    missing = [x for k, x in order[gaps:checklist] if k == "markdown" and f"*{ui_text('status_missing')}*" in x]
    assert len(missing) >= 3 and all(len(x.split("\n")) == 2 for x in missing)
    expanders = [e for e in at.expander if e.label == ui_text("articles_say").rstrip(" :")]
    assert len(expanders) >= 3 and all(any("\n> " in m.value for m in e.markdown) for e in expanders)
    assert all(not e.proto.expanded for e in expanders)  # one click away, not open
    # the full checklist below: every expected step, one line each
    checks = [x for k, x in order[checklist:] if k == "markdown" and re.search(r"\*\* · \*", x)]
    assert len(checks) >= 6
    assert ui_text("not_saved_hint") in all_text(at)  # no learner: feedback, not saved


def test_warnings_are_in_the_summary_in_the_ui_language(app_env):
    at = open_app()
    set_lang(at, "sv")
    practice(at, OFF_TOPIC)
    assert score_of(at, "sv") <= 20
    order = in_order(at)
    texts = [x for _, x in order]
    checklist = next(i for i, x in enumerate(texts) if x.endswith(ui_text("checklist", "sv")))
    warnings = [w.value for w in at.warning]
    from calmcall.prompts import load_prompt, localized

    fb = load_prompt("feedback")
    off_topic = unescape(localized(fb, "off_topic", "sv"))
    assert any(unescape(w) == off_topic for w in warnings), warnings
    assert min(i for i, x in enumerate(texts) if unescape(x) == off_topic) < checklist  # before the checklist

    at.text_area(key="answer").input(HARMFUL)
    at.button(key="submit").click()
    run(at)
    errors = [unescape(e.value) for e in at.error]
    assert any(e.startswith(localized(fb, "harm", "sv").split("{")[0].strip()) for e in errors), errors
    assert score_of(at, "sv") <= 20


def test_step_titles_statuses_and_passages_are_in_the_ui_language(app_env, knowledge):
    """An English answer in the Swedish UI: one language on every card, passages in Swedish
    with the original one click away, never original + English + Swedish."""
    at = open_app()
    set_lang(at, "sv")
    practice(at, WEAK)
    from calmcall.catalogue import load_catalogue

    catalogue = load_catalogue(REPO / "knowledge", knowledge)
    text = all_text(at)
    for step in catalogue.steps.values():
        assert f"**{step.t('title', 'en')}**" not in text or step.t("title", "en") == step.t("title", "sv")
    assert f"*{ui_text('status_missing', 'sv')}*" in text and f"*{ui_text('status_missing')}*" not in text
    assert ui_text("answer_language", "sv", language=ui_text("lang_en", "sv")) in text
    quotes = [m.value for m in at.markdown if "\n> " in m.value]
    assert quotes
    shown_passages = set()
    for md in quotes:
        pid = re.search(r"(\d{3})\\#p(\d+)", md)
        if not pid:
            continue  # an "Original" expander's body
        pid = f"{pid.group(1)}#p{pid.group(2)}"
        p = knowledge.get(pid)
        body = unescape(md.split("\n> ", 1)[1])
        assert body == " ".join(p.text_in("sv").split()), pid  # the Swedish text
        shown_passages.add(pid)
    assert shown_passages
    for pid in shown_passages:  # the original is one click away; the English is not shown
        p = knowledge.get(pid)
        if p.language != "sv":
            assert any(e.label == ui_text("show_original", "sv", language=ui_text(f"lang_{p.language}", "sv"))
                       for e in at.expander)
        assert " ".join(p.text_en.split()) not in "\n".join(unescape(q) for q in quotes)
    assert text.count("004\\#p10") <= 1  # a passage teaching two missing steps is quoted once


def test_random_clears_the_previous_answer_and_feedback(app_env):
    at = open_app()
    practice(at, WEAK)
    assert at.metric
    before = at.selectbox(key="qid").value
    at.button(key="random").click()
    run(at)
    assert at.selectbox(key="qid").value != before
    assert at.text_area(key="answer").value == ""
    assert not at.metric


def test_switching_the_language_rewrites_the_feedback(app_env):
    at = open_app()
    practice(at, WEAK)
    set_lang(at, "it")
    text = all_text(at)
    assert ui_text("feedback_title", "it") in text and f"*{ui_text('status_missing', 'it')}*" in text
    assert f"*{ui_text('status_missing')}*" not in text


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


# -- learner privacy -------------------------------------------------------------------------
def test_a_learners_history_opens_only_with_their_passphrase(app_env, store):
    from calmcall.storage import LOCAL_ORG

    name = f"kim-{uuid.uuid4().hex[:6]}"
    at = open_app()
    at.sidebar.text_input(key="learner_raw").input(name)
    run(at)
    assert at.sidebar.text_input(key="passphrase").label == ui_text("passphrase_new_label")
    at.sidebar.text_input(key="passphrase").input("short")
    at.sidebar.button(key="passphrase_submit").click()
    run(at)
    assert ui_text("passphrase_too_short", n=8) in [e.value for e in at.sidebar.error]
    practice(at, WEAK)
    assert ui_text("locked_hint") in all_text(at)  # typed but not opened: nothing saved
    org = store.organisation(LOCAL_ORG)
    assert store.attempts(org.id, name) == []
    sign_in(at, name)  # first use: the passphrase is set
    practice(at, GOOD)
    assert ui_text("saved") in all_text(at)
    assert len(store.attempts(org.id, name)) == 1
    stored = (app_env / "learner_passphrases.json").read_text()
    assert PASS not in stored and "scrypt$" in stored  # a hash, never the passphrase

    # someone else types the same name in another session
    other = open_app()
    other.sidebar.text_input(key="learner_raw").input(name)
    run(other)
    assert other.sidebar.text_input(key="passphrase").label == ui_text("passphrase_label")
    goto(other, "progress")
    run(other)
    assert ui_text("progress_locked") in all_text(other) and not other.metric and not other.dataframe
    other.sidebar.text_input(key="passphrase").input("not the passphrase")
    other.sidebar.button(key="passphrase_submit").click()
    run(other)
    assert ui_text("passphrase_wrong") in [e.value for e in other.sidebar.error]
    assert not other.metric
    run(goto(other, "practice"))
    practice(other, WEAK)
    assert len(store.attempts(org.id, name)) == 1  # nothing recorded under their name
    # with the passphrase, it is theirs again
    other.sidebar.text_input(key="passphrase").input(PASS)
    other.sidebar.button(key="passphrase_submit").click()
    run(other)
    goto(other, "progress")
    run(other)
    assert {m.label: m.value for m in other.metric}[ui_text("attempts")] == "1"
    other.sidebar.button(key="sign_out").click()
    run(other)
    assert ui_text("progress_locked") in all_text(other)


def test_wrong_passphrases_slow_down_guessing(tmp_path):
    from calmcall.passphrases import MAX_FAILURES, LearnerPassphrases, PassphraseError

    guard = LearnerPassphrases(tmp_path)
    guard.protect("ana", PASS)
    with pytest.raises(PassphraseError) as taken:
        guard.protect("ana", "another passphrase")
    assert taken.value.reason == "taken"
    for _ in range(MAX_FAILURES):
        with pytest.raises(PassphraseError):
            guard.unlock("ana", "guess guess", now=100.0)
    with pytest.raises(PassphraseError) as wait:
        guard.unlock("ana", PASS, now=101.0)  # even the right one waits
    assert wait.value.reason == "wait" and wait.value.wait_s > 0
    guard.unlock("ana", PASS, now=200.0)
    (tmp_path / "learner_passphrases.json").write_text("{not json")
    with pytest.raises(PassphraseError) as broken:
        guard.unlock("ana", PASS, now=300.0)  # a damaged file opens nothing
    assert broken.value.reason == "unavailable"


def test_with_host_sign_in_the_signed_in_user_is_the_learner(app_env, store):
    from calmcall.storage import LOCAL_ORG

    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.secrets["auth"] = {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "x" * 32,
                          "client_id": "id", "client_secret": "s",
                          "server_metadata_url": "http://127.0.0.1:9/.well-known/openid-configuration"}
    email = f"lee-{uuid.uuid4().hex[:6]}@example.com"
    at.user = {"is_logged_in": True, "email": email}
    run(at)
    assert not at.sidebar.text_input  # no name box: the host says who this is
    assert ui_text("signed_in_as", learner=email) in "\n".join(c.value for c in at.sidebar.caption)
    at.text_area(key="answer").input(GOOD)
    at.button(key="submit").click()
    run(at)
    assert len(store.attempts(store.organisation(LOCAL_ORG).id, email)) == 1


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
    assert at.metric
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
def test_ask_gives_a_cited_answer_and_takes_follow_ups(app_env, knowledge):
    at = open_app()
    goto(at, "ask")
    run(at)
    assert at.title[0].value == ui_text("ask_title")
    at.chat_input[0].set_value("What should I do if a caller swears at me?")
    run(at)
    assert [m.name for m in at.chat_message] == ["user", "assistant"]
    cites = [e.label for e in at.expander if re.match(r"\\\[\d+\\\] ", e.label)]
    assert cites, [e.label for e in at.expander]
    titles = {a.title_en for a in knowledge.articles.values()}
    assert all(any(md_title in unescape(label) for md_title in titles) for label in cites)  # the article's title
    assert all(re.search(r"\d{3}\\?#p\d+", label) for label in cites)  # and the passage
    assistant = at.chat_message[1]
    body = assistant.markdown[0].value
    assert re.search(r"\\\[1\\\]", body) and not re.search(r"\d{3}\\?#p\d+", body)  # numbered, not raw ids
    assert any(m.value.startswith("> ") or "\n> " in m.value for m in assistant.markdown)  # quotes inside the citations

    at.chat_input[0].set_value("And should I put them on hold?")
    run(at)
    assert [m.name for m in at.chat_message] == ["user", "assistant"] * 2
    assert at.chat_message[2].text[0].value == "And should I put them on hold?"  # the user's words as text
    text = all_text(at)
    assert ui_text("conflict") in text  # hold vs. no hold: the articles disagree, highlighted
    assert {unescape(c.value) for c in at.chat_message[3].caption} & follow_up_notes("en")


def follow_up_notes(lang: str) -> set[str]:
    """What a follow-up's note may say in ``lang`` (the answerer's phrases, or the app's)."""
    from calmcall.prompts import load_prompt, localized

    phrases = load_prompt("answer")
    return {localized(phrases, k, lang) for k in phrases if k.startswith("follow_up")} | {ui_text("ask_followup", lang)}


def test_ask_follow_up_note_is_in_the_ui_language(app_env):
    """English questions in the Swedish UI: the note about the follow-up is in Swedish."""
    at = open_app()
    set_lang(at, "sv")
    goto(at, "ask")
    run(at)
    at.chat_input[0].set_value("What should I do if a caller swears at me?")
    run(at)
    at.chat_input[0].set_value("And if he keeps swearing?")
    run(at)
    captions = {unescape(c.value) for c in at.chat_message[3].caption}
    assert captions & follow_up_notes("sv") and not captions & follow_up_notes("en"), captions


def test_ask_out_of_scope_says_so(app_env):
    at = open_app()
    goto(at, "ask")
    run(at)
    at.chat_input[0].set_value("What is the capital of France?")
    run(at)
    assert at.chat_message[1].info  # the refusal, no citations
    assert not [e for e in at.expander if re.match(r"\\\[\d+\\\] ", e.label)]


# -- language and library ------------------------------------------------------------------------------
def test_language_switch_changes_the_ui_strings(app_env):
    at = open_app()
    assert at.title[0].value == ui_text("practice_title", "en")
    for lang in ("sv", "hu", "it", "nl"):
        set_lang(at, lang)
        assert at.title[0].value == ui_text("practice_title", lang)
        assert at.button(key="submit").label == ui_text("submit", lang)
    practice(at, "Jag skulle lyssna lugnt på kunden och låta hen prata klart utan att avbryta.")
    assert score_of(at, "nl") > 0
    goto(at, "library")
    run(at)
    set_lang(at, "en")  # the page survives the switch
    assert at.title[0].value == ui_text("library_title", "en")
    at2 = open_app(lang="hu")  # ?lang=hu opens the Hungarian UI
    assert at2.title[0].value == ui_text("practice_title", "hu")


def test_library_shows_articles_side_by_side_and_the_catalogue(app_env):
    at = open_app()
    set_lang(at, "it")
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
        assert not at.text_area and not at.sidebar.text_input and not at.metric  # nothing else is shown


def test_embed_mode_with_a_valid_token_is_practice_only_and_records_for_that_learner(app_env, store):
    from calmcall.api.tokens import mint_token
    from calmcall.storage import LOCAL_ORG

    org = store.organisation("acme-portal")
    at = open_app(embed=True, token=mint_token(org, "emp-1042"), lang="nl")
    assert not at.sidebar.text_input  # Practice only, no learner box or passphrase
    assert at.title[0].value == ui_text("practice_title", "nl")
    assert "emp-1042" in at.text[0].value
    practice(at, GOOD)
    assert score_of(at, "nl") >= 60
    attempts = store.attempts(org.id, "emp-1042")
    assert len(attempts) == 1 and attempts[0]["score"] >= 60
    assert store.attempts(store.organisation(LOCAL_ORG).id, "emp-1042") == []
    with pytest.raises(ValueError, match="Known pages") as refused:
        goto(at, "progress")  # other pages are not reachable from a portal
    known = re.search(r"Known pages: \[(.*)\]", str(refused.value)).group(1)
    assert "practice.py" in known and not re.search(r"(progress|library|ask)\.py", known)


# -- the server ---------------------------------------------------------------------------------------
def test_app_py_is_served_with_the_frame_ancestors_header(monkeypatch):
    """``streamlit run app.py`` serves the ``st.App`` it finds there; its middleware is what
    sends CSP frame-ancestors (the browser test checks a second origin is refused)."""
    from streamlit.web.server.app_discovery import discover_asgi_app

    from calmcall import webapp
    from calmcall.config import Settings

    found = discover_asgi_app(APP)
    assert found.is_asgi_app and found.import_string == "app:app"
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    for origins, policy in (([], "frame-ancestors 'self'"),
                            (["https://portal.example"], "frame-ancestors 'self' https://portal.example")):
        ok = Starlette(routes=[Route("/", lambda r: PlainTextResponse("ok"))],
                       middleware=webapp.middleware(Settings(frame_ancestors=origins)))
        r = TestClient(ok).get("/")
        assert r.headers["content-security-policy"] == policy
        assert r.headers["x-content-type-options"] == "nosniff"

"""End to end in a real browser: ``streamlit run app.py`` on 127.0.0.1, driven by Playwright
for Python with Debian's Chromium (``scripts/ci_browser.sh`` installs it; ``playwright
install`` is never used: it downloads a browser). Checks what a learner and an HR admin
meet: summary-first feedback in the UI language, passages in the UI language with the
original a click away, learner privacy, a page on another origin refused when it frames the
app, and the API's /docs working with no internet."""

from __future__ import annotations

import http.server
import threading
import time
import urllib.request
from pathlib import Path

import _browser
import pytest
from _browser import needs_chromium

FIRST_LOAD_S = 600  # a cold data dir: the first page builds the index
PASSPHRASE = "browser passphrase 1"
WEAK = "I would stay calm and listen to the customer until they have finished talking."
ANSWER = (
    "First I let the caller tell the whole story without interrupting and I note the key points. "
    "I stay calm and keep an even tone. I show empathy: I understand how frustrating this must be. "
    "Then I repeat back what I heard, and I apologise that they had this bad experience. "
    "Finally I offer two or three options within our policy, such as a refund or a replacement."
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    needs_chromium,
]


@pytest.fixture(scope="module")
def app_data(tmp_path_factory):
    return tmp_path_factory.mktemp("browser-data")


@pytest.fixture(scope="module")
def app_url(app_data):
    """A real Streamlit server on loopback with its own (fresh) data dir."""
    url, stop = _browser.start_app(app_data, timeout_s=60)
    yield url
    stop()


@pytest.fixture(scope="module")
def browser():
    b, stop = _browser.launch_chromium()
    yield b
    stop()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    pg = context.new_page()
    dialogs: list[str] = []
    pg.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    pg.dialogs = dialogs
    yield pg
    context.close()


def wait_idle(pg, timeout_s: float = 60) -> None:
    """Until Streamlit has finished the current script run."""
    pg.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=timeout_s * 1000)


def open_practice(pg, url: str) -> None:
    pg.goto(url)
    pg.locator("textarea").first.wait_for(timeout=FIRST_LOAD_S * 1000)
    wait_idle(pg)


def submit(pg, answer: str) -> None:
    pg.locator("textarea").first.fill(answer)
    pg.get_by_role("button", name="Get feedback").click()


def save_shot(pg, tmp_path: Path, name: str) -> Path:
    """Full-height screenshot (Streamlit scrolls inside its main block, not the page)."""
    return _browser.save_shot(pg, tmp_path / name, streamlit=True)


def open_page(pg, url: str) -> None:
    pg.goto(url)
    pg.locator("textarea").first.wait_for(timeout=FIRST_LOAD_S * 1000)
    wait_idle(pg)


def sign_in(pg, learner: str, passphrase: str = PASSPHRASE, new: bool = True) -> None:
    """Type a name in the sidebar and open it with its passphrase (chosen on first use)."""
    pg.get_by_role("textbox", name="Your name or learner id").fill(learner)
    pg.keyboard.press("Tab")
    wait_idle(pg)
    label = "Choose a passphrase for this name" if new else "Passphrase"
    pg.get_by_label(label, exact=True).fill(passphrase)
    pg.get_by_role("button", name="Protect my history" if new else "Open my history").click()
    # the click's rerun may not have started when wait_idle looks: wait for its result
    pg.get_by_text(f"Signed in as {learner}").wait_for(timeout=30_000)
    wait_idle(pg)


def submit_key(pg, answer: str) -> None:
    """Submit by the button's key (its label changes with the UI language)."""
    pg.locator("textarea").first.fill(answer)
    pg.locator(".st-key-submit button").click()
    pg.get_by_test_id("stMetricValue").first.wait_for(timeout=30_000)
    wait_idle(pg)


def tops(pg, *selectors: str) -> list[float]:
    """The elements' vertical positions in one snapshot: measured one call at a time, a
    scroll of Streamlit's main block between two calls (seen under CI load) reorders them."""
    handles = [pg.locator(s).first.element_handle(timeout=10_000) for s in selectors]
    return pg.evaluate("els => els.map(e => e.getBoundingClientRect().top)", handles)


def test_write_an_answer_and_get_feedback(app_url, page, tmp_path):
    open_page(page, app_url)
    sign_in(page, "browser-learner")
    assert page.get_by_text("Signed in as browser-learner").is_visible()
    t0 = time.perf_counter()
    submit(page, ANSWER)
    score = page.get_by_test_id("stMetricValue").first
    score.wait_for(timeout=30_000)
    elapsed = time.perf_counter() - t0
    assert score.inner_text().endswith("/100") and int(score.inner_text().split("/")[0]) >= 60
    wait_idle(page)
    # the learner's own sentences are highlighted under the steps they cover
    assert page.locator("mark.cc-covered").count() >= 4
    assert page.get_by_text("without interrupting", exact=False).first.is_visible()
    assert page.get_by_text("Saved to your progress").is_visible()
    shot = save_shot(page, tmp_path, "browser_practice_feedback.png")
    assert shot.stat().st_size > 20_000
    assert elapsed < 10, elapsed  # the budget is 1 s on a warm server; bench/bench_app.py measures it


def test_feedback_is_summary_first_and_passages_are_in_the_ui_language(app_url, page, tmp_path):
    """An English answer in the Swedish UI: the score, the one fix and the warnings come first;
    the steps to add follow, one line each; a quote opens in Swedish, its original behind
    one more click, and the English translation is not shown at all."""
    open_page(page, f"{app_url}/?lang=sv")
    submit_key(page, WEAK)
    summary = page.locator(".st-key-cc_summary")
    assert summary.is_visible()
    assert "Åtgärda detta först" in summary.inner_text()  # the one fix, in Swedish
    box = summary.bounding_box()
    assert box["height"] < 400, box  # short
    order = tops(page, ".st-key-cc_summary", "h4:has-text('Vad du kan lägga till')", "h4:has-text('Förväntade steg')")
    assert order == sorted(order), order
    # missing steps: title and status in Swedish on each card, the quote folded away
    gap = page.locator(".st-key-cc_gap_empathise")
    assert "saknas" in gap.inner_text() and "missing" not in gap.inner_text()
    hu_original = "a durva ügyfél kezelésének legegyszerűbb módja"
    english = "The simplest way to handle a rude customer"
    assert not page.get_by_text(hu_original, exact=False).first.is_visible()
    gap.get_by_text("Vad artiklarna säger").click()
    swedish = page.get_by_text("Det enklaste sättet att hantera en otrevlig kund", exact=False).first
    swedish.wait_for(timeout=10_000)
    assert swedish.is_visible()
    assert not page.get_by_text(hu_original, exact=False).first.is_visible()  # one more click
    assert page.get_by_text(english, exact=False).count() == 0  # never three versions
    gap.get_by_text("Original (ungerska)").first.click()
    page.get_by_text(hu_original, exact=False).first.wait_for(state="visible", timeout=10_000)
    save_shot(page, tmp_path, "browser_feedback_sv.png")


def test_a_harmful_answer_is_stopped_at_the_top(app_url, page, tmp_path):
    open_page(page, app_url)
    submit_key(page, "I would tell him he's an idiot and that he should shut up.")
    summary = page.locator(".st-key-cc_summary")
    alert = summary.get_by_test_id("stAlertContentError").first
    assert alert.is_visible() and "disqualifies" in alert.inner_text()
    score = int(page.get_by_test_id("stMetricValue").first.inner_text().split("/")[0])
    assert score <= 20
    # on the first screen after submitting: the scroll runs in a component frame that loads
    # after the rerun settles, so give it a moment rather than read the position at once
    alert.evaluate("e => new Promise((ok, no) => { const t0 = Date.now(); const f = () => "
                   "e.getBoundingClientRect().top < 1000 ? ok(true) : Date.now() - t0 > 10000 ? "
                   "no(new Error('alert at ' + e.getBoundingClientRect().top)) : setTimeout(f, 100); f(); })")
    assert alert.bounding_box()["y"] < 1000
    save_shot(page, tmp_path, "browser_feedback_harm.png")


def test_a_learners_history_is_theirs(app_url, browser, tmp_path):
    """Two people, two browsers, one name: the second sees nothing without the passphrase."""
    name = f"private-{int(time.time())}"
    first = browser.new_context(viewport={"width": 1280, "height": 1000}).new_page()
    open_page(first, app_url)
    sign_in(first, name)
    submit(first, ANSWER)
    first.get_by_text("Saved to your progress").wait_for(timeout=30_000)
    first.context.close()

    other = browser.new_context(viewport={"width": 1280, "height": 1000}).new_page()
    open_page(other, app_url)
    other.get_by_role("textbox", name="Your name or learner id").fill(name)
    other.keyboard.press("Tab")
    wait_idle(other)
    other.get_by_test_id("stSidebar").get_by_text("Progress").first.click()
    other.get_by_text("This name is protected", exact=False).first.wait_for(timeout=30_000)
    wait_idle(other)
    assert other.get_by_test_id("stMetricValue").count() == 0 and other.get_by_test_id("stDataFrame").count() == 0
    other.get_by_label("Passphrase", exact=True).fill("a wrong guess")
    other.get_by_role("button", name="Open my history").click()
    other.get_by_text("That passphrase does not match this name.").wait_for(timeout=30_000)
    assert other.get_by_test_id("stMetricValue").count() == 0
    save_shot(other, tmp_path, "browser_privacy_locked.png")
    other.get_by_label("Passphrase", exact=True).fill(PASSPHRASE)
    other.get_by_role("button", name="Open my history").click()
    other.get_by_test_id("stMetricValue").first.wait_for(timeout=30_000)
    assert other.get_by_test_id("stMetricValue").first.inner_text() == "1"  # their one attempt
    other.context.close()


class _Portal(http.server.SimpleHTTPRequestHandler):
    """A page on another origin that frames the app (and, as a control, one of its own)."""

    app_url = ""

    def do_GET(self):  # noqa: N802 - http.server's name
        if self.path.startswith("/own"):
            body = b"<html><body><p id=own>a page of the portal itself</p></body></html>"
        else:
            src = self.app_url if self.path.startswith("/portal") else "/own"
            body = (f"<html><body><h1>Portal</h1><iframe id=coach src='{src}' width=900 height=600>"
                    f"</iframe></body></html>").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # quiet
        pass


def test_a_page_on_another_origin_cannot_frame_the_app(app_url, page, tmp_path):
    """CALMCALL_FRAME_ANCESTORS is unset for this server: only the app itself may frame it."""
    with urllib.request.urlopen(app_url) as r:
        assert r.headers["Content-Security-Policy"] == "frame-ancestors 'self'"
    handler = type("Portal", (_Portal,), {"app_url": app_url + "/"})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    portal = f"http://localhost:{server.server_address[1]}"  # another host and port: another origin
    try:
        page.goto(f"{portal}/control")  # the iframe works for a page the portal may frame
        page.frame_locator("#coach").locator("#own").wait_for(timeout=10_000)
        page.goto(f"{portal}/portal")
        page.wait_for_timeout(3000)
        coach = next(f for f in page.frames if f is not page.main_frame)
        assert coach.url.startswith("chrome-error://"), coach.url  # refused by the browser
        assert page.frame_locator("#coach").locator("textarea").count() == 0
        save_shot_plain(page, tmp_path, "browser_framing_refused.png")
    finally:
        server.shutdown()


def save_shot_plain(pg, tmp_path: Path, name: str) -> Path:
    return _browser.save_shot(pg, tmp_path / name, full_page=False)


@pytest.fixture(scope="module")
def api_url(tmp_path_factory):
    """The HR API (uvicorn in this process) on loopback, for its docs pages."""
    from calmcall.config import Settings

    url, stop = _browser.start_api(Settings(data_dir=tmp_path_factory.mktemp("api-docs-data")), warm=False,
                                   timeout_s=30)
    yield url
    stop()


def test_api_docs_work_without_internet(api_url, browser, tmp_path):
    """/docs and /redoc render with every request to anything but this server refused."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    outside: list[str] = []

    def only_loopback(route):
        if route.request.url.startswith(api_url):
            return route.continue_()
        outside.append(route.request.url)
        return route.abort()

    context.route("**/*", only_loopback)
    pg = context.new_page()
    pg.goto(f"{api_url}/docs")
    pg.locator(".opblock").first.wait_for(timeout=30_000)  # Swagger UI drew the operations
    assert pg.locator(".opblock").count() >= 8
    assert pg.get_by_text("/v1/embed-tokens").first.is_visible()
    save_shot_plain(pg, tmp_path, "browser_api_docs.png")
    assert outside == []  # nothing was even asked of a CDN
    pg.goto(f"{api_url}/redoc")
    pg.locator("h2", has_text="Mint an embed token for one learner").first.wait_for(timeout=30_000)
    # ReDoc's bundle links its "powered by" logo from its maker's site: an image, nothing more
    assert all(url.endswith(".svg") for url in outside), outside
    context.close()


def test_html_in_an_answer_is_shown_as_text_in_the_browser(app_url, page, tmp_path):
    open_practice(page, app_url)
    evil = ("<script>alert('xss')</script><img src=x onerror=\"alert('img')\"><b id=injected>I stay calm</b> "
            "and I listen to the whole story without interrupting. 😊 Jag lyssnar lugnt på kunden.")
    submit(page, evil)
    page.get_by_test_id("stMetricValue").first.wait_for(timeout=30_000)
    wait_idle(page)
    page.get_by_text("Your answer, with the sentences that earned credit highlighted").click()
    answer_box = page.locator(".cc-answer")
    answer_box.wait_for()
    assert "<script>alert('xss')</script>" in answer_box.inner_text()  # shown, as text
    assert page.locator("#injected").count() == 0 and page.locator("img[src=x]").count() == 0
    assert page.dialogs == []  # nothing ran
    assert page.locator("textarea").first.input_value() == evil  # nothing lost
    save_shot(page, tmp_path, "browser_html_answer.png")


def test_empty_answer_shows_a_message(app_url, page):
    open_practice(page, app_url)
    submit(page, "   ")
    page.get_by_text("Your answer is empty").wait_for(timeout=30_000)
    assert page.get_by_test_id("stMetricValue").count() == 0


def test_embed_with_a_forged_token_is_refused(app_url, page, tmp_path):
    page.goto(f"{app_url}/?embed=true&token=v1.eyJvcmciOiJhY21lIn0.forged")
    page.get_by_test_id("stAlert").first.wait_for(timeout=FIRST_LOAD_S * 1000)
    wait_idle(page)
    assert "not valid" in page.get_by_test_id("stAlert").first.inner_text()
    assert page.locator("textarea").count() == 0
    assert page.get_by_text("Traceback").count() == 0
    save_shot(page, tmp_path, "browser_embed_refused.png")


def test_a_fresh_install_logs_no_database_error(app_url, app_data, page):
    """The server's xAPI sender starts once the warm-up has migrated the attempts store:
    started before, it queried a database without tables ("no such table: org_lrs")."""
    import time

    page.goto(app_url)
    page.locator("textarea").first.wait_for(timeout=60_000)
    log = app_data / "streamlit.log"
    # the sender polls as soon as it starts; give a server started just now 20 s for it
    time.sleep(max(0.0, 20 - (time.time() - log.stat().st_ctime)))
    text = log.read_text(errors="replace")
    assert "no such table" not in text and "OperationalError" not in text, text[-2000:]

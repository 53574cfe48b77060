"""Shared pieces of the browser tests (tests/test_browser.py, tests/test_lms_browser.py, the
voice browser test): real servers on 127.0.0.1 and Debian's Chromium driven by Playwright.

Why one module: each test used to carry its own copy of the port picking, the Streamlit
subprocess and its health wait, the in-process uvicorn thread and the Chromium launch; a fix
in one (a longer start-up wait on a loaded machine, say) did not reach the others.

API (everything returns a ``stop`` callable rather than being a fixture, so a test can start
servers lazily, e.g. once it knows the origin that will frame the app)::

    url, stop = start_app(data_dir, env={"CALMCALL_FRAME_ANCESTORS": origin})  # streamlit run app.py
    url, stop = start_api(settings, coach)                # the HR API (uvicorn thread, this process)
    browser, stop = launch_chromium(extra_args=("--use-fake-ui-for-media-stream",))
    save_shot(page, tmp_path / "x.png", streamlit=True)   # also copied to bench/results/

``playwright install`` is never used (it downloads a browser): ``scripts/ci_browser.sh``
installs Debian's Chromium and :data:`needs_chromium` skips when it is missing.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ("--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run")
RESULTS = REPO / "bench" / "results"
needs_chromium = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                    reason="Chromium not installed (bash scripts/ci_browser.sh)")

Stop = Callable[[], None]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def app_env(data_dir: Path, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without any ``CALMCALL_*`` setting (the app gets only what
    the test gives it), offline model hubs, the data dir, then ``env`` on top."""
    out = {k: v for k, v in os.environ.items() if not k.startswith("CALMCALL_")}
    out.update(CALMCALL_DATA_DIR=str(data_dir), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    out.update(env or {})
    return out


def start_app(data_dir: Path, env: Mapping[str, str] | None = None, *, timeout_s: float = 120,
              log_name: str = "streamlit.log") -> tuple[str, Stop]:
    """``streamlit run app.py`` on a free loopback port with :func:`app_env` (``CALMCALL_*``
    settings go in ``env``); returns its URL (no trailing slash) once ``/_stcore/health`` is
    ok, and a ``stop`` that terminates it. Fails the test with the log tail if it does not
    come up. The log is ``data_dir / log_name``."""
    port = free_port()
    log_path = Path(data_dir) / log_name
    log = open(log_path, "wb")  # noqa: SIM115 - closed by stop()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(REPO / "app.py"),
         "--server.port", str(port), "--server.address", "127.0.0.1", "--server.headless", "true",
         "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
        cwd=REPO, env=app_env(data_dir, env), stdout=log, stderr=subprocess.STDOUT,
    )

    def stop() -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        log.close()

    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.read().strip() == b"ok":
                    return url, stop
        except OSError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            stop()
            pytest.fail("streamlit did not start:\n" + log_path.read_text(errors="replace")[-3000:])
        time.sleep(0.3)


def start_api(settings, coach=None, *, port: int | None = None, warm: bool | None = None,
              timeout_s: float = 120) -> tuple[str, Stop]:
    """The HR API (``create_app(settings, coach)``) served by uvicorn in a thread of this
    process, so it shares the session's loaded models; returns its URL (no trailing slash)
    and a ``stop``. Without a coach it does not warm up (models load on first use) unless
    ``warm=True``: enough for the docs pages."""
    import uvicorn

    from calmcall.api.app import create_app

    port = port or free_port()
    app = create_app(settings, coach, warm=coach is not None if warm is None else warm)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + timeout_s
    while not server.started and thread.is_alive() and time.time() < deadline:
        time.sleep(0.1)

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=15)

    if not server.started:
        stop()
        pytest.fail("the API did not start")
    return f"http://127.0.0.1:{port}", stop


def launch_chromium(extra_args: Iterable[str] = ()) -> tuple[object, Stop]:
    """Debian's Chromium under Playwright (skips the test when Playwright is missing);
    ``extra_args`` are appended to :data:`CHROMIUM_ARGS` (fake media devices, say). Returns
    the Playwright ``Browser`` and a ``stop`` closing it and Playwright."""
    sync_api = pytest.importorskip("playwright.sync_api")
    playwright = sync_api.sync_playwright().start()
    try:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, *extra_args])
    except Exception:
        playwright.stop()
        raise

    def stop() -> None:
        try:
            browser.close()
        finally:
            playwright.stop()

    return browser, stop


def save_shot(page, path: Path, *, streamlit: bool = False, full_page: bool = True) -> Path:
    """Screenshot to ``path``, copied to bench/results/ when that directory exists (CI keeps
    it). ``streamlit=True`` first grows the viewport to the app's main block: Streamlit
    scrolls inside that block, so a plain full-page shot would cut it off."""
    path = Path(path)
    if streamlit:
        height = page.evaluate(
            "() => document.querySelector('[data-testid=stMainBlockContainer]').getBoundingClientRect().height"
        )
        page.set_viewport_size({"width": 1280, "height": min(max(1000, int(height) + 200), 16000)})
        time.sleep(0.5)
    page.screenshot(path=str(path), full_page=full_page)
    if RESULTS.is_dir():
        shutil.copy(path, RESULTS / path.name)
    return path

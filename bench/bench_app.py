"""Streamlit app speed, measured in a real browser: ``python bench/bench_app.py [--json]``.

Starts ``streamlit run app.py`` on 127.0.0.1 and drives it with Playwright (Debian's
Chromium at /usr/bin/chromium; ``bash scripts/ci_browser.sh`` installs it):

* cold start: the first page of a fresh server (the Coach loads its models and index;
  with a new data dir that includes building the index);
* first page ready on a warm server: a new browser session opens the app until the
  Practice page is drawn and idle (targets: <= 3 s);
* feedback latency: "Get feedback" clicked until the score is on screen (target: <= 1 s),
  and until the whole report (checklist, quotes, tips, model answer) is drawn;
* ask latency: a chat question sent until the answer is on screen.

Clicks and Enter are sent from inside the page and timed there (performance.now() and a
MutationObserver), so the figures are what a user waits, without Playwright's own checks.

Figures are for README; ``bench/results/`` gets a JSON copy and a screenshot when it exists.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ANSWERS = [
    "First I let the caller tell the whole story without interrupting. I stay calm and keep an even tone. "
    "I say I understand how frustrating this is, repeat back the problem, apologise for the experience "
    "and offer two options within our policy.",
    "Jag skulle lyssna lugnt på kunden utan att avbryta, be om ursäkt för besväret och erbjuda två alternativ.",
    "Először végighallgatnám a hívót, nyugodt maradnék, bocsánatot kérnék és két lehetőséget ajánlanék.",
    "Ascolterei il cliente senza interromperlo, resterei calmo, mi scuserei e offrirei due soluzioni.",
    "Ik laat de klant eerst uitpraten, blijf kalm, bied mijn excuses aan en stel twee oplossingen voor.",
]
QUESTIONS = ["Should I put an angry caller on hold?", "Vad gör jag om kunden svär åt mig?",
             "Come resto calmo con un cliente offensivo?"]


# Click a button the way a user does and time, in the page itself, until each selector is
# in the DOM (Playwright's own click adds its actionability checks, which no user waits for).
CLICK_AND_WATCH = """
([label, first, last]) => new Promise((resolve, reject) => {
  const t0 = performance.now();
  let tFirst = null;
  const check = () => {
    if (tFirst === null && document.querySelector(first)) tFirst = performance.now() - t0;
    if (tFirst !== null && document.querySelector(last)) {
      obs.disconnect();
      resolve([tFirst / 1000, (performance.now() - t0) / 1000]);
    }
  };
  const obs = new MutationObserver(check);
  obs.observe(document.body, {subtree: true, childList: true});
  const button = [...document.querySelectorAll('button')].find(b => b.innerText.includes(label));
  if (!button) { obs.disconnect(); reject(new Error('no button ' + label)); return; }
  button.click();
  setTimeout(() => { obs.disconnect(); reject(new Error('timeout')); }, 60000);
})
"""
ENTER_AND_WATCH = """
([text, n]) => new Promise((resolve, reject) => {
  const box = document.querySelector('[data-testid=stChatInputTextArea]');
  const t0 = performance.now();
  const obs = new MutationObserver(() => {
    const msgs = document.querySelectorAll('[data-testid=stChatMessage]');
    if (msgs.length >= n && msgs[n - 1].querySelector('[data-testid=stMarkdownContainer]')) {
      obs.disconnect();
      resolve((performance.now() - t0) / 1000);
    }
  });
  obs.observe(document.body, {subtree: true, childList: true});
  box.dispatchEvent(new KeyboardEvent('keydown', {key: 'Enter', code: 'Enter', keyCode: 13, bubbles: true}));
  setTimeout(() => { obs.disconnect(); reject(new Error('timeout')); }, 60000);
})
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(data_dir: str, port: int):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALMCALL_")}
    env.update(CALMCALL_DATA_DIR=data_dir, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(REPO / "app.py"), "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false",
         "--server.fileWatcherType", "none"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.read().strip() == b"ok":
                    return proc, url
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("streamlit did not start")


def idle(page, timeout_ms: float = 120_000) -> None:
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=timeout_ms)


def open_practice(browser, url: str, timeout_ms: float = 60_000):
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    t0 = time.perf_counter()
    page.goto(url)
    page.locator("textarea").first.wait_for(timeout=timeout_ms)
    idle(page, timeout_ms)
    return context, page, time.perf_counter() - t0


def summary(values: list[float]) -> dict:
    return {"n": len(values), "p50_s": round(statistics.median(values), 3), "max_s": round(max(values), 3),
            "min_s": round(min(values), 3)}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=8, help="warm page loads / submissions / questions")
    parser.add_argument("--data-dir", help="reuse a data dir (default: a fresh temp dir, so the cold start builds the index)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        raise SystemExit("Chromium not found at /usr/bin/chromium: run `bash scripts/ci_browser.sh`")
    from playwright.sync_api import sync_playwright

    data_dir = args.data_dir or tempfile.mkdtemp(prefix="calmcall-bench-app-")
    proc, url = start_server(data_dir, free_port())
    results: dict = {
        "machine": f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}",
        "fresh_data_dir": args.data_dir is None,
    }
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            context, page, cold = open_practice(browser, url, timeout_ms=900_000)
            results["cold_first_page_s"] = round(cold, 2)
            context.close()

            loads, feedback, complete, asks = [], [], [], []
            for i in range(args.runs):
                context, page, ready = open_practice(browser, url)
                loads.append(ready)
                page.locator("textarea").first.fill(ANSWERS[i % len(ANSWERS)])
                page.locator("textarea").first.blur()
                idle(page)
                score_s, report_s = page.evaluate(CLICK_AND_WATCH, ["Get feedback", "[data-testid=stMetricValue]",
                                                                   ".cc-answer"])
                feedback.append(score_s)  # the score is on screen
                complete.append(report_s)  # the whole report is drawn
                idle(page)
                if i == 0 and (REPO / "bench" / "results").is_dir():
                    page.screenshot(path=str(REPO / "bench" / "results" / "app_feedback.png"), full_page=True)
                context.close()

            context, page, _ = open_practice(browser, url)
            page.get_by_test_id("stSidebar").get_by_text("Ask").first.click()
            page.get_by_test_id("stChatInputTextArea").wait_for()
            idle(page)
            for i in range(args.runs):
                n_before = page.get_by_test_id("stChatMessage").count()
                page.get_by_test_id("stChatInputTextArea").fill(QUESTIONS[i % len(QUESTIONS)])
                asks.append(page.evaluate(ENTER_AND_WATCH, [QUESTIONS[i % len(QUESTIONS)], n_before + 2]))
                idle(page)
                page.get_by_role("button", name="New conversation").click()  # keep each answer standalone
                page.wait_for_function("() => !document.querySelector('[data-testid=stChatMessage]')")
                idle(page)
            context.close()
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=20)

    results["first_page_ready_warm"] = summary(loads)
    results["feedback_after_submit"] = summary(feedback)
    results["feedback_fully_drawn"] = summary(complete)
    results["ask_answer"] = summary(asks)
    results["targets_met"] = {
        "first_page_ready_le_3s": max(loads) <= 3.0,
        "feedback_le_1s": statistics.median(feedback) <= 1.0,
    }
    if (REPO / "bench" / "results").is_dir():
        (REPO / "bench" / "results" / "bench_app.json").write_text(json.dumps(results, indent=2))
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"machine: {results['machine']}")
    print(f"cold start, first page (fresh server{', index build' if args.data_dir is None else ''}): "
          f"{results['cold_first_page_s']:.2f} s")
    for label, key in (("first page ready, warm server", "first_page_ready_warm"),
                       ("feedback: score on screen", "feedback_after_submit"),
                       ("feedback: whole report drawn", "feedback_fully_drawn"),
                       ("ask: answer on screen", "ask_answer")):
        r = results[key]
        print(f"{label:32s} p50 {r['p50_s']:.2f} s   max {r['max_s']:.2f} s   (n={r['n']})")
    print("targets: first page <= 3 s: {}; feedback <= 1 s (p50): {}".format(
        *("met" if v else "MISSED" for v in results["targets_met"].values())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

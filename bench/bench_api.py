"""HR API grade throughput on loopback: ``python bench/bench_api.py [--seconds 20] [--concurrency 8]``.

Starts ``python -m calmcall serve`` on 127.0.0.1 (a free port; ``--workers``), with its own
temp SQLite database unless ``--database-url`` is given, creates an API key, warms up, then
has N clients POST /v1/grade (recording attempts, each with its own Idempotency-Key) for a
fixed time. Prints req/s, p50/p95/p99 latency and errors. ``--url``/``--key`` bench a server
that is already running instead. The index must exist or is built first (CALMCALL_DATA_DIR).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))] if values else float("nan")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answers() -> list[tuple[str, str]]:
    rows = [json.loads(x) for x in (REPO / "eval" / "grading.jsonl").read_text().splitlines() if x.strip()]
    return [(r["question"], r["answer"]) for r in rows]


def start_server(workers: int, database_url: str, timeout: float = 600, grade_cache: int = 0):
    port = free_port()
    env = {**os.environ, "CALMCALL_DATABASE_URL": database_url, "CALMCALL_RATE_LIMIT_PER_MINUTE": "0",
           "CALMCALL_GRADE_CACHE_SIZE": str(grade_cache),
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    log = Path(tempfile.mkstemp(prefix="calmcall-bench-api-", suffix=".log")[1])
    out = log.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "calmcall", "serve", "--host", "127.0.0.1", "--port", str(port),
         "--workers", str(workers)],
        cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {log.read_text()[-2000:]}")
        ready = log.read_text(errors="replace").count("Application startup complete") >= workers
        try:
            if ready and httpx.get(base + "/readyz", timeout=5).status_code == 200:
                proc.log_path = log  # removed with the server
                return proc, base, time.monotonic() - t0
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise SystemExit(f"server not ready in {timeout}s: {log.read_text()[-2000:]}")


def stop_server(proc) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    getattr(proc, "log_path", Path("/nonexistent")).unlink(missing_ok=True)


def run_load(base: str, key: str, seconds: float, concurrency: int, record: bool) -> dict:
    items = answers()
    latencies: list[float] = []
    errors: dict[str, int] = {}
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds
    run_id = uuid.uuid4().hex[:8]

    def client(n: int) -> None:
        i = 0
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=60) as c:
            while time.monotonic() < stop_at:
                question, answer = items[(n * 7919 + i) % len(items)]
                body = {"answer": answer, "question": question}
                headers = {}
                if record:
                    body["learner_id"] = f"bench-{n}"
                    headers["Idempotency-Key"] = f"{run_id}-{n}-{i}"
                t = time.perf_counter()
                try:
                    r = c.post("/v1/grade", json=body, headers=headers)
                    status = str(r.status_code)
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                dt = time.perf_counter() - t
                with lock:
                    if status == "200":
                        latencies.append(dt)
                    else:
                        errors[status] = errors.get(status, 0) + 1
                i += 1

    threads = [threading.Thread(target=client, args=(n,)) for n in range(concurrency)]
    t0 = time.monotonic()
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=seconds + 120)
    elapsed = time.monotonic() - t0
    ms = [x * 1000 for x in latencies]
    return {
        "requests": len(latencies),
        "seconds": round(elapsed, 1),
        "req_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(statistics.median(ms), 1) if ms else None,
        "p95_ms": round(pct(ms, 95), 1) if ms else None,
        "p99_ms": round(pct(ms, 99), 1) if ms else None,
        "errors": errors,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers for the server we start")
    parser.add_argument("--database-url", default="", help="default: a temp SQLite file")
    parser.add_argument("--no-record", action="store_true", help="grade only (no learner_id, nothing stored)")
    parser.add_argument("--grade-cache", type=int, default=0,
                        help="CALMCALL_GRADE_CACHE_SIZE for the server we start; 0 (default) embeds "
                             "every answer afresh, as if no two were alike")
    parser.add_argument("--url", help="bench this running server instead of starting one")
    parser.add_argument("--key", help="API key for --url")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    results: dict[str, object] = {
        "machine": f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}",
        "concurrency": args.concurrency,
        "recording": not args.no_record,
    }
    proc = None
    temp_db = None
    if args.url:
        if not args.key:
            raise SystemExit("--url needs --key")
        base, key = args.url.rstrip("/"), args.key
        if not base.startswith(("http://127.", "http://localhost", "http://[::1]")):
            raise SystemExit("bench only loopback servers")
    else:
        if not args.database_url:
            temp_db = tempfile.mkdtemp(prefix="calmcall-bench-db-")
        db = args.database_url or f"sqlite:///{temp_db}/bench.db"
        from calmcall.storage import AttemptStore

        _, key = AttemptStore(db).create_key(f"bench-{uuid.uuid4().hex[:6]}")
        proc, base, startup = start_server(args.workers, db, grade_cache=args.grade_cache)
        results["workers"] = args.workers
        results["grade_cache"] = args.grade_cache
        results["server_start_s"] = round(startup, 1)
    try:
        run_load(base, key, min(3.0, args.seconds), args.concurrency, not args.no_record)  # warm-up
        results.update(run_load(base, key, args.seconds, args.concurrency, not args.no_record))
    finally:
        if proc is not None:
            stop_server(proc)
        if temp_db:
            shutil.rmtree(temp_db, ignore_errors=True)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for k, v in results.items():
            print(f"{k:16} {v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Shared fixtures: every data path points at a temp dir through Settings; the real
models and stores are used (the index is built once per session)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# as .streamlit/config.toml (AppTest may run from another folder): no magic AST rewriting
os.environ.setdefault("STREAMLIT_RUNNER_MAGIC_ENABLED", "false")


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("calmcall-data")


@pytest.fixture(scope="session")
def settings(data_dir):
    from calmcall.config import Settings

    return Settings(data_dir=data_dir)


@pytest.fixture(scope="session")
def coach(settings):
    from calmcall.coach import Coach

    c = Coach(settings)
    _ = c.retriever, c.grader, c.answerer
    return c


@pytest.fixture(scope="session")
def knowledge():
    from calmcall.knowledge import load_knowledge

    return load_knowledge(REPO / "knowledge")


@pytest.fixture(scope="session")
def embedder(coach):
    return coach.embedder


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def chroma_url(tmp_path_factory):
    """A real Chroma server on loopback: CI's (CALMCALL_TEST_CHROMA_URL) or one we start."""
    url = os.environ.get("CALMCALL_TEST_CHROMA_URL")
    if url:
        yield url
        return
    exe = shutil.which("chroma") or str(Path(sys.executable).parent / "chroma")
    if not Path(exe).exists():
        pytest.skip("chroma server binary not installed")
    port = free_port()
    path = tmp_path_factory.mktemp("chroma-server")
    proc = subprocess.Popen(
        [exe, "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("chroma server did not start")
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=10)


def run_cli(*args: str, input: bytes | None = None, env: dict | None = None, timeout: int = 300):
    """Run ``python -m calmcall`` as a user would."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "calmcall", *args],
        input=input,
        capture_output=True,
        cwd=REPO,
        env=full_env,
        timeout=timeout,
    )

"""``python -m calmcall serve``: uvicorn running ``create_app`` (one Coach per worker).

With several workers the index and the database schema are prepared once, in a separate
process, before the workers start, so they never race to build or migrate; the workers
then only read the index and share the database (SQLite in WAL mode, or PostgreSQL via
``CALMCALL_DATABASE_URL``) and, with ``CALMCALL_CHROMA_URL``, one Chroma server. A worker
that dies is replaced by uvicorn's supervisor.
"""

from __future__ import annotations

import logging
import multiprocessing

log = logging.getLogger("calmcall.api")


def prepare() -> None:
    """Build/verify the index, calibrate, and migrate the database (idempotent)."""
    from ..coach import Coach

    coach = Coach()
    coach.warm()
    try:
        _ = coach.store
    except Exception as exc:  # noqa: BLE001 - the API reports it on /readyz
        log.warning("attempts database not available yet: %s", exc)


def serve(host: str = "127.0.0.1", port: int = 8000, workers: int = 1) -> int:
    import os

    import uvicorn

    # The API grades several requests at once, each on its own thread; one encoder thread per
    # request beats requests fighting over the cores with multi-threaded encoder calls
    # (2 cores, concurrency 8: 14.5 vs 12.2 req/s). An operator's own setting wins.
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    workers = max(1, int(workers))
    if workers > 1:
        proc = multiprocessing.get_context("spawn").Process(target=prepare, name="calmcall-prepare")
        proc.start()
        proc.join()
        if proc.exitcode != 0:
            log.error("preparing the index failed (exit %s); starting anyway, see /readyz", proc.exitcode)
    uvicorn.run(
        "calmcall.api.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
        access_log=False,
        timeout_graceful_shutdown=10,
        timeout_worker_healthcheck=30,
    )
    return 0

"""The HR REST API: ``create_app(settings=None, coach=None)``.

One ``Coach`` per process (models and index load once, in the lifespan, off the event
loop); handlers are plain functions run in the thread pool. Workers keep no state but the
per-key rate-limit buckets, so any number of them can share one database and one Chroma
server (``python -m calmcall serve --workers N``).
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from .. import __version__
from ..config import Settings, get_settings
from .errors import SafeJSONResponse, install_handlers
from .limits import BodyLimitMiddleware, RateLimiter, SecurityHeadersMiddleware
from .routes import ROUTERS

log = logging.getLogger("calmcall.api")

DESCRIPTION = """\
Interview practice for handling angry, rude and abusive callers, for HR onboarding portals.

**Auth**: every `/v1` call needs an organisation API key (`python -m calmcall keys create --org NAME`),
sent as `Authorization: Bearer <key>` or `X-API-Key: <key>`. An organisation only ever sees its own
learners and attempts.

**Errors** are `application/problem+json` documents with `type`, `title`, `status` and `detail`.
Limits: requests per minute per key (429 with `Retry-After`), request body size (413), answer and
question length (422).

**Embedding**: mint a token with `POST /v1/embed-tokens`, then iframe `<app>/?embed=true&token=<token>`.
"""


def create_app(settings: Settings | None = None, coach=None, warm: bool = True) -> FastAPI:
    """The ASGI app. ``coach`` may be shared (tests); else one is built at start-up."""
    if settings is None:
        settings = coach.settings if coach is not None else get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if app.state.coach is None:
            from ..coach import Coach

            app.state.coach = Coach(settings)
        if warm:
            await anyio.to_thread.run_sync(_warm, app)
        yield

    app = FastAPI(
        title="CalmCall Coach HR API",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        default_response_class=SafeJSONResponse,
    )
    app.state.settings = settings
    app.state.coach = coach
    app.state.warm_error = ""
    app.state.limiter = RateLimiter(settings.rate_limit_per_minute)
    install_handlers(app)
    for router in ROUTERS:
        app.include_router(router)

    # Middleware: last added runs first.
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type", "Idempotency-Key", "Accept"],
            expose_headers=["Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining", "Idempotent-Replayed"],
            max_age=600,
        )
    app.add_middleware(SecurityHeadersMiddleware, frame_ancestors=settings.frame_ancestors)
    return app


def _warm(app: FastAPI) -> None:
    """Load models, index and database now. A failure is logged and reported by /readyz;
    the process stays up (liveness) and requests retry what failed."""
    coach = app.state.coach
    try:
        coach.warm()
        app.state.warm_error = ""
    except Exception as exc:  # noqa: BLE001 - any load failure is reported, not fatal
        app.state.warm_error = f"warm-up failed: {type(exc).__name__}: {exc}"
        log.error("%s", app.state.warm_error)
    try:
        _ = coach.store
    except Exception as exc:  # noqa: BLE001
        log.error("attempts database not available at start-up: %s", exc)

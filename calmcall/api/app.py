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
from .docs import install_docs
from .errors import SafeJSONResponse, install_handlers
from .limits import BodyLimitMiddleware, RateLimiter, SecurityHeadersMiddleware
from .routes import ROUTERS
from .routes import roleplays as roleplay_routes
from .routes import scorm as scorm_routes
from .routes import transcribe as transcribe_routes

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
        sender = _start_xapi(app)
        yield
        await anyio.to_thread.run_sync(_stop_xapi, sender)

    app = FastAPI(
        title="CalmCall Coach HR API",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        default_response_class=SafeJSONResponse,
        docs_url=None,  # served offline by install_docs below (FastAPI's pages load a CDN)
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.coach = coach
    app.state.warm_error = ""
    app.state.limiter = RateLimiter(settings.rate_limit_per_minute)
    install_handlers(app)
    install_docs(app)
    for router in ROUTERS:
        app.include_router(router)
    app.include_router(scorm_routes.router)
    app.include_router(transcribe_routes.router)  # POST /v1/transcribe (voice)
    app.include_router(roleplay_routes.router)  # /v1/scenarios, /v1/roleplays (role-play calls)

    # Middleware: last added runs first.
    # audio uploads (multipart): the recording's limit plus room for the form fields
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes,
                       upload_max_bytes=settings.max_audio_bytes + 65536)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type", "Idempotency-Key", "Accept"],
            expose_headers=["Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining", "Idempotent-Replayed"],
            max_age=600,
        )
    app.add_middleware(scorm_routes.LaunchCorsMiddleware)  # SCORM launch page: any origin
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


def _start_xapi(app: FastAPI):
    """This worker's xAPI sender (calmcall.xapi): delivers the statements queued with each
    recorded attempt, in the background, so an LRS never slows or fails a request."""
    from ..xapi import start_sender

    coach = app.state.coach
    return start_sender(lambda: coach.store, app.state.settings, key=coach.settings.resolved_database_url)


def _stop_xapi(sender) -> None:
    from ..xapi import stop_sender

    stop_sender(sender)

"""Liveness and readiness (no key needed): for load balancers and orchestrators."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ..schemas import Health, Readiness

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, summary="Liveness: the process answers")
def healthz() -> Health:
    return Health(status="ok")


def readiness(app) -> tuple[bool, dict[str, str]]:
    """Index loaded and queryable, database reachable and migrated."""
    checks: dict[str, str] = {}
    coach = app.state.coach
    if coach is None or not all(name in coach.__dict__ for name in ("retriever", "grader", "answerer")):
        checks["index"] = app.state.warm_error or "models and index are still loading"
    else:
        try:
            count = coach.retriever.index._collection.count()
            checks["index"] = "ok" if count > 0 else "the vector index is empty; run `python -m calmcall index`"
        except Exception as exc:  # a Chroma server that went away raises many types
            checks["index"] = f"vector store not reachable: {type(exc).__name__}"
    if coach is None:
        checks["database"] = "not started"
    else:
        from ...storage import StoreUnavailable

        try:
            store = coach.__dict__.get("store") or coach.store
            checks["database"] = "ok" if store.ping() else "database not reachable"
        except StoreUnavailable:
            checks["database"] = "database not reachable"
        except Exception as exc:
            checks["database"] = f"database error: {type(exc).__name__}"
    return all(v == "ok" for v in checks.values()), checks


def xapi_backlog(app) -> dict | None:
    """The xAPI outbox (statements waiting for the LRS), when an LRS is configured."""
    coach = app.state.coach
    store = coach.__dict__.get("store") if coach is not None else None
    if store is None:
        return None
    from ...xapi import backlog, configured

    try:
        if not configured(store, app.state.settings):
            return None
    except Exception:  # noqa: BLE001 - the database check reports the cause
        return None
    try:
        return backlog(store)
    except Exception as exc:  # noqa: BLE001
        return {"error": f"outbox not readable: {type(exc).__name__}"}


@router.get(
    "/readyz",
    response_model=Readiness,
    summary="Readiness: index and database are usable",
    responses={503: {"model": Readiness, "description": "Not ready (see checks)"}},
)
def readyz(request: Request):
    ok, checks = readiness(request.app)
    body = Readiness(status="ready" if ok else "not ready", checks=checks).model_dump()
    backlog = xapi_backlog(request.app)
    if backlog is not None:  # informational: an LRS that is down never makes us unready
        body["xapi"] = backlog
    return JSONResponse(body, status_code=200 if ok else 503, headers=None if ok else {"Retry-After": "5"})

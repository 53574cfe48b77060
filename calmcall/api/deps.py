"""Dependencies: settings, the process's one Coach, the attempts store, and the
organisation behind the request's API key (``Authorization: Bearer <key>`` or
``X-API-Key: <key>``)."""

from __future__ import annotations

import re
import secrets
import threading
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Response
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..coach import Coach
from ..config import Settings
from ..storage import ApiKey, AttemptStore, Organisation, hash_key
from .errors import ApiProblem

_KEY_SHAPE = re.compile(r"^cc_[0-9a-f]{1,29}\.[A-Za-z0-9_\-]{16,200}$")
_coach_lock = threading.Lock()
_store_lock = threading.Lock()

bearer_scheme = HTTPBearer(auto_error=False, description="`Authorization: Bearer <key>`")
api_key_scheme = APIKeyHeader(name="X-API-Key", auto_error=False, description="`X-API-Key: <key>`")


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_coach(request: Request) -> Coach:
    coach = request.app.state.coach
    if coach is None:  # app used without its lifespan (e.g. a bare TestClient)
        with _coach_lock:
            if request.app.state.coach is None:
                request.app.state.coach = Coach(request.app.state.settings)
            coach = request.app.state.coach
    return coach


SettingsDep = Annotated[Settings, Depends(get_settings)]
CoachDep = Annotated[Coach, Depends(get_coach)]


def get_store(coach: CoachDep) -> AttemptStore:
    """The coach's store (created and migrated on first use; StoreUnavailable -> 503)."""
    if "store" in coach.__dict__:
        return coach.__dict__["store"]
    with _store_lock:
        return coach.store


StoreDep = Annotated[AttemptStore, Depends(get_store)]


@dataclass(frozen=True)
class Caller:
    """Who is calling: the organisation and the key id it used."""

    org_id: int
    org_name: str
    key_id: str
    org: Organisation


def _unauthorized(detail: str) -> ApiProblem:
    return ApiProblem(401, detail, "Unauthorized", headers={"WWW-Authenticate": 'Bearer realm="calmcall"'})


def authenticate(store: AttemptStore, full_key: str) -> Caller:
    """401 for a missing/unknown/wrong key, 403 for a revoked one (only when the secret
    matches, so a guesser learns nothing)."""
    full_key = full_key.strip()
    if not _KEY_SHAPE.match(full_key):
        raise _unauthorized("the API key is not valid (expected cc_<id>.<secret>)")
    key_id, _, secret = full_key.partition(".")
    with Session(store.engine, expire_on_commit=False) as s:
        key = s.scalar(select(ApiKey).where(ApiKey.key_id == key_id))
        if key is None or not secrets.compare_digest(key.key_hash, hash_key(secret)):
            raise _unauthorized("the API key is not valid")
        if key.revoked_at is not None:
            raise ApiProblem(403, f"the API key {key_id} was revoked; ask your administrator for a new one",
                             "Forbidden")
        org = s.get(Organisation, key.org_id)
    return Caller(org_id=org.id, org_name=org.name, key_id=key_id, org=org)


def current_caller(
    request: Request,
    response: Response,
    store: StoreDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    api_key: Annotated[str | None, Depends(api_key_scheme)],
) -> Caller:
    key = (bearer.credentials if bearer else None) or api_key
    if not key:
        raise _unauthorized("an API key is required: send `Authorization: Bearer <key>` or `X-API-Key: <key>`")
    caller = authenticate(store, key)
    for name, value in request.app.state.limiter.check(caller.key_id).items():
        response.headers[name] = value
    request.state.caller = caller
    return caller


CallerDep = Annotated[Caller, Depends(current_caller)]

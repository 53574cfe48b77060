"""Errors as JSON problem details (RFC 9457, ``application/problem+json``).

Every error the API sends has ``type``, ``title``, ``status`` and ``detail`` (a message
meant for the integrator); validation errors add ``errors`` (where and what). Bad input is
never a 500: user-text problems (``InputError``) are 422, an unreachable database or
vector store is 503 with ``Retry-After``.
"""

from __future__ import annotations

import json
import logging
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..inputs import InputError

log = logging.getLogger("calmcall.api")

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://calmcall.invalid/problems/"


def safe_text(value: object, limit: int = 300) -> str:
    """Text that can always be encoded (lone surrogates replaced) and is never huge."""
    text = str(value)
    if len(text) > limit:
        text = text[:limit] + "…"
    return text.encode("utf-8", "replace").decode("utf-8")


def slug(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "-").replace("'", "")
    except ValueError:
        return "error"


def problem_body(status: int, detail: str, title: str | None = None, type_: str | None = None, **extra) -> dict:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    body = {
        "type": type_ or TYPE_BASE + slug(status),
        "title": title or phrase,
        "status": status,
        "detail": safe_text(detail, 2000),
    }
    body.update(extra)
    return body


class ProblemResponse(JSONResponse):
    media_type = PROBLEM_JSON

    def render(self, content) -> bytes:
        return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "replace")


class SafeJSONResponse(JSONResponse):
    """The default response class: never fails on an unencodable character."""

    def render(self, content) -> bytes:
        return json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode(
            "utf-8", "replace"
        )


def problem(status: int, detail: str, title: str | None = None, headers: dict | None = None, **extra):
    return ProblemResponse(problem_body(status, detail, title, **extra), status_code=status, headers=headers)


class ApiProblem(StarletteHTTPException):
    """Raise anywhere in a route or dependency to answer with a problem document."""

    def __init__(self, status: int, detail: str, title: str | None = None, headers: dict | None = None,
                 type_: str | None = None, **extra):
        super().__init__(status_code=status, detail=detail, headers=headers)
        self.title = title
        self.type_ = type_
        self.extra = extra


def _validation_errors(exc: RequestValidationError) -> list[dict]:
    out = []
    for err in exc.errors()[:20]:
        loc = [x if isinstance(x, int) else safe_text(x, 100) for x in err.get("loc", ())]
        out.append({"loc": loc, "msg": safe_text(err.get("msg", ""), 300), "type": safe_text(err.get("type", ""))})
    return out


def _describe(errors: list[dict]) -> str:
    parts = []
    for e in errors[:5]:
        loc = [str(x) for x in e["loc"] if x not in ("body",)]
        where = ".".join(loc)
        parts.append(f"{where}: {e['msg']}" if where else e["msg"])
    return "; ".join(parts) or "the request is not valid"


def install_handlers(app: FastAPI) -> None:
    from sqlalchemy.exc import OperationalError

    from ..index import IndexUnavailable
    from ..storage import StoreUnavailable
    from .tokens import TokenError

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        detail = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail, default=str)
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no such endpoint: {request.method} {request.url.path}; see /openapi.json"
        elif exc.status_code == 405 and detail == "Method Not Allowed":
            detail = f"{request.method} is not allowed on {request.url.path}"
        extra = getattr(exc, "extra", {}) or {}
        body = problem_body(exc.status_code, detail, getattr(exc, "title", None), getattr(exc, "type_", None), **extra)
        return ProblemResponse(body, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        errors = _validation_errors(exc)
        if any(e["type"] == "json_invalid" for e in errors):
            return problem(400, "the request body is not valid JSON", "Malformed JSON", errors=errors)
        return problem(422, _describe(errors), "Invalid request", errors=errors)

    @app.exception_handler(InputError)
    async def _input(request: Request, exc: InputError):
        return problem(422, str(exc), "Unusable input")

    @app.exception_handler(TokenError)
    async def _token(request: Request, exc: TokenError):
        return problem(401, str(exc), "Invalid embed token", reason=exc.reason)

    @app.exception_handler(StoreUnavailable)
    async def _store(request: Request, exc: StoreUnavailable):
        log.warning("database unavailable: %s", exc)
        return problem(503, "the attempts database is not reachable; try again shortly",
                       "Service unavailable", headers={"Retry-After": "5"})

    @app.exception_handler(OperationalError)
    async def _db(request: Request, exc: OperationalError):
        log.warning("database error: %s", exc)
        return problem(503, "the attempts database is not reachable; try again shortly",
                       "Service unavailable", headers={"Retry-After": "5"})

    @app.exception_handler(IndexUnavailable)
    async def _index(request: Request, exc: IndexUnavailable):
        log.warning("vector store unavailable: %s", exc)
        return problem(503, "the knowledge index is not reachable; try again shortly",
                       "Service unavailable", headers={"Retry-After": "5"})

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception):  # pragma: no cover - a bug, logged
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(500, "an internal error occurred; it has been logged", "Internal error")


PROBLEM_SCHEMA = {
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object"}},
    },
}
_DESCRIPTIONS = {
    400: "Malformed request (not JSON, not UTF-8, bad header)",
    401: "Missing or invalid API key",
    403: "Revoked API key",
    404: "Not found (or not in your organisation)",
    409: "Idempotency-Key reused with a different request",
    413: "Request body too large",
    422: "Valid JSON, unusable values (empty or too long text, wrong types)",
    429: "Rate limit exceeded (see Retry-After)",
    503: "Database or index not reachable (see Retry-After)",
}


def problem_responses(*codes: int) -> dict:
    """OpenAPI ``responses`` entries for problem documents."""
    return {
        code: {
            "description": _DESCRIPTIONS.get(code, "Error"),
            "content": {PROBLEM_JSON: {"schema": PROBLEM_SCHEMA}},
        }
        for code in codes
    }


AUTHED = (400, 401, 403, 413, 422, 429, 503)

"""Limits: requests per minute per API key, request body size, text length.

The rate limit is a token bucket per key held in the worker process (with N workers a key
may reach N x the limit; put a shared limiter in the proxy if that matters). The body
limit is enforced before the body reaches the app, for declared and chunked bodies alike,
and JSON bodies must be UTF-8.
"""

from __future__ import annotations

import math
import threading
import time

from ..inputs import InputError, decode
from .errors import ApiProblem, problem_body

_MAX_TRACKED_KEYS = 10_000


class RateLimiter:
    """Token bucket: ``per_minute`` requests, refilled continuously; 0 disables it."""

    def __init__(self, per_minute: int, clock=time.monotonic):
        self.per_minute = int(per_minute)
        self.capacity = float(max(self.per_minute, 1))
        self.rate = self.per_minute / 60.0
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def hit(self, key: str) -> tuple[bool, int, float]:
        """Take one token for ``key``. Returns (allowed, remaining, retry_after_s)."""
        if self.per_minute <= 0:
            return True, -1, 0.0
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.get(key, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                allowed, retry = True, 0.0
            else:
                self._buckets[key] = (tokens, now)
                allowed, retry = False, (1.0 - tokens) / self.rate
            if len(self._buckets) > _MAX_TRACKED_KEYS:  # forget the fullest (idle) buckets
                for k in [k for k, (t, _) in self._buckets.items() if t >= self.capacity - 1][:1000]:
                    self._buckets.pop(k, None)
            return allowed, int(self._buckets.get(key, (0.0, 0))[0]), retry

    def check(self, key: str) -> dict[str, str]:
        """Raise a 429 problem when ``key`` is over its limit; else the headers to send."""
        allowed, remaining, retry = self.hit(key)
        if self.per_minute <= 0:
            return {}
        headers = {"X-RateLimit-Limit": str(self.per_minute), "X-RateLimit-Remaining": str(max(remaining, 0))}
        if not allowed:
            wait = max(1, math.ceil(retry))
            raise ApiProblem(
                429,
                f"rate limit of {self.per_minute} requests per minute for this API key exceeded; "
                f"retry in {wait} s",
                "Too many requests",
                headers={**headers, "Retry-After": str(wait)},
            )
        return headers


def check_text_length(text: str, what: str, max_chars: int) -> None:
    if len(text) > max_chars:
        raise ApiProblem(
            422,
            f"{what} is {len(text):,} characters; the limit is {max_chars:,}",
            "Input too long",
        )


# -- body size and encoding (pure ASGI, so it sees the raw bytes) -----------------------
async def _send_problem(send, status: int, detail: str, title: str) -> None:
    import json

    body = json.dumps(problem_body(status, detail, title), ensure_ascii=False).encode("utf-8")
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/problem+json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ],
    })
    await send({"type": "http.response.body", "body": body})


def _is_json(content_type: bytes | None) -> bool:
    if not content_type:
        return True  # FastAPI parses a body without content type as JSON
    main = content_type.split(b";", 1)[0].strip().lower()
    return main == b"application/json" or main.endswith(b"+json")


class BodyLimitMiddleware:
    """413 for bodies over ``max_bytes`` (declared or streamed); 400 for JSON that is not
    UTF-8. The body is read here once (bounded) and handed on. Multipart bodies (audio
    uploads) have their own, larger bound ``upload_max_bytes`` (default: ``max_bytes``)."""

    def __init__(self, app, max_bytes: int, upload_max_bytes: int | None = None):
        self.app = app
        self.max_bytes = int(max_bytes)
        self.upload_max_bytes = int(upload_max_bytes or max_bytes)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE"):
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        limit = self.max_bytes
        too_big = (
            f"the request body is larger than {self.max_bytes:,} bytes; "
            "send a shorter answer (see the answer length limit)"
        )
        if (headers.get(b"content-type") or b"").lower().startswith(b"multipart/form-data"):
            limit = self.upload_max_bytes
            too_big = (f"the upload is larger than {limit:,} bytes (CALMCALL_MAX_AUDIO_BYTES); "
                       "record a shorter answer")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                return await _send_problem(send, 400, "Content-Length is not a number", "Bad request")
            if size > limit:
                return await _send_problem(send, 413, too_big, "Request body too large")
        chunks: list[bytes] = []
        total = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            if message["type"] != "http.request":
                continue
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > limit:
                return await _send_problem(send, 413, too_big, "Request body too large")
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        if body and _is_json(headers.get(b"content-type")):
            try:
                decode(body, "the request body")
            except InputError as exc:
                return await _send_problem(send, 400, str(exc), "Request body is not UTF-8")
        delivered = False

        async def replay():
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)


class SecurityHeadersMiddleware:
    """CSP frame-ancestors (who may frame us) and nosniff on every response."""

    def __init__(self, app, frame_ancestors: list[str]):
        self.app = app
        sources = " ".join(["'self'", *[o for o in frame_ancestors if o and o != "'self'"]])
        self.headers = [
            (b"content-security-policy", f"frame-ancestors {sources}".encode("latin-1", "replace")),
            (b"x-content-type-options", b"nosniff"),
        ]

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in self.headers if k not in names]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        return await self.app(scope, receive, send_with_headers)

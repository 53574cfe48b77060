"""Signed, short-lived embed tokens: how a portal opens the coach for one learner.

A token is ``v1.<payload>.<signature>``, both parts base64url without padding. The
payload is JSON ``{"org": <organisation name>, "sub": <learner id>, "iat": <unix s>,
"exp": <unix s>}``; the signature is HMAC-SHA256 over ``v1.<payload>`` keyed with the
organisation's secret (``storage.Organisation.secret``, never sent anywhere).

Mint one through the API (``POST /v1/embed-tokens``) or in-process::

    from calmcall.api.tokens import mint_token
    token = mint_token(store.organisation("Acme"), "emp-1042", ttl_s=900)

Verify (the Streamlit app does this for ``?embed=true&token=…``)::

    from calmcall.api.tokens import TokenError, verify_token
    try:
        org, learner_id = verify_token(store, token)
    except TokenError as exc:
        show_refusal(str(exc))          # exc.reason: malformed | unknown_org | forged | expired
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from datetime import UTC, datetime

VERSION = "v1"
MAX_TOKEN_CHARS = 2048
CLOCK_SKEW_S = 30  # tolerated for "issued in the future"
MIN_TTL_S = 30  # shorter tokens would expire while the iframe loads (POST /v1/embed-tokens)


class TokenError(ValueError):
    """The token cannot be used; ``str(exc)`` is safe to show, ``reason`` is for code."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(secret: str, signing_input: str) -> str:
    return _b64(hmac.new(secret.encode("utf-8"), signing_input.encode("ascii"), hashlib.sha256).digest())


def mint_token(org, learner_id: str, ttl_s: int = 900, now: float | None = None) -> str:
    """A token for ``learner_id`` of ``org`` (an Organisation), valid for ``ttl_s`` seconds."""
    if not learner_id or not isinstance(learner_id, str):
        raise ValueError("learner_id must be non-empty text")
    if ttl_s <= 0:
        raise ValueError("ttl_s must be positive")
    issued = int(now if now is not None else time.time())
    payload = {"org": org.name, "sub": learner_id, "iat": issued, "exp": issued + int(ttl_s)}
    body = _b64(json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    signing_input = f"{VERSION}.{body}"
    return f"{signing_input}.{_sign(org.secret, signing_input)}"


def token_expiry(token: str) -> datetime:
    """When a (well-formed) token expires; does not check the signature."""
    return datetime.fromtimestamp(_parse(token)[1]["exp"], UTC)


def _parse(token: str) -> tuple[str, dict, str]:
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS:
        raise TokenError("the embed token is missing or malformed", "malformed")
    parts = token.strip().split(".")
    if len(parts) != 3 or parts[0] != VERSION:
        raise TokenError("the embed token is malformed (expected v1.<payload>.<signature>)", "malformed")
    try:
        payload = json.loads(_unb64(parts[1]).decode("utf-8"))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise TokenError("the embed token is malformed (unreadable payload)", "malformed") from None
    if (
        not isinstance(payload, dict)
        or not isinstance(payload.get("org"), str)
        or not isinstance(payload.get("sub"), str)
        or not payload["sub"]
        or not isinstance(payload.get("exp"), int)
        or not isinstance(payload.get("iat", 0), int)
    ):
        raise TokenError("the embed token is malformed (missing fields)", "malformed")
    for field in ("org", "sub"):
        value = payload[field]
        if len(value) > 200 or any(ord(ch) < 32 or 0xD800 <= ord(ch) <= 0xDFFF for ch in value):
            raise TokenError(f"the embed token is malformed (bad {field})", "malformed")
    if not 0 <= payload["exp"] < 2**40 or not 0 <= payload.get("iat", 0) < 2**40:
        raise TokenError("the embed token is malformed (bad times)", "malformed")
    return f"{parts[0]}.{parts[1]}", payload, parts[2]


def verify_with_secret(token: str, secret: str, now: float | None = None) -> dict:
    """Check signature and expiry against one secret; returns the payload."""
    signing_input, payload, signature = _parse(token)
    if not hmac.compare_digest(_sign(secret, signing_input), signature):
        raise TokenError(
            "the embed token's signature is not valid (forged, altered or from another organisation)",
            "forged",
        )
    current = time.time() if now is None else now
    if payload["exp"] <= current:
        when = datetime.fromtimestamp(payload["exp"], UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        raise TokenError(f"the embed token expired at {when}; open the coach from the portal again", "expired")
    if payload.get("iat", 0) > current + CLOCK_SKEW_S:
        raise TokenError("the embed token was issued in the future; check the server clocks", "malformed")
    return payload


def verify_token(store, token: str, now: float | None = None):
    """Returns ``(organisation, learner_id)`` for a valid token, else raises ``TokenError``.

    ``store`` is a ``calmcall.storage.AttemptStore`` (``Coach().store``); the organisation
    named in the token must exist and its secret must have signed the token.
    """
    _, payload, _ = _parse(token)
    org = store.organisation(payload["org"], create=False) if payload["org"] else None
    if org is None:
        # Same wording as a bad signature: a forger learns nothing about which names exist.
        raise TokenError(
            "the embed token's signature is not valid (forged, altered or from another organisation)",
            "forged",
        )
    payload = verify_with_secret(token, org.secret, now=now)
    return org, payload["sub"]

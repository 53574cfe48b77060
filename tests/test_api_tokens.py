"""Embed tokens: minted by the portal's backend, verified by the app; expired, forged,
altered and cross-organisation tokens are refused with a clear reason."""

from __future__ import annotations

import base64
import json
import time
import uuid

import pytest

from calmcall.api.tokens import TokenError, mint_token, token_expiry, verify_token, verify_with_secret
from calmcall.storage import AttemptStore


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return AttemptStore(f"sqlite:///{tmp_path_factory.mktemp('tokens') / 'db.sqlite'}")


@pytest.fixture
def orgs(store):
    tag = uuid.uuid4().hex[:6]
    return store.organisation(f"acme-{tag}"), store.organisation(f"globex-{tag}")


def _payload(token: str) -> dict:
    body = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))


def _reencode(token: str, payload: dict) -> str:
    v, _, sig = token.split(".")
    body = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    return f"{v}.{body}.{sig}"


def test_mint_and_verify_round_trip(store, orgs):
    acme, _ = orgs
    token = mint_token(acme, "emp-1042 Åsa", ttl_s=600)
    org, learner = verify_token(store, token)
    assert (org.id, org.name, learner) == (acme.id, acme.name, "emp-1042 Åsa")
    p = _payload(token)
    assert p["org"] == acme.name and p["sub"] == "emp-1042 Åsa" and p["exp"] - p["iat"] == 600
    assert acme.secret not in token
    assert abs(token_expiry(token).timestamp() - (time.time() + 600)) < 5


def test_expired_token_is_refused_with_a_clear_message(store, orgs):
    acme, _ = orgs
    token = mint_token(acme, "emp-1", ttl_s=60, now=time.time() - 3600)
    with pytest.raises(TokenError, match="expired") as exc:
        verify_token(store, token)
    assert exc.value.reason == "expired"
    # still valid one second before expiry, refused one second after
    t0 = 1_700_000_000
    token = mint_token(acme, "emp-1", ttl_s=60, now=t0)
    assert verify_with_secret(token, acme.secret, now=t0 + 59)["sub"] == "emp-1"
    with pytest.raises(TokenError):
        verify_with_secret(token, acme.secret, now=t0 + 61)


@pytest.mark.parametrize("tamper", ["learner", "expiry", "org", "signature"])
def test_altered_tokens_are_forged(store, orgs, tamper):
    acme, globex = orgs
    token = mint_token(acme, "emp-1", ttl_s=600)
    p = _payload(token)
    if tamper == "learner":
        bad = _reencode(token, {**p, "sub": "emp-2"})
    elif tamper == "expiry":
        bad = _reencode(token, {**p, "exp": p["exp"] + 86400})
    elif tamper == "org":  # replay acme's token as globex
        bad = _reencode(token, {**p, "org": globex.name})
    else:
        v, body, sig = token.split(".")
        bad = f"{v}.{body}.{sig[:-2]}{'AA' if sig[-2:] != 'AA' else 'BB'}"
    with pytest.raises(TokenError, match="signature") as exc:
        verify_token(store, bad)
    assert exc.value.reason == "forged"


def test_token_signed_with_another_organisations_secret_is_forged(store, orgs):
    acme, globex = orgs

    class Impostor:  # claims to be acme, signs with globex's secret
        name = acme.name
        secret = globex.secret

    with pytest.raises(TokenError) as exc:
        verify_token(store, mint_token(Impostor, "emp-1"))
    assert exc.value.reason == "forged"


def test_unknown_organisation_reads_as_forged(store):
    class Ghost:
        name = f"ghost-{uuid.uuid4().hex[:6]}"
        secret = "s" * 64

    with pytest.raises(TokenError) as exc:
        verify_token(store, mint_token(Ghost, "emp-1"))
    assert exc.value.reason == "forged"
    assert store.organisation(Ghost.name, create=False) is None  # verifying never creates


@pytest.mark.parametrize(
    "token",
    ["", "abc", "v1.x.y", "v2.e30.sig", "v1.!!!.sig", "v1." + "A" * 5000 + ".x",
     "v1." + base64.urlsafe_b64encode(b'{"org": 1, "sub": "x", "exp": 1}').decode().rstrip("=") + ".x",
     "v1." + base64.urlsafe_b64encode(b"[1,2]").decode().rstrip("=") + ".x",
     "v1." + base64.urlsafe_b64encode(b"\xff\xfe").decode().rstrip("=") + ".x"],
)
def test_malformed_tokens(store, token):
    with pytest.raises(TokenError) as exc:
        verify_token(store, token)
    assert exc.value.reason == "malformed"
    assert str(exc.value)


def test_mint_refuses_nonsense(orgs):
    acme, _ = orgs
    with pytest.raises(ValueError):
        mint_token(acme, "", ttl_s=60)
    with pytest.raises(ValueError):
        mint_token(acme, "x", ttl_s=0)

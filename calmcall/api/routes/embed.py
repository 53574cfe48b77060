"""POST /v1/embed-tokens: a signed, short-lived token that opens the coach (Practice only)
for one learner inside the portal's iframe: ``<app>/?embed=true&token=<token>``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Body

from ..deps import CallerDep, SettingsDep
from ..errors import AUTHED, ApiProblem, problem_responses
from ..schemas import EmbedToken, EmbedTokenRequest
from ..tokens import MIN_TTL_S, mint_token

router = APIRouter(prefix="/v1", tags=["embedding"], responses=problem_responses(*AUTHED))


@router.post("/embed-tokens", response_model=EmbedToken, status_code=201,
             summary="Mint an embed token for one learner")
def create_embed_token(
    body: Annotated[EmbedTokenRequest, Body(openapi_examples={
        "default": {"summary": "15 minutes", "value": {"learner_id": "emp-1042", "ttl_s": 900}}})],
    caller: CallerDep,
    settings: SettingsDep,
) -> EmbedToken:
    ttl = body.ttl_s or settings.embed_token_ttl_s
    if not MIN_TTL_S <= ttl <= settings.embed_token_max_ttl_s:
        raise ApiProblem(
            422,
            f"ttl_s must be between {MIN_TTL_S} and {settings.embed_token_max_ttl_s} seconds "
            f"(CALMCALL_EMBED_TOKEN_MAX_TTL_S); got {ttl}",
            "Invalid request",
        )
    now = datetime.now(UTC).timestamp()
    token = mint_token(caller.org, body.learner_id, ttl_s=ttl, now=now)
    url = None
    if settings.app_url:
        sep = "&" if "?" in settings.app_url else "?"
        url = settings.app_url + sep + urlencode({"embed": "true", "token": token})
    return EmbedToken(
        token=token,
        learner_id=body.learner_id,
        organisation=caller.org_name,
        expires_at=datetime.fromtimestamp(int(now) + ttl, UTC).isoformat(),
        embed_url=url,
    )

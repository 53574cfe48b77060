"""SCORM packages and their credentials.

Organisation admins (API key): ``POST /v1/scorm/packages`` exports a SCORM package (1.2 by
default, ``"version": "2004"`` for SCORM 2004 4th edition),
``GET /v1/package-credentials`` lists the credentials inside packages,
``DELETE /v1/package-credentials/{id}`` revokes one at once.

Packages (package credential ``pk_…``, from a learner's browser inside the LMS):
``POST /v1/scorm/launch`` mints an embed token for one learner and nothing else. It
answers CORS from any origin (an LMS's origin is not known in advance; no cookies are
involved), unless the credential was made for listed LMS origins.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Body, Depends, Path, Request
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from ... import scorm
from ...inputs import InputError
from ...storage import Organisation, PackageCredential
from ..deps import CallerDep, CoachDep, SettingsDep, StoreDep
from ..errors import AUTHED, ApiProblem, problem_responses
from ..limits import RateLimiter
from ..schemas import LearnerId, Strict

router = APIRouter(tags=["lms"])
LAUNCH_PATH = "/v1/scorm/launch"
_limiter_lock = threading.Lock()


class PackageRequest(Strict):
    question: str | None = Field(default=None, max_length=100,
                                 description="Practice question id (GET /v1/questions); default: the learner picks.")
    scenario: str | None = Field(default=None, max_length=100, description="Role-play scenario id, instead of a question.")
    title: str | None = Field(default=None, min_length=1, max_length=200, description="Title shown in the LMS.")
    mastery_score: int | None = Field(default=None, ge=0, le=100,
                                      description="Pass mark (default CALMCALL_MASTERY_SCORE, 70).")
    lang: str | None = Field(default=None, pattern="^(en|sv|hu|it|nl)$", description="Launch page and coach language.")
    lms_origins: list[Annotated[str, Field(max_length=300)]] = Field(
        default_factory=list, max_length=20,
        description="LMS origins (https://lms.example.com) allowed to launch it; empty = any.")
    version: Literal["1.2", "2004"] = Field(
        default="1.2", description="SCORM version: 1.2, or 2004 (4th edition: API_1484_11, scaled score, "
                                   "completion and success status).")

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"question": "q01_angry_call", "mastery_score": 70, "lms_origins": ["https://lms.example.com"]},
                     {"question": "q01_angry_call", "mastery_score": 70, "version": "2004"}]})


class PackageCredentialOut(BaseModel):
    credential_id: str
    organisation: str
    label: str
    question: str | None
    scenario: str | None
    lms_origins: list[str]
    created_at: str | None
    revoked: bool


class LaunchRequest(Strict):
    learner_id: LearnerId

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"learner_id": "emp-1042"}]})


class LaunchToken(BaseModel):
    token: str
    embed_url: str | None = Field(default=None, description="The coach page to frame (when CALMCALL_APP_URL is set).")
    learner_id: str
    organisation: str
    question: str | None
    scenario: str | None
    expires_at: str


@router.post(
    "/v1/scorm/packages",
    status_code=201,
    summary="Export a SCORM package (1.2 or 2004) for your LMS",
    responses={
        **problem_responses(*AUTHED),
        201: {"content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}},
              "description": "The package (zip); header X-Package-Credential names its credential, "
                             "X-Scorm-Version its SCORM version (1.2 or 2004)"},
    },
    response_class=Response,
)
def export_package(
    request: Request,
    body: Annotated[PackageRequest, Body()],
    caller: CallerDep,
    coach: CoachDep,
    store: StoreDep,
    settings: SettingsDep,
) -> Response:
    if not settings.app_url:
        raise ApiProblem(422, "the server has no public app URL (CALMCALL_APP_URL); the package could not "
                              "open the coach", "Not configured")
    try:
        package = scorm.build_package(
            store, settings, coach.catalogue, org_name=caller.org_name, question=body.question,
            scenario=body.scenario, api_url=settings.api_url or str(request.base_url), mastery_score=body.mastery_score,
            title=body.title, lang=body.lang, lms_origins=body.lms_origins, version=body.version,
        )
    except InputError as exc:
        raise ApiProblem(422, str(exc), "Invalid request") from None
    stamp = datetime.now(UTC).strftime("%Y%m%d")
    suffix = "-2004" if package.version == "2004" else ""  # the 1.2 file name is unchanged
    return Response(package.data, status_code=201, media_type="application/zip", headers={
        "Content-Disposition": f'attachment; filename="calmcall-scorm{suffix}-{stamp}.zip"',
        "X-Package-Credential": package.credential_id,
        "X-Scorm-Version": package.version,
    })


@router.get("/v1/package-credentials", response_model=list[PackageCredentialOut],
            summary="The package credentials of your organisation", responses=problem_responses(*AUTHED))
def list_package_credentials(caller: CallerDep, store: StoreDep) -> list[PackageCredentialOut]:
    return [PackageCredentialOut(**c) for c in scorm.list_credentials(store, caller.org_id)]


@router.delete("/v1/package-credentials/{credential_id}", status_code=204, response_class=Response,
               summary="Revoke a package credential (its packages stop launching at once)",
               responses=problem_responses(*AUTHED, 404))
def revoke_package_credential(
    credential_id: Annotated[str, Path(min_length=1, max_length=32, examples=["pk_0123456789ab"])],
    caller: CallerDep,
    store: StoreDep,
) -> Response:
    if not scorm.revoke_credential(store, credential_id, org_id=caller.org_id):
        raise ApiProblem(404, f"no active package credential {credential_id!r} in your organisation", "Not found")
    return Response(status_code=204)


def _package_limiter(request: Request, settings) -> RateLimiter:
    limiter = getattr(request.app.state, "package_limiter", None)
    if limiter is None:
        with _limiter_lock:
            limiter = getattr(request.app.state, "package_limiter", None)
            if limiter is None:
                limiter = request.app.state.package_limiter = RateLimiter(settings.package_rate_limit_per_minute)
    return limiter


package_scheme = HTTPBearer(auto_error=False, scheme_name="PackageCredential",
                            description="`Authorization: Bearer pk_<id>.<secret>`: the credential in a SCORM package")


def package_caller(
    request: Request,
    store: StoreDep,
    settings: SettingsDep,
    response: Response,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(package_scheme)],
) -> tuple[Organisation, PackageCredential]:
    """The organisation and package credential behind the request (401/403), rate-limited."""
    if bearer is None or not bearer.credentials:
        raise ApiProblem(401, "a package credential is required: `Authorization: Bearer pk_<id>.<secret>`",
                         "Unauthorized", headers={"WWW-Authenticate": 'Bearer realm="calmcall-package"'})
    try:
        org, cred = scorm.authenticate(store, bearer.credentials, request.headers.get("origin"))
    except scorm.CredentialError as exc:
        raise ApiProblem(exc.status, str(exc), "Unauthorized" if exc.status == 401 else "Forbidden") from None
    for name, value in _package_limiter(request, settings).check(cred.cred_id).items():
        response.headers[name] = value
    return org, cred


@router.post(
    LAUNCH_PATH,
    response_model=LaunchToken,
    status_code=201,
    summary="From a SCORM package: open the coach for one learner (package credential only)",
    responses=problem_responses(400, 401, 403, 413, 422, 429, 503),
)
def launch(
    body: Annotated[LaunchRequest, Body()],
    package: Annotated[tuple[Organisation, PackageCredential], Depends(package_caller)],
    settings: SettingsDep,
) -> LaunchToken:
    org, cred = package
    ttl = settings.embed_token_ttl_s
    now = datetime.now(UTC).timestamp()
    token = scorm.mint_launch_token(org, body.learner_id, ttl, now=now)
    url = scorm.embed_url(settings.app_url, token, cred.question_id, cred.scenario_id) if settings.app_url else None
    return LaunchToken(token=token, embed_url=url, learner_id=body.learner_id, organisation=org.name,
                       question=cred.question_id, scenario=cred.scenario_id,
                       expires_at=datetime.fromtimestamp(int(now) + ttl, UTC).isoformat())


class LaunchCorsMiddleware:
    """CORS for ``POST /v1/scorm/launch`` only: any origin may call it (the credential, not
    the origin, is what is checked; no cookies), preflights are answered here."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("path") != LAUNCH_PATH:
            return await self.app(scope, receive, send)
        origin = dict(scope.get("headers") or []).get(b"origin")
        if origin is None:
            return await self.app(scope, receive, send)
        cors = [(b"access-control-allow-origin", origin), (b"vary", b"Origin"),
                (b"access-control-expose-headers", b"Retry-After, X-RateLimit-Limit, X-RateLimit-Remaining")]
        if scope["method"] == "OPTIONS":
            await send({"type": "http.response.start", "status": 204, "headers": cors + [
                (b"access-control-allow-methods", b"POST"),
                (b"access-control-allow-headers", b"Authorization, Content-Type"),
                (b"access-control-max-age", b"600"),
            ]})
            await send({"type": "http.response.body", "body": b""})
            return None

        async def send_with_cors(message):
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in cors if k not in names]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        return await self.app(scope, receive, send_with_cors)

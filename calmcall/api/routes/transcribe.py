"""POST /v1/transcribe: a spoken answer (multipart audio) -> the ``transcribe --json``
document. Also the request side of audio on ``POST /v1/grade``: :func:`grade_input` reads
either the JSON body or a multipart upload, so one endpoint takes both.

Limits, never a 500: a body over ``CALMCALL_MAX_AUDIO_BYTES`` is 413 (checked before the
body is read, by the body-limit middleware); a recording over ``CALMCALL_MAX_AUDIO_SECONDS``
is 422; a file that is not audio is 415; a damaged, empty or silent one is 422; a
recogniser that cannot run on this server (model package missing) is 503.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, ValidationError

from ...delivery import Delivery, Transcript
from ...language import SUPPORTED
from ...speech import SUPPORTED_FORMATS, AudioError, SpeechUnavailable
from ..deps import CallerDep, CoachDep, SettingsDep
from ..errors import AUTHED, ApiProblem, problem_responses
from ..schemas import GradeRequest, LearnerId, Text

router = APIRouter(prefix="/v1", tags=["coach"], responses=problem_responses(*AUTHED))

Lang = Literal[SUPPORTED]  # type: ignore[valid-type]
AUDIO_DOC = f"The recording: {SUPPORTED_FORMATS} (a browser's WebM/Opus or WAV is fine)."
LANG_DOC = ("The language spoken; always given to the recogniser (auto-detection misreads Swedish and "
            "Dutch). Default en. English is the strongest language for voice.")
AUDIO_ERRORS = {
    415: "Not an audio file (or no audio track)",
    422: "Unusable recording: empty, damaged, silent, longer than the limit, or an unsupported language",
}


def audio_responses(*extra: int) -> dict:
    responses = problem_responses(415, 503, *extra)
    responses[415]["description"] = AUDIO_ERRORS[415]
    return responses


def _problem(exc: Exception) -> ApiProblem:
    if isinstance(exc, AudioError):
        titles = {413: "Recording too large", 415: "Not an audio file", 422: "Unusable recording"}
        return ApiProblem(exc.status, str(exc), titles.get(exc.status), problem=exc.problem)
    return ApiProblem(503, f"voice input is not available on this server: {exc}", "Service unavailable",
                      headers={"Retry-After": "60"})


def read_upload(upload: UploadFile, max_bytes: int) -> bytes:
    data = upload.file.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ApiProblem(413, f"the recording is larger than {max_bytes:,} bytes (CALMCALL_MAX_AUDIO_BYTES); "
                              "record a shorter answer", "Recording too large")
    return data


def transcribe_bytes(coach, data: bytes, lang: str | None) -> Transcript:
    try:
        return coach.transcribe(data, lang or "en")
    except (AudioError, SpeechUnavailable) as exc:
        raise _problem(exc) from None


@router.post(
    "/transcribe",
    response_model=Transcript,
    summary="Transcribe a spoken answer, with words per minute, fillers and long pauses",
    responses=audio_responses(),
)
def transcribe(
    audio: Annotated[UploadFile, File(description=AUDIO_DOC)],
    caller: CallerDep,
    coach: CoachDep,
    settings: SettingsDep,
    lang: Annotated[Lang | None, Form(description=LANG_DOC)] = None,
):
    transcript = transcribe_bytes(coach, read_upload(audio, settings.max_audio_bytes), lang)
    return JSONResponse(transcript.model_dump(mode="json"))


# -- POST /v1/grade with audio ----------------------------------------------------------------
class GradeAudioForm(BaseModel):
    """The multipart fields of an audio grade request (besides the file)."""

    model_config = ConfigDict(extra="forbid")
    question: Text | None = None
    learner_id: LearnerId | None = None
    lang: Lang | None = None


@dataclass
class GradeInput:
    """What ``POST /v1/grade`` was sent: a JSON answer, or a recording to transcribe first."""

    answer: str
    question: str | None
    learner_id: str | None
    audio: bytes | None = None
    lang: str | None = None


def _validation(errors: list[dict]) -> RequestValidationError:
    return RequestValidationError([{**e, "loc": ("body", *e.get("loc", ()))} for e in errors])


async def grade_input(request: Request) -> GradeInput:
    """The body of ``POST /v1/grade``: JSON (``GradeRequest``) or multipart with ``audio``.
    JSON errors answer exactly as FastAPI's own body parsing did (400 malformed, 422 invalid)."""
    main = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if main == "multipart/form-data":
        settings = request.app.state.settings
        try:
            form = await request.form(max_files=1, max_fields=10)
        except Exception as exc:  # noqa: BLE001 - a broken multipart body is the client's
            raise ApiProblem(400, f"the multipart body could not be read ({type(exc).__name__})",
                             "Malformed multipart body") from None
        upload = form.get("audio")
        if not hasattr(upload, "read"):
            raise _validation([{"type": "missing", "loc": ("audio",), "msg": "an audio file field `audio` is required",
                                "input": None}])
        fields = {k: v for k, v in form.multi_items() if k != "audio"}
        if any(not isinstance(v, str) for v in fields.values()):
            raise _validation([{"type": "string_type", "loc": (k,), "msg": "must be text, not a file", "input": None}
                               for k, v in fields.items() if not isinstance(v, str)])
        try:
            meta = GradeAudioForm.model_validate(fields)
        except ValidationError as exc:
            raise _validation(exc.errors(include_url=False, include_context=False)) from None
        data = read_upload(upload, settings.max_audio_bytes)
        return GradeInput(answer="", question=meta.question, learner_id=meta.learner_id, audio=data,
                          lang=meta.lang)
    if main and main != "application/json" and not main.endswith("+json"):
        raise ApiProblem(422, "send the answer as JSON (application/json) or a recording as multipart/form-data "
                              "with an `audio` file", "Unsupported body")
    raw = await request.body()
    if not raw:
        raise _validation([{"type": "missing", "loc": (), "msg": "Field required", "input": None}])
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise _validation([{"type": "json_invalid", "loc": (getattr(exc, "pos", 0),), "msg": "JSON decode error",
                            "input": {}, "ctx": {"error": getattr(exc, "msg", str(exc))}}]) from None
    try:
        body = GradeRequest.model_validate(data)
    except ValidationError as exc:
        raise _validation(exc.errors(include_url=False, include_context=False)) from None
    return GradeInput(answer=body.answer, question=body.question, learner_id=body.learner_id)


def grade_openapi(examples: dict) -> dict:
    """``openapi_extra`` for ``POST /v1/grade``: the JSON body and the multipart alternative."""
    multipart = {
        "type": "object",
        "required": ["audio"],
        "properties": {
            "audio": {"type": "string", "format": "binary", "description": AUDIO_DOC},
            "question": {"type": "string", "description": "Practice question id or free text; default q01."},
            "learner_id": {"type": "string", "minLength": 1, "maxLength": 200,
                           "description": "When given, the attempt is recorded (the transcript is the answer)."},
            "lang": {"type": "string", "enum": list(SUPPORTED), "description": LANG_DOC},
        },
        "additionalProperties": False,
    }
    return {"requestBody": {"required": True, "content": {
        "application/json": {"schema": GradeRequest.model_json_schema(), "examples": examples},
        "multipart/form-data": {"schema": multipart},
    }}}


def voice_payload(transcript: Transcript, delivery: Delivery) -> dict:
    return {"transcript": transcript.model_dump(mode="json"), "delivery": delivery.model_dump(mode="json")}

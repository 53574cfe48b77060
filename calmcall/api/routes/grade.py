"""POST /v1/grade: grade an answer; with a learner id the attempt is recorded, exactly once
per ``Idempotency-Key`` (a retry returns the attempt stored the first time)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Response
from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from ...storage import Attempt, Learner
from ..deps import CallerDep, CoachDep, SettingsDep, StoreDep
from ..errors import AUTHED, ApiProblem, problem_responses
from ..limits import check_text_length
from ..schemas import GradeResponse, attempt_json
from .transcribe import (
    GradeInput,
    audio_responses,
    grade_input,
    grade_openapi,
    transcribe_bytes,
    voice_payload,
)

router = APIRouter(prefix="/v1", tags=["coach"], responses=problem_responses(*AUTHED))

EXAMPLES = {
    "record": {
        "summary": "Grade and record an attempt",
        "value": {
            "question": "q01_angry_call",
            "learner_id": "emp-1042",
            "answer": "First I would stay calm and let the caller finish without interrupting. Then I would "
            "acknowledge how frustrated they are, apologise for the trouble and explain what I will do next.",
        },
    },
    "just-grade": {
        "summary": "Grade only (nothing stored)",
        "value": {"answer": "I would listen, stay calm and not take it personally, then offer a solution."},
    },
}

IDEMPOTENCY_DOC = (
    "Optional. With `learner_id`, the attempt is stored once per key: a retry with the same key "
    "returns the first attempt (header `Idempotent-Replayed: true`). 1-200 printable ASCII characters."
)


def _stored(store, org_id: int, key: str):
    with Session(store.engine) as s:
        row = s.execute(
            select(Attempt, Learner.external_id)
            .join(Learner, Attempt.learner_id == Learner.id)
            .where(Attempt.org_id == org_id, Attempt.idempotency_key == key)
        ).first()
        if row is None:
            return None
        attempt, external = row
        return attempt_json(attempt.as_dict(external)), dict(attempt.report or {})


def _check_key(key: str | None) -> str | None:
    if key is None:
        return None
    key = key.strip()
    if not key or len(key) > 200 or not all(32 <= ord(c) < 127 for c in key):
        raise ApiProblem(400, "Idempotency-Key must be 1-200 printable ASCII characters", "Bad Idempotency-Key")
    return key


@router.post(
    "/grade",
    response_model=GradeResponse,
    summary="Grade an answer (and record the attempt for a learner)",
    description="JSON `{answer, question?, learner_id?}`, or multipart/form-data with an `audio` recording "
                "(+ `question`, `learner_id`, `lang`): the recording is transcribed, the transcript graded, and "
                "the report carries `transcript` and `delivery` (beside the score, never mixed into it).",
    responses=audio_responses(409),
    openapi_extra=grade_openapi(EXAMPLES),
)
def grade(
    caller: CallerDep,  # first: an unauthenticated request is 401 before its body is read
    body: Annotated[GradeInput, Depends(grade_input)],
    coach: CoachDep,
    store: StoreDep,
    settings: SettingsDep,
    response: Response,
    idempotency_key: Annotated[str | None, Header(description=IDEMPOTENCY_DOC)] = None,
):
    if body.question is not None:
        check_text_length(body.question, "question", settings.max_question_chars)
    transcript = None
    if body.audio is not None:  # a spoken answer: its transcript is the answer
        transcript = transcribe_bytes(coach, body.audio, body.lang)
        body.answer = transcript.text
    check_text_length(body.answer, "answer", settings.max_answer_chars)
    key = _check_key(idempotency_key) if body.learner_id else None
    stored_answer = body.answer.replace("\x00", " ")
    headers = dict(response.headers)
    headers.pop("content-length", None)

    if key:
        previous = _stored(store, caller.org_id, key)
        if previous is not None:
            attempt, report = previous
            if attempt["learner_id"] != body.learner_id or attempt["answer"] != stored_answer:
                raise ApiProblem(409, "this Idempotency-Key was already used for a different answer or learner; "
                                      "use a new key for a new attempt", "Idempotency-Key reused")
            return JSONResponse({**report, "attempt": attempt}, headers={**headers, "Idempotent-Replayed": "true"})

    try:
        report = coach.grade(body.answer, body.question)
    except KeyError as exc:
        raise ApiProblem(422, str(exc).strip("'\""), "Unknown question") from None
    payload = report.model_dump(mode="json")
    if transcript is not None:
        payload.update(voice_payload(transcript, coach.delivery(transcript, report.language)))
    if not body.learner_id:
        return JSONResponse(payload, headers=headers)
    attempt, created = store.record_attempt(caller.org_id, body.learner_id, payload, stored_answer, key)
    if not created:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse({**payload, "attempt": attempt_json(attempt)}, headers=headers)

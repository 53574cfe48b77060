"""A learner's attempts, scoped to the caller's organisation: another organisation's
learner is indistinguishable from one that does not exist (404)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from ..deps import CallerDep, StoreDep
from ..errors import AUTHED, ApiProblem, problem_responses
from ..schemas import LearnerAttempts, attempt_json

router = APIRouter(prefix="/v1", tags=["results"], responses=problem_responses(*AUTHED))


@router.get(
    "/learners/{learner_id}/attempts",
    response_model=LearnerAttempts,
    summary="A learner's graded attempts, oldest first",
    responses=problem_responses(404),
)
def learner_attempts(
    learner_id: Annotated[str, Path(min_length=1, max_length=200, examples=["emp-1042"])],
    caller: CallerDep,
    store: StoreDep,
) -> LearnerAttempts:
    if any(ord(c) < 32 for c in learner_id):
        raise ApiProblem(422, "learner_id must not contain control characters", "Invalid request")
    attempts = store.attempts(caller.org_id, learner_id)
    if not attempts:
        raise ApiProblem(404, f"no learner {learner_id!r} with attempts in your organisation", "Not found")
    return LearnerAttempts(learner_id=learner_id, attempts=[attempt_json(a) for a in attempts])


@router.get(
    "/attempts/{attempt_id}",
    summary="The full grade report stored with one attempt",
    responses=problem_responses(404),
)
def attempt_report(
    attempt_id: Annotated[int, Path(ge=1, le=2**62)], caller: CallerDep, store: StoreDep
) -> dict:
    report = store.attempt_report(caller.org_id, attempt_id)
    if report is None:
        raise ApiProblem(404, f"no attempt {attempt_id} in your organisation", "Not found")
    return report

"""Role-play calls: a simulated angry caller, one turn per request.

Workers stay stateless: the whole call is stored after every turn, so any worker can take
the next one. Every call belongs to one organisation (another organisation's call is a 404,
exactly like a missing one). ``Idempotency-Key`` makes retries safe, as for grading: a call
is created once per key (per organisation) and a turn recorded once per key (per call); the
same key with a different body is a 409. Two different turns racing on one call: the first
is recorded, the second gets a 409 and can be retried.
"""

from __future__ import annotations

import secrets
from typing import Annotated, Literal

from fastapi import APIRouter, Body, Header, Path, Query
from fastapi.responses import JSONResponse

from ...roleplay import CallOver, UnknownScenario, roleplayer
from ...storage import TurnConflict
from ..deps import CallerDep, CoachDep, StoreDep
from ..errors import AUTHED, ApiProblem, problem_responses
from ..roleplay_schemas import (
    CallLang,
    Hint,
    RoleplayOut,
    RoleplayRequest,
    RoleplayStarted,
    RoleplaySummary,
    ScenarioInfo,
    TranscriptLine,
    TurnRequest,
    TurnResponse,
)
from .grade import IDEMPOTENCY_DOC, _check_key

router = APIRouter(prefix="/v1", tags=["role-play"], responses=problem_responses(*AUTHED))
CallId = Annotated[str, Path(min_length=4, max_length=40, pattern=r"^rp_[0-9a-f]+$", examples=["rp_3f9c2a7d41b8e605"])]

EXAMPLES = {
    "start": {"summary": "Start a call", "value": {"scenario": "coffee_morning", "learner_id": "emp-1042", "lang": "en"}},
}
TURN_EXAMPLES = {
    "empathy": {"summary": "Empathy first", "value": {"say": "I'm so sorry, Mrs Hill. I wouldn't want to start my day "
                                                             "with a bad coffee either."}},
    "silence": {"summary": "Say nothing", "value": {"say": ""}},
}


def _player(coach):
    return roleplayer(coach)


def _load(store, org_id: int, call_id: str, with_turns: bool = False) -> dict:
    row = store.get_call(org_id, call_id, with_turns=with_turns)
    if row is None:
        raise ApiProblem(404, f"no role-play call {call_id!r} in your organisation", "Not found")
    return row


def _started(call, row: dict) -> dict:
    return RoleplayStarted(id=row["id"], caller=call.opening, anger=call.anger, scenario=call.scenario.id,
                           language=call.lang, learner_id=row["learner_id"], band=call.band,
                           patience=call.patience).model_dump(mode="json")


@router.get("/scenarios", response_model=list[ScenarioInfo], summary="List the role-play scenarios")
def scenarios(
    caller: CallerDep,
    coach: CoachDep,
    lang: Annotated[CallLang, Query(description="Language of the texts")] = "en",
) -> list[ScenarioInfo]:
    return _player(coach).list(lang)


@router.post("/roleplays", response_model=RoleplayStarted, summary="Start a role-play call for a learner",
             responses=problem_responses(404, 409))
def start(
    body: Annotated[RoleplayRequest, Body(openapi_examples=EXAMPLES)],
    caller: CallerDep,
    coach: CoachDep,
    store: StoreDep,
    idempotency_key: Annotated[str | None, Header(description=IDEMPOTENCY_DOC)] = None,
):
    player = _player(coach)
    key = _check_key(idempotency_key)
    try:
        call = player.start(body.scenario, body.lang, body.seed)
    except UnknownScenario as exc:
        raise ApiProblem(422, str(exc).strip("'\""), "Unknown scenario") from None
    row, created = store.create_call(caller.org_id, body.learner_id, "rp_" + secrets.token_hex(8), call.scenario.id,
                                     call.lang, call.seed, call.to_state(), call.anger, key)
    if not created:
        same = (row["learner_id"] == body.learner_id and row["scenario"] == body.scenario
                and row["language"] == body.lang and row["state"].get("seed") == body.seed)
        if not same:
            raise ApiProblem(409, "this Idempotency-Key was already used to start a different call; use a new key",
                             "Idempotency-Key reused")
        call = player.resume(row["state"])
        return JSONResponse(_started(call, row), headers={"Idempotent-Replayed": "true"})
    return JSONResponse(_started(call, row))


@router.post("/roleplays/{call_id}/turns", response_model=TurnResponse, summary="Say something to the caller",
             responses=problem_responses(404, 409))
def turn(
    call_id: CallId,
    body: Annotated[TurnRequest, Body(openapi_examples=TURN_EXAMPLES)],
    caller: CallerDep,
    coach: CoachDep,
    store: StoreDep,
    idempotency_key: Annotated[str | None, Header(description=IDEMPOTENCY_DOC)] = None,
):
    key = _check_key(idempotency_key)
    row = _load(store, caller.org_id, call_id)
    say = body.say.replace("\x00", " ")
    if key:
        prior = store.call_turn_by_key(caller.org_id, call_id, key)
        if prior is not None:
            if prior["say"] != say:
                raise ApiProblem(409, "this Idempotency-Key was already used for a different turn; use a new key",
                                 "Idempotency-Key reused")
            return JSONResponse(prior["result"], headers={"Idempotent-Replayed": "true"})
    call = _player(coach).resume(row["state"])
    try:
        result = call.say(say)
    except CallOver:
        raise ApiProblem(409, "this call has ended; start a new one (GET it for the scorecard)", "Call over") from None
    card = call.scorecard() if call.done else None
    payload = TurnResponse.of(result, card.score if card else None).model_dump(mode="json")
    try:
        stored, created = store.record_turn(
            caller.org_id, call_id, result.n, say, result.caller, result.anger, payload, call.to_state(),
            "done" if call.done else "open", call.outcome, card.score if card else None,
            card.model_dump(mode="json") if card else None, key)
    except TurnConflict:
        raise ApiProblem(409, "another turn of this call was recorded at the same time; GET the call and retry",
                         "Turn conflict") from None
    if not created:
        return JSONResponse(stored, headers={"Idempotent-Replayed": "true"})
    return JSONResponse(payload)


@router.post("/roleplays/{call_id}/hint", response_model=Hint, summary="A hint for the next reply (costs points)",
             responses=problem_responses(404, 409))
def hint(call_id: CallId, caller: CallerDep, coach: CoachDep, store: StoreDep):
    row = _load(store, caller.org_id, call_id)
    call = _player(coach).resume(row["state"])
    try:
        h = call.hint()
    except CallOver:
        raise ApiProblem(409, "this call has ended", "Call over") from None
    if not store.update_call_state(caller.org_id, call_id, row["turns"], call.to_state()):
        raise ApiProblem(409, "a turn was recorded at the same time; ask again", "Turn conflict")
    return h


@router.post("/roleplays/{call_id}/end", response_model=RoleplayOut, summary="Stop the call now (scored as unfinished)",
             responses=problem_responses(404))
def end(call_id: CallId, caller: CallerDep, coach: CoachDep, store: StoreDep):
    row = _load(store, caller.org_id, call_id)
    call = _player(coach).resume(row["state"])
    if not call.done:
        call.stop()
        card = call.scorecard()
        store.finish_call(caller.org_id, call_id, row["turns"], call.to_state(), call.outcome, card.score,
                          card.model_dump(mode="json"))
    return _out(call, {**row, "status": "done"})


def _out(call, row: dict) -> RoleplayOut:
    card = call.scorecard()
    return RoleplayOut(
        id=row["id"], scenario=call.scenario.id, learner_id=row["learner_id"], language=call.lang,
        status="done" if call.done else "open", done=call.done, outcome=call.outcome,
        score=card.score if call.done else None, anger=call.anger, opening=call.opening,
        transcript=[TranscriptLine(**x) for x in call.transcript], turns=call.turns, scorecard=card,
        created_at=row.get("created_at"),
    )


@router.get("/roleplays/{call_id}", response_model=RoleplayOut,
            summary="A call: transcript and scorecard (provisional while it is open); replay any stored call",
            responses=problem_responses(404))
def get_call(call_id: CallId, caller: CallerDep, coach: CoachDep, store: StoreDep) -> RoleplayOut:
    row = _load(store, caller.org_id, call_id)
    return _out(_player(coach).resume(row["state"]), row)


@router.get("/roleplays", response_model=list[RoleplaySummary], summary="A learner's calls, oldest first",
            responses=problem_responses(404))
def list_calls(
    caller: CallerDep,
    store: StoreDep,
    learner_id: Annotated[str, Query(min_length=1, max_length=200, examples=["emp-1042"])],
    status: Annotated[Literal["open", "done"] | None, Query()] = None,
) -> list[RoleplaySummary]:
    if any(ord(c) < 32 for c in learner_id):
        raise ApiProblem(422, "learner_id must not contain control characters", "Invalid request")
    calls = store.calls(caller.org_id, learner_id)
    if not calls:
        raise ApiProblem(404, f"no learner {learner_id!r} with role-play calls in your organisation", "Not found")
    return [RoleplaySummary(**c) for c in calls if status is None or c["status"] == status]

"""Request and response bodies of the role-play endpoints. The turn and scorecard shapes are
the library's own (``calmcall.roleplay``), the same JSON ``python -m calmcall roleplay`` prints."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ..roleplay import Hint, Outcome, ScenarioInfo, Scorecard, TurnResult
from .schemas import LearnerId, Strict, Text

CallLang = Literal["en", "sv", "hu", "it", "nl"]


class RoleplayRequest(Strict):
    scenario: str = Field(min_length=1, max_length=100, description="A scenario id (GET /v1/scenarios).")
    learner_id: LearnerId = Field(description="The portal's id for the learner; the call is recorded for them.")
    lang: CallLang = Field(default="en", description="The language of the call.")
    seed: int = Field(default=0, ge=0, le=2**31 - 1,
                      description="Line choice seed: the same seed and replies give the same call.")

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"scenario": "coffee_morning", "learner_id": "emp-1042", "lang": "en"}]},
    )


class RoleplayStarted(BaseModel):
    id: str
    caller: str = Field(description="The caller's opening line.")
    anger: int
    scenario: str
    language: str
    learner_id: str
    band: str
    patience: int
    done: bool = False


class TurnRequest(Strict):
    say: Text = Field(default="", max_length=2000,
                      description="What the trainee says. Empty text is a silence (the caller notices).")

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"say": "I'm so sorry, Mrs Hill, I wouldn't want to start my day like that."}]},
    )


class TurnResponse(BaseModel):
    caller: str
    anger: int
    steps: list[str]
    anti_patterns: list[str]
    done: bool
    outcome: Outcome | None
    n: int
    explanation: str
    band: str
    patience: int
    harms: list[str]
    event: str
    score: int | None = Field(default=None, description="Set when the call is over.")

    @classmethod
    def of(cls, turn: TurnResult, score: int | None) -> TurnResponse:
        return cls(caller=turn.caller, anger=turn.anger, steps=turn.steps, anti_patterns=turn.anti_patterns,
                   done=turn.done, outcome=turn.outcome, n=turn.n, explanation=turn.explanation, band=turn.band,
                   patience=turn.patience, harms=turn.harms, event=turn.event, score=score)


class TranscriptLine(BaseModel):
    speaker: Literal["caller", "trainee"]
    text: str
    n: int | None = None
    anger: int | None = None


class RoleplayOut(BaseModel):
    id: str
    scenario: str
    learner_id: str
    language: str
    status: Literal["open", "done"]
    done: bool
    outcome: Outcome | None
    score: int | None
    anger: int
    opening: str
    transcript: list[TranscriptLine]
    turns: list[TurnResult]
    scorecard: Scorecard
    created_at: str | None = None


class RoleplaySummary(BaseModel):
    id: str
    learner_id: str
    scenario: str
    language: str
    status: str
    outcome: str | None
    score: int | None
    anger: int
    turns: int
    success: bool | None
    created_at: str | None
    updated_at: str | None


__all__ = ["CallLang", "Hint", "RoleplayOut", "RoleplayRequest", "RoleplayStarted", "RoleplaySummary",
           "ScenarioInfo", "TranscriptLine", "TurnRequest", "TurnResponse"]

"""Request and response bodies of the HR API. Response shapes are the library's own
models (``calmcall.models``), the same JSON the CLI prints."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from ..delivery import Delivery, Transcript
from ..models import GradeReport


def _encodable(value: str) -> str:
    """JSON escapes can smuggle lone surrogates, which are not text; refuse them."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("contains characters that are not valid Unicode text (lone surrogates)") from None
    return value


def _no_control(value: str) -> str:
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ValueError("must not contain control characters")
    return value


Text = Annotated[str, AfterValidator(_encodable)]
# Learner ids are the portal's own identifiers: 1-200 printable characters.
LearnerId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=200, strip_whitespace=True),
    AfterValidator(_encodable),
    AfterValidator(_no_control),
]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Turn(Strict):
    role: Literal["user", "assistant"]
    content: Annotated[Text, Field(max_length=10000)]


class AskRequest(Strict):
    question: Text = Field(description="The question, in any of the supported languages.")
    history: list[Turn] = Field(
        default_factory=list, max_length=50, description="Earlier turns, oldest first (for follow-ups)."
    )

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"question": "Should I put an angry caller on hold?"}]},
    )


class GradeRequest(Strict):
    answer: Text = Field(description="The learner's answer (plain text).")
    question: Text | None = Field(
        default=None, description="Practice question id (see GET /v1/questions) or free text; default q01."
    )
    learner_id: LearnerId | None = Field(
        default=None, description="The portal's id for the learner; when given, the attempt is recorded."
    )

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "question": "q01_angry_call",
                    "learner_id": "emp-1042",
                    "answer": "I would let the caller vent without interrupting, acknowledge their "
                    "frustration, apologise for the trouble, and explain what I can do next.",
                }
            ]
        },
    )


def attempt_json(attempt: dict) -> dict:
    """An attempt as the API sends it: ``created_at`` always with its UTC offset (SQLite
    hands timestamps back without one)."""
    created = attempt.get("created_at")
    if isinstance(created, str) and created and not (created.endswith("Z") or "+" in created[10:]
                                                     or "-" in created[10:]):
        attempt = {**attempt, "created_at": created + "+00:00"}
    return attempt


class AttemptOut(BaseModel):
    id: int
    learner_id: str
    question: str
    language: str
    score: int
    covered: list[str]
    created_at: str | None
    answer: str


class GradeResponse(GradeReport):
    attempt: AttemptOut | None = Field(default=None, description="Present when the attempt was recorded.")
    transcript: Transcript | None = Field(default=None, description="Present when a recording was graded.")
    delivery: Delivery | None = Field(default=None, description="Delivery feedback on a recording (not in the score).")


class QuestionOut(BaseModel):
    id: str
    text: str
    required: list[str]
    bonus: list[str]
    tags: list[str]


class LearnerAttempts(BaseModel):
    learner_id: str
    attempts: list[AttemptOut]


class LearnerSummary(BaseModel):
    learner_id: str
    attempts: int
    best_score: int
    latest_score: int
    steps_mastered: list[str]
    # role-play calls (finished ones): how many, how many ended as the scenario should, best and latest score
    calls: int = 0
    calls_won: int = 0
    best_call_score: int = 0
    latest_call_score: int = 0


class OrganisationReport(BaseModel):
    organisation: str
    generated_at: str
    learners: list[LearnerSummary]


class EmbedTokenRequest(Strict):
    learner_id: LearnerId
    # The upper bound is a setting (checked by the route, which names it); 30 s is the floor.
    ttl_s: int | None = Field(default=None, ge=30,
                              description="Lifetime in seconds: at least 30, at most CALMCALL_EMBED_TOKEN_MAX_TTL_S "
                                          "(default 86400, one day); default CALMCALL_EMBED_TOKEN_TTL_S (900).")

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"learner_id": "emp-1042", "ttl_s": 900}]}
    )


class EmbedToken(BaseModel):
    token: str
    learner_id: str
    organisation: str
    expires_at: str
    embed_url: str | None = Field(default=None, description="The app URL to iframe, when CALMCALL_APP_URL is set.")


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: Literal["ready", "not ready"]
    checks: dict[str, str]

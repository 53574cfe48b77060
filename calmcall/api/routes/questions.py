"""GET /v1/questions: the practice questions (same objects as `questions --json`)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from ..deps import CallerDep, CoachDep
from ..errors import AUTHED, problem_responses
from ..schemas import QuestionOut

router = APIRouter(prefix="/v1", tags=["coach"], responses=problem_responses(*AUTHED))


@router.get("/questions", response_model=list[QuestionOut], summary="List the practice questions")
def questions(
    caller: CallerDep,
    coach: CoachDep,
    lang: Annotated[Literal["en", "sv", "hu", "it", "nl"], Query(description="Language of the texts")] = "en",
) -> list[QuestionOut]:
    return [
        QuestionOut(id=q.id, text=q.text.get(lang) or q.text["en"], required=q.required, bonus=q.bonus, tags=q.tags)
        for q in coach.catalogue.questions.values()
    ]

"""POST /v1/ask: a grounded answer with citations, in the asker's language."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body

from ...models import AskResult
from ..deps import CallerDep, CoachDep, SettingsDep
from ..errors import AUTHED, ApiProblem, problem_responses
from ..limits import check_text_length
from ..schemas import AskRequest

router = APIRouter(prefix="/v1", tags=["coach"], responses=problem_responses(*AUTHED))

EXAMPLES = {
    "simple": {"summary": "A question", "value": {"question": "Should I put an angry caller on hold?"}},
    "swedish": {"summary": "Any supported language", "value": {"question": "Vad gör jag om kunden svär åt mig?"}},
    "follow-up": {
        "summary": "A follow-up with history",
        "value": {
            "question": "And if they keep shouting?",
            "history": [{"role": "user", "content": "How do I calm down an angry caller?"}],
        },
    },
}


@router.post("/ask", response_model=AskResult, summary="Ask a question about handling difficult callers")
def ask(body: Annotated[AskRequest, Body(openapi_examples=EXAMPLES)], caller: CallerDep, coach: CoachDep,
        settings: SettingsDep) -> AskResult:
    check_text_length(body.question, "question", settings.max_question_chars)
    history = [t.model_dump() for t in body.history]
    try:
        return coach.ask(body.question, history=history)
    except KeyError as exc:
        raise ApiProblem(422, str(exc).strip("'\""), "Unusable input") from None

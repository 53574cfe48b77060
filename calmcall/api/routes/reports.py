"""The organisation report: per learner, attempts, best and latest score, steps mastered.
JSON by default (step ids, the API's contract); CSV with ``?format=csv`` or
``Accept: text/csv``, for people: steps by title, in ``?lang=`` (default English)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query
from fastapi.responses import Response

from ...language import SUPPORTED
from ..deps import CallerDep, CoachDep, StoreDep
from ..errors import AUTHED, problem_responses
from ..schemas import OrganisationReport

router = APIRouter(prefix="/v1", tags=["results"], responses=problem_responses(*AUTHED))

CSV_COLUMNS = ["learner_id", "attempts", "best_score", "latest_score", "steps_mastered_count", "steps_mastered"]


def _cell(value) -> str:
    """Spreadsheets run cells that start with = + - @ as formulas; neutralise them."""
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def to_csv(rows: list[dict], titles: dict[str, str] | None = None) -> str:
    """``titles``: step id -> title; the steps-mastered cell lists titles ("; "), in the
    catalogue's order, so a spreadsheet reader sees what was mastered, not internal ids."""
    titles = titles or {}
    order = {sid: n for n, sid in enumerate(titles)}
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for r in rows:
        steps = sorted(r["steps_mastered"], key=lambda s: (order.get(s, len(order)), s))
        writer.writerow([
            _cell(r["learner_id"]), r["attempts"], r["best_score"], r["latest_score"],
            len(steps), _cell("; ".join(titles.get(s, s) for s in steps)),
        ])
    return buf.getvalue()


@router.get(
    "/reports/organisation",
    response_model=OrganisationReport,
    summary="Per-learner progress for your organisation (JSON or CSV)",
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}},
                     "description": "JSON (default) or CSV"}},
)
def organisation_report(
    caller: CallerDep,
    store: StoreDep,
    coach: CoachDep,
    format: Annotated[Literal["json", "csv"] | None, Query(description="json (default) or csv")] = None,
    lang: Annotated[Literal[SUPPORTED] | None, Query(description="language of the step titles in the CSV (default en)")] = None,
    accept: Annotated[str | None, Header(include_in_schema=False)] = None,
):
    rows = store.org_report(caller.org_id)
    wants_csv = format == "csv" or (format is None and "text/csv" in (accept or "").lower())
    if wants_csv:
        stamp = datetime.now(UTC).strftime("%Y%m%d")
        return Response(
            to_csv(rows, {sid: s.t("title", lang or "en") for sid, s in coach.catalogue.steps.items()})
            .encode("utf-8", "replace"),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="calmcall-report-{stamp}.csv"'},
        )
    return OrganisationReport(
        organisation=caller.org_name, generated_at=datetime.now(UTC).isoformat(), learners=rows
    )

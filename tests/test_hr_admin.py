"""The HR side as a new admin meets it (issue 12): /docs without internet, embed-token
lifetimes that say their real limits, embed_url only with CALMCALL_APP_URL, and an
organisation report CSV that names steps by title. (The browser test renders /docs with
every outside request refused.)"""

from __future__ import annotations

import csv
import io
import re
import uuid

import pytest
from fastapi.testclient import TestClient

from calmcall.api.app import create_app

GOOD = (
    "First I let the caller tell the whole story without interrupting and I note the key points. "
    "I stay calm and I show empathy: I understand how frustrating this must be. "
    "Then I repeat back what I heard and I apologise that they had this bad experience."
)


@pytest.fixture(scope="module")
def client(coach, settings):
    with TestClient(create_app(settings.model_copy(update={"rate_limit_per_minute": 0}), coach, warm=False)) as c:
        yield c


@pytest.fixture(scope="module")
def key(coach):
    return coach.store.create_key(f"hr-admin-{uuid.uuid4().hex[:6]}")[1]


def auth(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def test_docs_pages_load_their_assets_from_this_server(client):
    for path, assets in (("/docs", ("swagger-ui-bundle.js", "swagger-ui.css")), ("/redoc", ("redoc.standalone.js",))):
        r = client.get(path)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        urls = re.findall(r"""(?:src|href)=["']([^"']+)["']""", r.text)
        assert urls and all(u.startswith("/") for u in urls), urls  # nothing from a CDN
        assert "cdn." not in r.text and "fonts.googleapis" not in r.text
        for name in assets:
            asset = client.get(f"/docs-assets/{name}")
            assert asset.status_code == 200 and len(asset.content) > 50_000, name
    assert client.get("/openapi.json").status_code == 200
    assert "/docs-assets/{path}" not in client.get("/openapi.json").json()["paths"]


@pytest.mark.parametrize("ttl, status", [(29, 422), (30, 201), (86400, 201), (86401, 422), (7 * 86400, 422),
                                         (10**9, 422)])
def test_token_lifetime_limits_are_the_real_ones(client, key, ttl, status):
    r = client.post("/v1/embed-tokens", json={"learner_id": "emp-ttl", "ttl_s": ttl}, headers=auth(key))
    assert r.status_code == status, r.text
    if status == 422:
        detail = str(r.json())
        assert not re.search(r"(at most|less than or equal to) 604800", detail)  # the old, wrong maximum
        assert ("86400" in detail) if ttl > 86400 else ("30" in detail)
    else:
        assert r.json()["embed_url"] is None  # CALMCALL_APP_URL is not set for this server


def test_the_lifetime_maximum_follows_the_setting(coach, settings, key):
    s = settings.model_copy(update={"embed_token_max_ttl_s": 3600, "rate_limit_per_minute": 0})
    with TestClient(create_app(s, coach, warm=False)) as c:
        r = c.post("/v1/embed-tokens", json={"learner_id": "emp-ttl", "ttl_s": 3601}, headers=auth(key))
        assert r.status_code == 422 and "between 30 and 3600 seconds" in r.json()["detail"]
        assert c.post("/v1/embed-tokens", json={"learner_id": "emp-ttl", "ttl_s": 3600},
                      headers=auth(key)).status_code == 201


def test_report_csv_names_steps_by_title(client, coach, key):
    assert client.post("/v1/grade", json={"answer": GOOD, "learner_id": "emp-csv"}, headers=auth(key)).status_code == 200
    mastered = client.get("/v1/reports/organisation", headers=auth(key)).json()["learners"][0]["steps_mastered"]
    assert mastered and all(s in coach.catalogue.steps for s in mastered)  # JSON keeps the ids (the contract)
    for lang in ("en", "sv"):
        params = {"format": "csv"} if lang == "en" else {"format": "csv", "lang": lang}
        r = client.get("/v1/reports/organisation", params=params, headers=auth(key))
        rows = list(csv.DictReader(io.StringIO(r.text)))
        cell = next(row for row in rows if row["learner_id"] == "emp-csv")["steps_mastered"]
        titles = cell.split("; ")
        assert titles == [coach.catalogue.steps[s].t("title", lang) for s in coach.catalogue.steps if s in mastered]
        assert not set(titles) & set(coach.catalogue.steps)  # no internal ids
        assert int(next(row for row in rows if row["learner_id"] == "emp-csv")["steps_mastered_count"]) == len(titles)
    assert client.get("/v1/reports/organisation", params={"format": "csv", "lang": "xx"},
                      headers=auth(key)).status_code == 422

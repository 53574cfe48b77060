"""The role-play endpoints against the real Coach and store: a whole call over HTTP,
organisation isolation, idempotent starts and turns, turn races, hints, replay, and the
organisation report counting calls."""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient

from calmcall.api.app import create_app
from calmcall.storage import TurnConflict

GOOD = [
    "Oh no, Mrs Hill, I'm so sorry. I certainly wouldn't want to start my day with a bad coffee either.",
    "So if I understand you right, your cappuccino was cold and bitter and the barista just shrugged. Is that right?",
    "I can refund the cappuccino today, or put two free coffees on your loyalty card. Which would you prefer?",
]


def _auth(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def client(coach, settings):
    with TestClient(create_app(settings.model_copy(update={"rate_limit_per_minute": 0}), coach)) as c:
        yield c


@pytest.fixture(scope="module")
def keys(coach):
    return [coach.store.create_key(f"rp-{name}-{uuid.uuid4().hex[:6]}")[1] for name in ("a", "b")]


def _start(client, key, learner="emp-1", scenario="coffee_morning", **extra):
    r = client.post("/v1/roleplays", json={"scenario": scenario, "learner_id": learner, **extra},
                    headers={**_auth(key), **extra.pop("headers", {})})
    assert r.status_code == 200, r.text
    return r.json()


def test_scenarios_are_listed_in_the_language_asked(client, keys):
    r = client.get("/v1/scenarios", params={"lang": "sv"}, headers=_auth(keys[0]))
    assert r.status_code == 200
    ids = {s["id"] for s in r.json()}
    assert {"coffee_morning", "abusive_wont_stop", "double_billed_refund"} <= ids and len(ids) >= 8
    coffee = next(s for s in r.json() if s["id"] == "coffee_morning")
    assert coffee["title"] == "Det dåliga morgonkaffet" and coffee["difficulty"] == "easy"
    assert client.get("/v1/scenarios").status_code == 401


def test_a_whole_call_over_http(client, keys):
    started = _start(client, keys[0], learner="emp-call")
    assert {"id", "caller", "anger"} <= set(started) and started["anger"] == 6 and started["caller"]
    turns = []
    for say in GOOD:
        r = client.post(f"/v1/roleplays/{started['id']}/turns", json={"say": say}, headers=_auth(keys[0]))
        assert r.status_code == 200, r.text
        turns.append(r.json())
        assert {"caller", "anger", "steps", "anti_patterns", "done", "outcome"} <= set(turns[-1])
    assert turns[0]["anger"] < 6 and "apologise" in turns[0]["steps"] and not turns[0]["done"]
    assert turns[-1]["done"] and turns[-1]["outcome"] == "resolved" and turns[-1]["score"] >= 70
    r = client.post(f"/v1/roleplays/{started['id']}/turns", json={"say": "Anything else?"}, headers=_auth(keys[0]))
    assert r.status_code == 409
    got = client.get(f"/v1/roleplays/{started['id']}", headers=_auth(keys[0])).json()
    assert got["status"] == "done" and got["outcome"] == "resolved" and len(got["turns"]) == 3
    assert got["transcript"][0] == {"speaker": "caller", "text": started["caller"], "n": None, "anger": 6}
    assert [x["speaker"] for x in got["transcript"]] == ["caller"] + ["trainee", "caller"] * 3
    assert got["scorecard"]["anger"] == [6] + [t["anger"] for t in turns]
    assert got["scorecard"]["score"] == turns[-1]["score"]
    listed = client.get("/v1/roleplays", params={"learner_id": "emp-call"}, headers=_auth(keys[0])).json()
    assert [c["id"] for c in listed] == [started["id"]] and listed[0]["success"] is True
    report = client.get("/v1/reports/organisation", headers=_auth(keys[0])).json()
    row = next(x for x in report["learners"] if x["learner_id"] == "emp-call")
    assert row["calls"] == 1 and row["calls_won"] == 1 and row["best_call_score"] == turns[-1]["score"]


def test_one_organisation_never_sees_another_organisations_calls(client, keys):
    a, b = keys
    mine = _start(client, a, learner="shared-name")
    for method, path, body in (("GET", f"/v1/roleplays/{mine['id']}", None),
                               ("POST", f"/v1/roleplays/{mine['id']}/turns", {"say": "Hello"}),
                               ("POST", f"/v1/roleplays/{mine['id']}/hint", None),
                               ("POST", f"/v1/roleplays/{mine['id']}/end", None)):
        r = client.request(method, path, json=body, headers=_auth(b))
        assert r.status_code == 404, (path, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
    assert client.get("/v1/roleplays", params={"learner_id": "shared-name"}, headers=_auth(b)).status_code == 404
    theirs = _start(client, b, learner="shared-name")
    assert theirs["id"] != mine["id"]
    ids_a = [c["id"] for c in client.get("/v1/roleplays", params={"learner_id": "shared-name"},
                                         headers=_auth(a)).json()]
    assert mine["id"] in ids_a and theirs["id"] not in ids_a
    # org A's call is untouched by org B's attempts
    assert client.get(f"/v1/roleplays/{mine['id']}", headers=_auth(a)).json()["turns"] == []


def test_starts_and_turns_are_idempotent(client, keys, coach):
    a, b = keys
    h = {**_auth(a), "Idempotency-Key": "start-1"}
    body = {"scenario": "insects_post", "learner_id": "emp-idem", "lang": "it"}
    first = client.post("/v1/roleplays", json=body, headers=h)
    again = client.post("/v1/roleplays", json=body, headers=h)
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json() and again.headers.get("Idempotent-Replayed") == "true"
    assert client.post("/v1/roleplays", json={**body, "scenario": "coffee_morning"}, headers=h).status_code == 409
    # the same key in another organisation is another call
    other = client.post("/v1/roleplays", json=body, headers={**_auth(b), "Idempotency-Key": "start-1"})
    assert other.status_code == 200 and other.json()["id"] != first.json()["id"]
    cid = first.json()["id"]
    th = {**_auth(a), "Idempotency-Key": "turn-1"}
    say = {"say": "Mi dispiace molto, signor Bianchi, capisco perfettamente."}
    t1 = client.post(f"/v1/roleplays/{cid}/turns", json=say, headers=th)
    t2 = client.post(f"/v1/roleplays/{cid}/turns", json=say, headers=th)
    assert t1.status_code == t2.status_code == 200 and t1.json() == t2.json()
    assert t2.headers.get("Idempotent-Replayed") == "true" and t1.json()["n"] == 1
    assert client.post(f"/v1/roleplays/{cid}/turns", json={"say": "Altro"}, headers=th).status_code == 409
    got = client.get(f"/v1/roleplays/{cid}", headers=_auth(a)).json()
    assert len(got["turns"]) == 1 and got["language"] == "it"
    assert client.post("/v1/roleplays", json=body, headers={**_auth(a), "Idempotency-Key": "x" * 201}).status_code == 400


def test_a_lost_turn_race_is_refused(client, keys, coach):
    started = _start(client, keys[0], learner="emp-race")
    org = coach.store.org_for_key(keys[0])
    row = coach.store.get_call(org.id, started["id"])
    coach.store.record_turn(org.id, started["id"], 1, "a", "b", 6, {"n": 1}, row["state"], "open", None, None, None)
    with pytest.raises(TurnConflict):  # another worker already recorded turn 1
        coach.store.record_turn(org.id, started["id"], 1, "c", "d", 6, {"n": 1}, row["state"], "open", None, None,
                                None)


def test_hint_replay_and_end(client, keys):
    started = _start(client, keys[0], learner="emp-hint", scenario="unknown_purchase", lang="nl")
    cid = started["id"]
    h = client.post(f"/v1/roleplays/{cid}/hint", headers=_auth(keys[0]))
    assert h.status_code == 200 and h.json()["line"] and h.json()["cost"] > 0
    r = client.post(f"/v1/roleplays/{cid}/turns", json={"say": ""}, headers=_auth(keys[0]))  # silence
    assert r.status_code == 200 and r.json()["anger"] >= started["anger"]
    ended = client.post(f"/v1/roleplays/{cid}/end", headers=_auth(keys[0]))
    assert ended.status_code == 200
    card = ended.json()["scorecard"]
    assert ended.json()["outcome"] == "unfinished" and card["hints"] == 1 and not card["success"]
    replay = client.get(f"/v1/roleplays/{cid}", headers=_auth(keys[0])).json()
    assert replay["scorecard"] == card and replay["status"] == "done"
    assert client.post(f"/v1/roleplays/{cid}/hint", headers=_auth(keys[0])).status_code == 409


@pytest.mark.parametrize("body,status", [
    ({"scenario": "no_such", "learner_id": "x"}, 422),
    ({"scenario": "coffee_morning", "learner_id": "x", "lang": "de"}, 422),
    ({"scenario": "coffee_morning"}, 422),
    ({"scenario": "coffee_morning", "learner_id": "x", "extra": 1}, 422),
])
def test_bad_starts_are_problems(client, keys, body, status):
    r = client.post("/v1/roleplays", json=body, headers=_auth(keys[0]))
    assert r.status_code == status and r.headers["content-type"].startswith("application/problem+json")


def test_bad_turns_are_problems(client, keys):
    started = _start(client, keys[0], learner="emp-bad")
    r = client.post(f"/v1/roleplays/{started['id']}/turns", json={"say": "x" * 2001}, headers=_auth(keys[0]))
    assert r.status_code == 422
    assert client.post("/v1/roleplays/rp_00/turns", json={"say": "Hi"}, headers=_auth(keys[0])).status_code == 404
    assert client.post("/v1/roleplays/../turns", json={"say": "Hi"}, headers=_auth(keys[0])).status_code in (404, 422)

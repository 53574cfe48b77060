"""The HR REST API against the real Coach: auth, organisation isolation, limits, problem
details, idempotent grading, reports (JSON/CSV), embed tokens, CORS/frame-ancestors,
readiness, and a bounded schemathesis run over the OpenAPI spec."""

from __future__ import annotations

import json
import os
import socket
import uuid

import pytest
from fastapi.testclient import TestClient

from calmcall.api.app import create_app
from calmcall.api.tokens import TokenError, verify_token

PG_URL = os.environ.get("CALMCALL_TEST_DATABASE_URL", "")
GOOD_ANSWER = (
    "First I would stay calm and let the caller finish without interrupting. Then I would acknowledge "
    "how frustrated they are, apologise for the trouble, and explain clearly what I will do next."
)
LOADED = ("knowledge", "embedder", "catalogue", "bridge", "retriever", "grader", "answerer")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def coach_with_database(coach, url: str):
    """A Coach on another database that shares the session coach's loaded models."""
    from calmcall.coach import Coach

    other = Coach(coach.settings.model_copy(update={"database_url": url}))
    for name in LOADED:
        other.__dict__[name] = getattr(coach, name)
    return other


def _auth(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def _new_key(store, prefix: str) -> tuple[str, str]:
    return store.create_key(f"{prefix}-{uuid.uuid4().hex[:8]}")


@pytest.fixture(scope="module")
def api_settings(settings):
    return settings.model_copy(update={"rate_limit_per_minute": 0, "frame_ancestors": ["https://portal.example"]})


@pytest.fixture(scope="module")
def client(coach, api_settings):
    with TestClient(create_app(api_settings, coach)) as c:
        yield c


@pytest.fixture(scope="module")
def org_a(coach):
    return _new_key(coach.store, "acme")[1]


@pytest.fixture(scope="module")
def org_b(coach):
    return _new_key(coach.store, "globex")[1]


def _is_problem(r, status: int) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers
    body = r.json()
    assert {"type", "title", "status", "detail"} <= set(body)
    assert body["status"] == status and body["detail"]
    return body


# -- health --------------------------------------------------------------------------
def test_health_and_readiness(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    r = client.get("/readyz")
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "ready", "checks": {"index": "ok", "database": "ok"}}


def test_readyz_is_503_when_the_database_is_down(coach):
    down = coach_with_database(coach, f"postgresql+psycopg://nobody@127.0.0.1:{_closed_port()}/x?connect_timeout=2")
    with TestClient(create_app(coach=down)) as c:
        assert c.get("/healthz").status_code == 200  # alive, just not ready
        r = c.get("/readyz")
        assert r.status_code == 503 and r.headers["retry-after"]
        assert r.json()["checks"]["database"] != "ok" and r.json()["checks"]["index"] == "ok"
        body = _is_problem(c.post("/v1/grade", json={"answer": GOOD_ANSWER}, headers=_auth("cc_0123456789ab." + "x" * 43)), 503)
        assert "database" in body["detail"]


# -- auth ----------------------------------------------------------------------------
def test_missing_key_is_401_with_a_clear_message(client):
    body = _is_problem(r := client.get("/v1/questions"), 401)
    assert "Bearer" in r.headers["www-authenticate"]
    assert "API key is required" in body["detail"]


@pytest.mark.parametrize("header", [
    {"Authorization": "Bearer nonsense"},
    {"Authorization": "Bearer cc_0123456789ab." + "x" * 43},
    {"X-API-Key": "cc_0123456789ab." + "x" * 43},
    {"Authorization": "Basic dXNlcjpwYXNz"},
    {"X-API-Key": ("é" * 300).encode("latin-1")},
])
def test_invalid_keys_are_401(client, header):
    _is_problem(client.get("/v1/questions", headers=header), 401)


def test_every_v1_operation_requires_a_key(client):
    spec = client.get("/openapi.json").json()
    operations = [(m, p) for p, item in spec["paths"].items() for m in item if p.startswith("/v1/")]
    assert len(operations) >= 7
    for method, path in operations:
        url = path.replace("{learner_id}", "emp-1").replace("{attempt_id}", "1")
        r = client.request(method.upper(), url, json={"answer": "I listen.", "question": "Hi?", "learner_id": "x"})
        _is_problem(r, 401)
        assert all(req for req in spec["paths"][path][method]["security"])


def test_wrong_secret_for_a_real_key_id_is_401(client, org_a):
    key_id = org_a.split(".")[0]
    _is_problem(client.get("/v1/questions", headers=_auth(f"{key_id}.{'y' * 43}")), 401)


def test_revoked_key_is_403_and_other_keys_keep_working(client, coach):
    key_id, key = _new_key(coach.store, "revokee")
    assert client.get("/v1/questions", headers=_auth(key)).status_code == 200
    assert coach.store.revoke_key(key_id)
    body = _is_problem(client.get("/v1/questions", headers=_auth(key)), 403)
    assert "revoked" in body["detail"]


def test_both_header_styles_authenticate(client, org_a):
    assert client.get("/v1/questions", headers=_auth(org_a)).status_code == 200
    assert client.get("/v1/questions", headers={"X-API-Key": org_a}).status_code == 200


# -- questions / ask -----------------------------------------------------------------
def test_questions_match_the_catalogue_and_languages(client, coach, org_a):
    en = client.get("/v1/questions", headers=_auth(org_a)).json()
    sv = client.get("/v1/questions", params={"lang": "sv"}, headers=_auth(org_a)).json()
    assert [q["id"] for q in en] == list(coach.catalogue.questions)
    assert set(en[0]) == {"id", "text", "required", "bonus", "tags"}
    assert en[0]["text"] != sv[0]["text"]
    _is_problem(client.get("/v1/questions", params={"lang": "xx"}, headers=_auth(org_a)), 422)


def test_ask_returns_the_library_json(client, coach, org_a):
    q = "Should I put an angry caller on hold?"
    r = client.post("/v1/ask", json={"question": q}, headers=_auth(org_a))
    assert r.status_code == 200, r.text
    assert r.json() == coach.ask(q).model_dump(mode="json")
    r = client.post("/v1/ask", json={"question": "And if they keep shouting?",
                                     "history": [{"role": "user", "content": q}]}, headers=_auth(org_a))
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("body", [{"question": "   "}, {"question": "!!! ???"}, {"question": 42}, {},
                                  {"question": "x", "history": [{"role": "system", "content": "y"}]}])
def test_ask_bad_input_is_422(client, org_a, body):
    _is_problem(client.post("/v1/ask", json=body, headers=_auth(org_a)), 422)


# -- grade ---------------------------------------------------------------------------
def test_grade_returns_the_library_report(client, coach, org_a):
    r = client.post("/v1/grade", json={"answer": GOOD_ANSWER, "question": "q01_angry_call"}, headers=_auth(org_a))
    assert r.status_code == 200, r.text
    body = r.json()
    assert "attempt" not in body
    assert body == coach.grade(GOOD_ANSWER, "q01_angry_call").model_dump(mode="json")


def test_grade_with_learner_records_once_per_idempotency_key(client, org_a):
    learner = f"emp-{uuid.uuid4().hex[:6]}"
    req = {"answer": GOOD_ANSWER, "question": "q01_angry_call", "learner_id": learner}
    headers = {**_auth(org_a), "Idempotency-Key": "attempt-1"}
    first = client.post("/v1/grade", json=req, headers=headers)
    assert first.status_code == 200, first.text
    assert "idempotent-replayed" not in first.headers
    second = client.post("/v1/grade", json=req, headers=headers)
    assert second.status_code == 200 and second.headers["idempotent-replayed"] == "true"
    assert second.json()["attempt"] == first.json()["attempt"]
    assert second.json()["score"] == first.json()["score"]
    attempts = client.get(f"/v1/learners/{learner}/attempts", headers=_auth(org_a)).json()["attempts"]
    assert len(attempts) == 1 and attempts[0]["id"] == first.json()["attempt"]["id"]
    # the same key for a different answer is a client bug: refused, nothing stored
    body = _is_problem(client.post("/v1/grade", json={**req, "answer": GOOD_ANSWER + " Also tea."}, headers=headers), 409)
    assert "Idempotency-Key" in body["detail"]
    # without a key, every call is a new attempt
    client.post("/v1/grade", json=req, headers=_auth(org_a))
    client.post("/v1/grade", json=req, headers=_auth(org_a))
    assert len(client.get(f"/v1/learners/{learner}/attempts", headers=_auth(org_a)).json()["attempts"]) == 3
    full = client.get(f"/v1/attempts/{attempts[0]['id']}", headers=_auth(org_a))
    assert full.status_code == 200 and full.json()["score"] == first.json()["score"]


@pytest.mark.parametrize("body,status", [
    ({"answer": ""}, 422),
    ({"answer": "   \n\t "}, 422),
    ({"answer": "12345 !!!"}, 422),
    ({"answer": 123}, 422),
    ({"answer": None}, 422),
    ({"answer": ["a", "b"]}, 422),
    ({}, 422),
    ({"answer": "I listen.", "extra": 1}, 422),
    ({"answer": "I listen.", "question": 5}, 422),
    ({"answer": "I listen.", "learner_id": ""}, 422),
    ({"answer": "I listen.", "learner_id": "x" * 201}, 422),
    ({"answer": "I listen.", "learner_id": "bad\u0000id"}, 422),
    ({"answer": "I listen \ud800 to them."}, 422),  # lone surrogate via JSON escape
    ({"answer": "I listen.", "question": "   "}, 422),
])
def test_grade_bad_input_is_a_problem_not_a_500(client, org_a, body, status):
    raw = json.dumps(body)  # ASCII escapes, so lone surrogates travel as the JSON text "\ud800"
    _is_problem(client.post("/v1/grade", content=raw, headers={**_auth(org_a), "Content-Type": "application/json"}),
                status)


def test_grade_rejects_malformed_bodies(client, org_a):
    h = {**_auth(org_a), "Content-Type": "application/json"}
    body = _is_problem(client.post("/v1/grade", content=b'{"answer": "caf\xe9 \xff"}', headers=h), 400)
    assert "UTF-8" in body["detail"]
    _is_problem(client.post("/v1/grade", content=b'{"answer": ', headers=h), 400)
    _is_problem(client.post("/v1/grade", content=b"[1, 2]", headers=h), 422)
    _is_problem(client.post("/v1/grade", content=b"answer=hello", headers={**_auth(org_a),
                "Content-Type": "application/x-www-form-urlencoded"}), 422)


def test_body_limits_413(client, org_a, api_settings):
    big = {"answer": "I stay calm. " * (api_settings.max_body_bytes // 10)}
    body = _is_problem(client.post("/v1/grade", json=big, headers=_auth(org_a)), 413)
    assert "larger than" in body["detail"]

    def chunks():  # no Content-Length: streamed, still refused
        for _ in range(api_settings.max_body_bytes // 4096 + 2):
            yield b"x" * 4096

    _is_problem(client.post("/v1/grade", content=chunks(), headers={**_auth(org_a),
                                                                     "Content-Type": "application/json"}), 413)


def test_answer_length_limit_is_422(client, org_a, api_settings):
    answer = "a" * (api_settings.max_answer_chars + 1)
    body = _is_problem(client.post("/v1/grade", json={"answer": answer}, headers=_auth(org_a)), 422)
    assert f"{api_settings.max_answer_chars:,}" in body["detail"]


def test_bad_idempotency_key_is_400(client, org_a):
    r = client.post("/v1/grade", json={"answer": GOOD_ANSWER, "learner_id": "emp-x"},
                    headers={**_auth(org_a), "Idempotency-Key": "k" * 201})
    _is_problem(r, 400)


def test_unknown_route_and_method_are_problems(client, org_a):
    _is_problem(client.get("/v1/nope", headers=_auth(org_a)), 404)
    _is_problem(client.get("/v1/grade", headers=_auth(org_a)), 405)


# -- isolation -----------------------------------------------------------------------
def test_one_organisation_never_reads_another(client, org_a, org_b):
    tag = uuid.uuid4().hex[:6]
    secret_learner, shared = f"a-only-{tag}", f"shared-{tag}"
    for learner in (secret_learner, shared):
        r = client.post("/v1/grade", json={"answer": GOOD_ANSWER, "learner_id": learner},
                        headers={**_auth(org_a), "Idempotency-Key": f"k-{learner}"})
        assert r.status_code == 200, r.text
    a_attempt = r.json()["attempt"]["id"]
    # B: the same learner name and the same idempotency key are B's own
    rb = client.post("/v1/grade", json={"answer": "I would shout back at them.", "learner_id": shared},
                     headers={**_auth(org_b), "Idempotency-Key": f"k-{shared}"})
    assert rb.status_code == 200 and "idempotent-replayed" not in rb.headers
    assert rb.json()["attempt"]["id"] != a_attempt

    _is_problem(client.get(f"/v1/learners/{secret_learner}/attempts", headers=_auth(org_b)), 404)
    _is_problem(client.get(f"/v1/attempts/{a_attempt}", headers=_auth(org_b)), 404)
    b_shared = client.get(f"/v1/learners/{shared}/attempts", headers=_auth(org_b)).json()["attempts"]
    a_shared = client.get(f"/v1/learners/{shared}/attempts", headers=_auth(org_a)).json()["attempts"]
    assert [x["answer"] for x in b_shared] == ["I would shout back at them."]
    assert [x["answer"] for x in a_shared] == [GOOD_ANSWER]
    report_b = client.get("/v1/reports/organisation", headers=_auth(org_b)).json()
    assert secret_learner not in {row["learner_id"] for row in report_b["learners"]}
    csv_b = client.get("/v1/reports/organisation", params={"format": "csv"}, headers=_auth(org_b)).text
    assert secret_learner not in csv_b


# -- reports -------------------------------------------------------------------------
def test_report_json_and_csv(client, coach):
    _, key = _new_key(coach.store, "reporting")
    for learner, answer in [("emp-1", GOOD_ANSWER), ("emp-1", "I would hang up on them."),
                            ("=cmd|' /C calc'!A0", GOOD_ANSWER)]:
        assert client.post("/v1/grade", json={"answer": answer, "learner_id": learner},
                           headers=_auth(key)).status_code == 200
    report = client.get("/v1/reports/organisation", headers=_auth(key)).json()
    rows = {r["learner_id"]: r for r in report["learners"]}
    assert rows["emp-1"]["attempts"] == 2
    assert rows["emp-1"]["best_score"] >= rows["emp-1"]["latest_score"]
    assert rows["emp-1"]["steps_mastered"]
    for r in (client.get("/v1/reports/organisation", params={"format": "csv"}, headers=_auth(key)),
              client.get("/v1/reports/organisation", headers={**_auth(key), "Accept": "text/csv"})):
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        assert "attachment" in r.headers["content-disposition"]
        lines = r.text.strip().splitlines()
        assert lines[0] == "learner_id,attempts,best_score,latest_score,steps_mastered_count,steps_mastered"
        assert len(lines) == 3
        assert any(line.startswith("emp-1,2,") for line in lines)
        assert not any(line.startswith("=") for line in lines)  # formula injection neutralised
    _is_problem(client.get("/v1/reports/organisation", params={"format": "xml"}, headers=_auth(key)), 422)


# -- embed tokens --------------------------------------------------------------------
def test_embed_token_minted_by_api_verifies_for_that_learner(client, coach, org_a, org_b):
    r = client.post("/v1/embed-tokens", json={"learner_id": "emp-77", "ttl_s": 120}, headers=_auth(org_a))
    assert r.status_code == 201, r.text
    token = r.json()["token"]
    org, learner = verify_token(coach.store, token)
    assert learner == "emp-77" and org.name == r.json()["organisation"]
    other = client.post("/v1/embed-tokens", json={"learner_id": "emp-77"}, headers=_auth(org_b)).json()
    assert verify_token(coach.store, other["token"])[0].name != org.name
    with pytest.raises(TokenError):
        verify_token(coach.store, token[:-3] + "abc")
    _is_problem(client.post("/v1/embed-tokens", json={"learner_id": "emp-77", "ttl_s": 10 ** 9},
                            headers=_auth(org_a)), 422)
    _is_problem(client.post("/v1/embed-tokens", json={"learner_id": ""}, headers=_auth(org_a)), 422)


def test_embed_url_is_built_when_the_app_url_is_configured(coach, settings, org_a):
    s = settings.model_copy(update={"app_url": "https://coach.example/"})
    with TestClient(create_app(s, coach)) as c:
        url = c.post("/v1/embed-tokens", json={"learner_id": "emp-9"}, headers=_auth(org_a)).json()["embed_url"]
    assert url.startswith("https://coach.example/?embed=true&token=v1.")


# -- limits, CORS, framing -----------------------------------------------------------
def test_rate_limit_per_key_is_429_with_retry_after(coach, settings):
    s = settings.model_copy(update={"rate_limit_per_minute": 3})
    _, key1 = _new_key(coach.store, "ratelimited")
    _, key2 = _new_key(coach.store, "neighbour")
    with TestClient(create_app(s, coach)) as c:
        codes = [c.get("/v1/questions", headers=_auth(key1)).status_code for _ in range(3)]
        assert codes == [200, 200, 200]
        r = c.get("/v1/questions", headers=_auth(key1))
        body = _is_problem(r, 429)
        assert int(r.headers["retry-after"]) >= 1 and "rate limit" in body["detail"]
        assert r.headers["x-ratelimit-limit"] == "3"
        assert c.get("/v1/questions", headers=_auth(key2)).status_code == 200  # per key


def test_cors_and_frame_ancestors_follow_settings(coach, settings):
    s = settings.model_copy(update={"cors_origins": ["https://portal.example"],
                                    "frame_ancestors": ["https://portal.example"]})
    with TestClient(create_app(s, coach)) as c:
        pre = c.options("/v1/grade", headers={"Origin": "https://portal.example",
                                              "Access-Control-Request-Method": "POST",
                                              "Access-Control-Request-Headers": "authorization,content-type"})
        assert pre.status_code == 200
        assert pre.headers["access-control-allow-origin"] == "https://portal.example"
        evil = c.options("/v1/grade", headers={"Origin": "https://evil.example",
                                               "Access-Control-Request-Method": "POST"})
        assert "access-control-allow-origin" not in evil.headers
        r = c.get("/healthz", headers={"Origin": "https://portal.example"})
        assert r.headers["access-control-allow-origin"] == "https://portal.example"
        assert r.headers["content-security-policy"] == "frame-ancestors 'self' https://portal.example"
    with TestClient(create_app(settings, coach)) as c:  # default: no CORS, framing by self only
        r = c.get("/healthz", headers={"Origin": "https://portal.example"})
        assert "access-control-allow-origin" not in r.headers
        assert r.headers["content-security-policy"] == "frame-ancestors 'self'"


def test_openapi_has_examples_and_security(client):
    spec = client.get("/openapi.json").json()
    grade = spec["paths"]["/v1/grade"]["post"]
    assert grade["requestBody"]["content"]["application/json"]["examples"]
    assert {"HTTPBearer", "APIKeyHeader"} <= set(spec["components"]["securitySchemes"])
    assert "application/problem+json" in grade["responses"]["422"]["content"]
    for path in ("/v1/ask", "/v1/grade", "/v1/questions", "/v1/learners/{learner_id}/attempts",
                 "/v1/reports/organisation", "/v1/embed-tokens", "/healthz", "/readyz"):
        assert path in spec["paths"]


# -- keys CLI ------------------------------------------------------------------------
def test_keys_cli_create_list_revoke(settings, client):
    from conftest import run_cli

    env = {"CALMCALL_DATA_DIR": str(settings.data_dir)}
    org = f"cli-org-{uuid.uuid4().hex[:6]}"
    r = run_cli("keys", "create", "--org", org, env=env, timeout=120)
    assert r.returncode == 0, r.stderr.decode()
    key = r.stdout.decode().strip().splitlines()[-1]
    assert key.startswith("cc_") and " " not in key
    assert client.get("/v1/questions", headers=_auth(key)).status_code == 200
    key_id = key.split(".")[0]
    listed = run_cli("keys", "list", env=env, timeout=120).stdout.decode()
    assert key_id in listed and org in listed and key.split(".")[1] not in listed
    assert run_cli("keys", "revoke", key_id, env=env, timeout=120).returncode == 0
    assert client.get("/v1/questions", headers=_auth(key)).status_code == 403
    again = run_cli("keys", "revoke", key_id, env=env, timeout=120)
    assert again.returncode == 2 and b"no active key" in again.stderr
    assert run_cli("keys", "create", "--org", "  ", env=env, timeout=120).returncode == 2


# -- PostgreSQL ----------------------------------------------------------------------
@pytest.mark.postgres
def test_api_on_postgres(coach):
    if not PG_URL:
        pytest.skip("CALMCALL_TEST_DATABASE_URL not set (eval \"$(bash scripts/ci_services.sh)\")")
    pg = coach_with_database(coach, PG_URL)
    _, ka = _new_key(pg.store, "pg-a")
    _, kb = _new_key(pg.store, "pg-b")
    with TestClient(create_app(coach=pg)) as c:
        assert c.get("/readyz").status_code == 200
        learner = f"pg-{uuid.uuid4().hex[:6]}"
        h = {**_auth(ka), "Idempotency-Key": f"pg-{learner}"}
        first = c.post("/v1/grade", json={"answer": GOOD_ANSWER, "learner_id": learner}, headers=h)
        again = c.post("/v1/grade", json={"answer": GOOD_ANSWER, "learner_id": learner}, headers=h)
        assert first.status_code == again.status_code == 200, first.text
        assert first.json()["attempt"]["id"] == again.json()["attempt"]["id"]
        assert len(c.get(f"/v1/learners/{learner}/attempts", headers=_auth(ka)).json()["attempts"]) == 1
        _is_problem(c.get(f"/v1/learners/{learner}/attempts", headers=_auth(kb)), 404)
        assert c.get("/v1/reports/organisation", params={"format": "csv"}, headers=_auth(ka)).text.count(learner) == 1


# -- schemathesis --------------------------------------------------------------------
def test_schemathesis_no_5xx_and_responses_match_the_schema(coach, settings):
    """Bounded property-based run over every operation (25 examples each, positive and
    negative data): no 5xx, documented status codes and content types, responses that
    match their schemas, and schema-violating requests rejected."""
    import hypothesis
    import schemathesis
    from schemathesis import GenerationMode
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        negative_data_rejection,
        response_schema_conformance,
        status_code_conformance,
    )

    def negative_rejected(ctx, response, case):
        if response.status_code == 413:  # refused for its size: a rejection too
            return None
        return negative_data_rejection(ctx, response, case)

    _, key = _new_key(coach.store, "fuzz")
    app = create_app(settings.model_copy(update={"rate_limit_per_minute": 0}), coach)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    base_checks = [not_a_server_error, status_code_conformance, content_type_conformance,
                   response_schema_conformance]

    def property_test(strategy, checks):
        @hypothesis.settings(max_examples=25, deadline=None, database=None, derandomize=True,
                             suppress_health_check=list(hypothesis.HealthCheck),
                             phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate])
        @hypothesis.given(case=strategy)
        def run(case):
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {key}"}
            case.validate_response(case.call(), checks=checks)

        return run

    ran = []
    for result in schema.get_all_operations():
        operation = result.ok()
        has_input = bool(operation.body) or any(True for _ in operation.iter_parameters())
        modes = [GenerationMode.POSITIVE] + ([GenerationMode.NEGATIVE] if has_input else [])
        for mode in modes:
            checks = base_checks + ([negative_rejected] if mode == GenerationMode.NEGATIVE else [])
            property_test(operation.as_strategy(generation_mode=mode), checks)()
            ran.append((operation.label, mode))
    assert len(ran) >= 16

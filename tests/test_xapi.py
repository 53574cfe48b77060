"""xAPI statements through the durable outbox, against a real LRS (Ralph, file-system
backend; ``scripts/ci_lms.sh`` starts it): statements read back by id and agent, sent
once, routed per organisation, a refused statement isolated, and an LRS stopped mid-run
loses nothing."""

from __future__ import annotations

import json
import os
import time
import uuid

import pytest
from fastapi.testclient import TestClient
from lms.servers import RALPH_VENV, Ralph, lrs_statements
from sqlalchemy import select, update

from calmcall import xapi
from calmcall.api.app import create_app
from calmcall.storage import AttemptStore, XapiOutbox

ANSWER = (
    "First I would stay calm and let the caller finish without interrupting. Then I would acknowledge "
    "how frustrated they are, apologise for the trouble, and explain clearly what I will do next."
)
REPORT = {"question": {"id": "q01_angry_call", "text": "How would you handle an angry call?"}, "language": "en",
          "score": 72, "covered": [{"step": "listen"}]}
FAST = {"xapi_retry_s": 0.2, "xapi_max_backoff_s": 1.0, "xapi_poll_s": 0.2, "xapi_timeout_s": 3.0}


@pytest.fixture(scope="module")
def lrs():
    """CI's Ralph (CALMCALL_TEST_LRS_URL / _AUTH), else one we start, else skip."""
    url, auth = os.environ.get("CALMCALL_TEST_LRS_URL"), os.environ.get("CALMCALL_TEST_LRS_AUTH")
    if url and auth:
        yield type("Lrs", (), {"url": url, "auth": auth,
                               "statements": staticmethod(lambda **p: lrs_statements(url, auth, **p))})
        return
    if not (RALPH_VENV / "bin" / "uvicorn").exists():
        pytest.skip("no LRS: set CALMCALL_TEST_LRS_URL or install Ralph (bash scripts/ci_lms.sh)")
    server = Ralph().start()
    yield server
    server.close()


def _store(tmp_path) -> AttemptStore:
    return AttemptStore(f"sqlite:///{tmp_path / 'attempts.db'}")


def _settings(settings, tmp_path, **extra):
    return settings.model_copy(update={"database_url": f"sqlite:///{tmp_path / 'attempts.db'}", **FAST, **extra})


def _rows(store) -> list[XapiOutbox]:
    with store._session() as s:
        return list(s.scalars(select(XapiOutbox).order_by(XapiOutbox.id)))


def _agent(homepage: str, learner: str) -> dict:
    return {"objectType": "Agent", "account": {"homePage": homepage, "name": learner}}


def _wait(predicate, timeout_s: float = 60, what: str = "condition"):
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


# -- the outbox, without an LRS ------------------------------------------------------------
def test_a_recorded_attempt_queues_exactly_one_statement_with_an_id_derived_from_it(tmp_path):
    store = _store(tmp_path)
    org = store.organisation("acme")
    attempt, created = store.record_attempt(org.id, "emp-1", REPORT, "my answer", idempotency_key="k1")
    replay, again = store.record_attempt(org.id, "emp-1", REPORT, "my answer", idempotency_key="k1")
    assert created and not again and replay["id"] == attempt["id"]
    rows = _rows(store)
    assert len(rows) == 1  # the replay queued nothing
    row = rows[0]
    assert (row.kind, row.ref, row.status, row.org_id) == ("attempt", str(attempt["id"]), "pending", org.id)
    assert row.facts["learner"] == "emp-1" and row.facts["score"] == 72 and row.facts["question"] == "q01_angry_call"
    assert "my answer" not in json.dumps(row.facts)  # the answer text never leaves
    assert row.statement_id == xapi.statement_id("attempt", org.id, str(attempt["id"]), row.facts["timestamp"])
    assert str(uuid.UUID(row.statement_id)) == row.statement_id
    # the same attempt in another database (or after a restore) is another statement
    other = _store(tmp_path / "other")
    other_org = other.organisation("acme")
    other.record_attempt(other_org.id, "emp-1", REPORT, "my answer")
    assert _rows(other)[0].statement_id != row.statement_id


def test_statement_shape_actor_verb_object_result_context(settings, tmp_path):
    s = settings.model_copy(update={"app_url": "https://coach.example.com/", "mastery_score": 70})
    store = _store(tmp_path)
    org = store.organisation("Acme Corp")
    store.record_attempt(org.id, "emp 7", REPORT, "answer")
    row = _rows(store)[0]
    with store._session() as ss:
        dest = xapi.destination(ss, org, s.model_copy(update={"xapi_url": "http://lrs.invalid/xAPI"}))
    assert dest.endpoint == "http://lrs.invalid/xAPI/" and dest.auth is None
    st = xapi.compose(row, org.name, dest, s)
    assert st["id"] == row.statement_id
    assert st["actor"] == _agent("https://coach.example.com/orgs/Acme%20Corp", "emp 7")
    assert st["verb"]["id"] == "http://adlnet.gov/expapi/verbs/scored"
    assert st["object"]["id"] == "https://coach.example.com/xapi/activities/questions/q01_angry_call"
    assert st["object"]["definition"]["name"] == {"en": "How would you handle an angry call?"}
    assert st["result"] == {"score": {"scaled": 0.72, "raw": 72, "min": 0, "max": 100}, "success": True,
                            "completion": True}
    assert st["context"]["extensions"]["https://coach.example.com/xapi/extensions/organisation"] == "Acme Corp"
    assert st["context"]["contextActivities"]["grouping"][0]["id"] == "https://coach.example.com/orgs/Acme%20Corp"
    assert st["timestamp"] == row.facts["timestamp"]
    assert xapi.compose(row, org.name, dest, s.model_copy(update={"mastery_score": 80}))["result"]["success"] is False
    # a role-play call: completed, the scenario, the outcome
    call = xapi.XapiOutbox(statement_id="x", kind="call", ref="rp_1", facts={
        "learner": "emp 7", "scenario": "coffee", "scenario_title": "The bad morning coffee", "language": "sv",
        "score": 55, "success": True, "outcome": "resolved", "timestamp": row.facts["timestamp"]})
    cs = xapi.compose(call, org.name, dest, s)
    assert cs["verb"]["id"].endswith("/completed") and cs["object"]["id"].endswith("/scenarios/coffee")
    assert cs["result"]["success"] is True and cs["context"]["language"] == "sv"
    assert cs["result"]["extensions"] == {"https://coach.example.com/xapi/extensions/outcome": "resolved"}


def test_without_any_lrs_statements_are_skipped_kept_and_can_be_requeued(settings, tmp_path):
    s = _settings(settings, tmp_path, xapi_url="")
    store = _store(tmp_path)
    org = store.organisation("acme")
    store.record_attempt(org.id, "emp-1", REPORT, "answer")
    assert not xapi.configured(store, s)
    report = xapi.deliver(store, s)
    assert (report.sent, report.skipped) == (0, 1)
    assert xapi.backlog(store)["skipped"] == 1 and xapi.backlog(store)["pending"] == 0
    assert xapi.requeue(store) == 1 and xapi.backlog(store)["pending"] == 1


def test_a_sender_with_no_lrs_leaves_statements_to_a_process_that_has_one(settings, tmp_path):
    """The Streamlit app and the API share the outbox; an app started without the LRS
    settings must not mark the attempts recorded in it ``skipped`` (it is woken first)."""
    from conftest import free_port

    bare = _settings(settings, tmp_path, xapi_url="")
    store = _store(tmp_path)
    org = store.organisation("acme")
    sender = xapi.Sender(lambda: store, bare).start()
    try:
        store.record_attempt(org.id, "emp-1", REPORT, "answer")
        time.sleep(1.0)  # five polls, one wake-up by the attempt
        assert xapi.backlog(store)["pending"] == 1 and xapi.backlog(store)["skipped"] == 0
        # once some LRS is known to the store, the same sender routes (here: tries and backs off)
        xapi.set_org_lrs(store, "acme", endpoint=f"http://127.0.0.1:{free_port()}/xAPI/")
        _wait(lambda: _rows(store)[0].tries >= 1, 10, "the sender to try the organisation's LRS")
    finally:
        sender.stop()
    assert _rows(store)[0].status == "pending"


def test_backoff_grows_exponentially_and_is_capped(settings):
    s = settings.model_copy(update={"xapi_retry_s": 5.0, "xapi_max_backoff_s": 60.0})
    delays = [xapi.backoff_s(n, s) for n in range(1, 8)]
    assert 4.0 <= delays[0] <= 6.0 and 8.0 <= delays[1] <= 12.0 and 16.0 <= delays[2] <= 24.0
    assert all(d <= 72.0 for d in delays) and delays[-1] >= 48.0


def test_an_unreachable_lrs_blocks_nothing_and_backs_off(settings, tmp_path):
    from conftest import free_port

    s = _settings(settings, tmp_path, xapi_url=f"http://127.0.0.1:{free_port()}/xAPI/", xapi_retry_s=60.0,
                  xapi_max_backoff_s=600.0)
    store = _store(tmp_path)
    org = store.organisation("acme")
    t0 = time.perf_counter()
    store.record_attempt(org.id, "emp-1", REPORT, "answer")
    assert time.perf_counter() - t0 < 5  # recording never waits for the LRS
    report = xapi.deliver(store, s)
    assert report.retrying == 1 and "not reachable" in report.errors[0]
    row = _rows(store)[0]
    assert row.status == "pending" and row.tries == 1 and row.statement is not None  # frozen for the retry
    assert xapi.deliver(store, s).retrying == 0  # not due yet: backoff
    assert xapi.deliver(store, s, ignore_backoff=True).retrying == 1 and _rows(store)[0].tries == 2
    info = xapi.backlog(store)
    assert info["pending"] == 1 and "not reachable" in info["last_error"]


# -- against Ralph -------------------------------------------------------------------------
def test_graded_attempts_reach_the_lrs_read_back_by_id_and_agent_and_are_sent_once(lrs, coach, settings, tmp_path):
    s = _settings(settings, tmp_path, xapi_url=lrs.url, xapi_auth=lrs.auth, app_url="https://coach.example.com")
    learner = f"lrs-{uuid.uuid4().hex[:8]}"
    store = _store(tmp_path)
    _, key = store.create_key("xapi-e2e")
    app_coach = _coach_on(coach, s)
    with TestClient(create_app(s, app_coach)) as client:
        r = client.post("/v1/grade", json={"answer": ANSWER, "question": "q01_angry_call", "learner_id": learner},
                        headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 200, r.text
        score = r.json()["score"]
        _wait(lambda: xapi.backlog(store)["sent"] == 1, what="the sender to deliver")
        ready = client.get("/readyz").json()
        assert ready["status"] == "ready" and ready["xapi"]["pending"] == 0 and ready["xapi"]["sent"] == 1
    row = _rows(store)[0]
    by_id = lrs.statements(statementId=row.statement_id)
    assert len(by_id) == 1
    got = by_id[0]
    assert got["actor"]["account"] == {"homePage": "https://coach.example.com/orgs/xapi-e2e", "name": learner}
    assert got["verb"]["id"] == "http://adlnet.gov/expapi/verbs/scored"
    assert got["object"]["id"] == "https://coach.example.com/xapi/activities/questions/q01_angry_call"
    assert got["result"]["score"]["raw"] == score and got["result"]["score"]["scaled"] == pytest.approx(score / 100)
    assert got["result"]["success"] is (score >= s.mastery_score)
    assert got["context"]["extensions"]["https://coach.example.com/xapi/extensions/organisation"] == "xapi-e2e"
    assert "stored" in got and "authority" in got  # the LRS's own fields: it really stored it
    # The response was "lost": the row goes back to pending and is sent again; the LRS keeps one.
    with store._session() as ss:
        ss.execute(update(XapiOutbox).values(status="pending", sent_at=None))
        ss.commit()
    assert xapi.deliver(store, s, ignore_backoff=True).sent == 1
    agent = _agent("https://coach.example.com/orgs/xapi-e2e", learner)
    assert [x["id"] for x in lrs.statements(agent=agent)] == [row.statement_id]


def test_an_organisation_s_own_lrs_and_namespace_override_the_server_wide_one(lrs, settings, tmp_path):
    s = _settings(settings, tmp_path, xapi_url="", xapi_auth="")  # no server-wide LRS
    store = _store(tmp_path)
    own, plain = store.organisation(f"own-{uuid.uuid4().hex[:6]}"), store.organisation("plain")
    xapi.set_org_lrs(store, own.name, endpoint=lrs.url, auth=lrs.auth, homepage="https://lms.acme.example")
    assert xapi.org_lrs(store, own.name)["auth"].endswith(":***")  # shown masked
    learner = f"org-{uuid.uuid4().hex[:8]}"
    store.record_attempt(own.id, learner, REPORT, "answer")
    store.record_attempt(plain.id, learner, REPORT, "answer")
    assert xapi.configured(store, s)
    report = xapi.deliver(store, s)
    assert (report.sent, report.skipped) == (1, 1), report.as_dict()
    got = lrs.statements(agent=_agent("https://lms.acme.example", learner))
    assert len(got) == 1 and got[0]["context"]["extensions"]
    # switched off: nothing is sent for that organisation
    xapi.set_org_lrs(store, own.name, enabled=False)
    store.record_attempt(own.id, learner, REPORT, "answer")
    assert xapi.deliver(store, s).skipped == 1


def test_a_statement_the_lrs_refuses_is_isolated_and_the_rest_of_the_batch_is_sent(lrs, settings, tmp_path):
    s = _settings(settings, tmp_path, xapi_url=lrs.url, xapi_auth=lrs.auth)
    store = _store(tmp_path)
    org = store.organisation("batch")
    learner = f"batch-{uuid.uuid4().hex[:8]}"
    for _ in range(3):
        store.record_attempt(org.id, learner, REPORT, "answer")
    bad = _rows(store)[1]
    with store._session() as ss:  # freeze a statement the LRS must refuse (no actor)
        broken = xapi.compose(bad, org.name, xapi.destination(ss, org, s), s)
        del broken["actor"]
        ss.execute(update(XapiOutbox).where(XapiOutbox.id == bad.id).values(statement=broken))
        ss.commit()
    report = xapi.deliver(store, s)
    assert (report.sent, report.rejected, report.retrying) == (2, 1, 0), report.as_dict()
    statuses = [r.status for r in _rows(store)]
    assert statuses == ["sent", "rejected", "sent"]
    assert "LRS answered 422" in _rows(store)[1].last_error
    assert len(lrs.statements(agent=_agent(xapi.default_homepage(s, org.name), learner))) == 2


def test_a_finished_role_play_call_becomes_a_completed_statement_in_the_lrs(lrs, settings, tmp_path):
    s = _settings(settings, tmp_path, xapi_url=lrs.url, xapi_auth=lrs.auth)
    store = _store(tmp_path)
    org = store.organisation("calls")
    learner = f"call-{uuid.uuid4().hex[:8]}"
    for call_id, how in ((f"rp_{uuid.uuid4().hex[:12]}", "turn"), (f"rp_{uuid.uuid4().hex[:12]}", "stopped")):
        store.create_call(org.id, learner, call_id, "coffee", "sv", 1, {}, 6)
        assert _rows(store) == [] or all(r.ref != call_id for r in _rows(store))  # an open call: nothing yet
        card = {"success": how == "turn", "title": "The bad morning coffee"}
        if how == "turn":
            store.record_turn(org.id, call_id, 1, "I am sorry, let me help.", "Fine.", 3, {"caller": "Fine."}, {},
                              "done", "resolved", 81, card)
        else:
            assert store.finish_call(org.id, call_id, 0, {}, "stopped", 20, card)
    rows = _rows(store)
    assert [(r.kind, r.facts["outcome"], r.facts["score"]) for r in rows] == [("call", "resolved", 81),
                                                                              ("call", "stopped", 20)]
    assert xapi.deliver(store, s).sent == 2
    got = {x["id"]: x for x in lrs.statements(agent=_agent(xapi.default_homepage(s, "calls"), learner))}
    first = got[rows[0].statement_id]
    assert first["verb"]["id"] == "http://adlnet.gov/expapi/verbs/completed"
    assert first["object"]["id"].endswith("/xapi/activities/scenarios/coffee")
    assert first["result"]["success"] is True and first["result"]["score"]["raw"] == 81
    assert got[rows[1].statement_id]["result"]["success"] is False


@pytest.mark.slow
def test_the_lrs_stops_mid_run_grading_goes_on_and_nothing_is_lost(coach, settings, tmp_path):
    """Our own Ralph: 2 attempts delivered, Ralph stopped, 3 more graded (fast, all 200,
    /readyz still ready with a backlog), Ralph started again: all 5 in the LRS, once each."""
    if not (RALPH_VENV / "bin" / "uvicorn").exists():
        pytest.skip("Ralph not installed (bash scripts/ci_lms.sh)")
    ralph = Ralph().start()
    try:
        s = _settings(settings, tmp_path, xapi_url=ralph.url, xapi_auth=ralph.auth)
        store = _store(tmp_path)
        _, key = store.create_key("outage")
        learner = f"outage-{uuid.uuid4().hex[:8]}"
        headers = {"Authorization": f"Bearer {key}"}
        body = {"answer": ANSWER, "question": "q01_angry_call", "learner_id": learner}
        with TestClient(create_app(s, _coach_on(coach, s))) as client:
            for _ in range(2):
                assert client.post("/v1/grade", json=body, headers=headers).status_code == 200
            _wait(lambda: xapi.backlog(store)["sent"] == 2, what="the first two statements")
            ralph.stop()
            times = []
            for _ in range(3):
                t0 = time.perf_counter()
                r = client.post("/v1/grade", json=body, headers=headers)
                times.append(time.perf_counter() - t0)
                assert r.status_code == 200, r.text
            ready = _wait(lambda: (lambda j: j if j["xapi"]["last_error"] else None)(client.get("/readyz").json()),
                          what="a delivery failure on /readyz")
            assert ready["status"] == "ready" and ready["xapi"]["pending"] == 3
            assert "not reachable" in ready["xapi"]["last_error"]
            assert max(times) < 30, times  # grading does not wait for the LRS (its timeout is 3 s)
            ralph.start()
            _wait(lambda: xapi.backlog(store)["pending"] == 0, timeout_s=90, what="the backlog to drain")
        sent = [r.statement_id for r in _rows(store)]
        assert len(sent) == 5 and all(r.status == "sent" for r in _rows(store))
        in_lrs = [x["id"] for x in ralph.statements(agent=_agent(xapi.default_homepage(s, "outage"), learner))]
        assert sorted(in_lrs) == sorted(sent)  # every one, none twice
    finally:
        ralph.close()


def test_xapi_cli_status_flush_and_per_organisation_lrs(settings, tmp_path):
    from conftest import free_port, run_cli

    env = {"CALMCALL_DATA_DIR": str(tmp_path), "CALMCALL_DATABASE_URL": f"sqlite:///{tmp_path / 'attempts.db'}",
           "CALMCALL_XAPI_URL": f"http://127.0.0.1:{free_port()}/xAPI/", "CALMCALL_XAPI_RETRY_S": "0.1"}
    store = _store(tmp_path)
    org = store.organisation("cli-org")
    store.record_attempt(org.id, "emp-1", REPORT, "answer")
    r = run_cli("xapi", "flush", "--json", env=env, timeout=120)
    assert r.returncode == 1, r.stderr.decode()  # the LRS is down: still pending
    out = json.loads(r.stdout)
    assert out["retrying"] == 1 and out["backlog"]["pending"] == 1 and "not reachable" in out["errors"][0]
    r = run_cli("xapi", "lrs", "--org", "cli-org", "--url", "ftp://nope", env=env, timeout=120)
    assert r.returncode == 2 and b"http(s) URL" in r.stderr
    r = run_cli("xapi", "lrs", "--org", "cli-org", "--disable", env=env, timeout=120)
    assert r.returncode == 0 and json.loads(r.stdout)["enabled"] is False
    r = run_cli("xapi", "flush", "--json", env=env, timeout=120)
    assert r.returncode == 0 and json.loads(r.stdout)["skipped"] == 1  # switched off: kept, not sent


def _coach_on(coach, settings):
    """A Coach on another database/settings that shares the session coach's loaded models."""
    from calmcall.coach import Coach

    other = Coach(settings)
    for name in ("knowledge", "embedder", "catalogue", "bridge", "retriever", "grader", "answerer",
                 "question_vectors", "vector_cache"):
        if name in coach.__dict__:
            other.__dict__[name] = coach.__dict__[name]
    return other

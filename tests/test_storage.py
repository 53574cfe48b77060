"""The attempts store, for real: SQLite (default) and PostgreSQL (CALMCALL_TEST_DATABASE_URL,
started by scripts/ci_services.sh). Migrations, organisation scoping, API keys,
idempotency and concurrent writers."""

from __future__ import annotations

import os
import socket
import threading
import uuid

import pytest
from sqlalchemy import create_engine, inspect, text

from calmcall.storage import AttemptStore, StoreUnavailable

PG_URL = os.environ.get("CALMCALL_TEST_DATABASE_URL", "")


def _report(score=50, steps=("listen",), question="q01_angry_call"):
    return {"question": {"id": question, "text": "?"}, "language": "en", "score": score,
            "covered": [{"step": s} for s in steps]}


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'attempts.db'}"
    if not PG_URL:
        pytest.skip("CALMCALL_TEST_DATABASE_URL not set (eval \"$(bash scripts/ci_services.sh)\")")
    return PG_URL


@pytest.fixture
def store(store_url):
    return AttemptStore(store_url)


def _org(store, prefix="org"):
    return store.organisation(f"{prefix}-{uuid.uuid4().hex[:8]}")


def test_migrations_create_the_schema_and_are_idempotent(store_url):
    AttemptStore(store_url)
    AttemptStore(store_url)  # second run: already at head, no error
    engine = create_engine(store_url)
    try:
        tables = set(inspect(engine).get_table_names())
        assert {"organisations", "api_keys", "learners", "attempts", "alembic_version",
                "xapi_outbox", "org_lrs", "package_credentials"} <= tables
        with engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0003"  # 0001→0002→0003
    finally:
        engine.dispose()


def test_keys_are_hashed_revocable_and_listed(store):
    name = f"acme-{uuid.uuid4().hex[:6]}"
    key_id, key = store.create_key(name)
    assert key.startswith(key_id + ".")
    assert store.org_for_key(key).name == name
    assert store.org_for_key(key_id + ".wrong-secret") is None
    assert store.org_for_key("garbage") is None
    listed = {k["key_id"]: k for k in store.list_keys()}
    assert listed[key_id]["org"] == name and not listed[key_id]["revoked"]
    with store.engine.connect() as conn:
        stored = conn.execute(text("SELECT key_hash FROM api_keys WHERE key_id = :k"), {"k": key_id}).scalar()
    assert key.split(".", 1)[1] not in stored  # only the hash is stored
    assert store.revoke_key(key_id)
    assert not store.revoke_key(key_id)  # already revoked
    assert store.org_for_key(key) is None
    assert {k["key_id"]: k for k in store.list_keys()}[key_id]["revoked"]


def test_every_query_is_scoped_by_organisation(store):
    a, b = _org(store, "a"), _org(store, "b")
    store.record_attempt(a.id, "alice", _report(40, ("listen",)), "answer one")
    store.record_attempt(a.id, "alice", _report(80, ("listen", "empathise")), "answer two")
    store.record_attempt(b.id, "alice", _report(10, ()), "b's alice")
    assert [x["score"] for x in store.attempts(a.id, "alice")] == [40, 80]
    assert [x["answer"] for x in store.attempts(b.id, "alice")] == ["b's alice"]
    assert store.attempts(b.id, "nobody") == []
    (row,) = store.org_report(a.id)
    assert row == {"learner_id": "alice", "attempts": 2, "best_score": 80, "latest_score": 80,
                   "steps_mastered": ["empathise", "listen"]}
    first_a = store.attempts(a.id, "alice")[0]["id"]
    assert store.attempt_report(a.id, first_a)["score"] == 40
    assert store.attempt_report(b.id, first_a) is None


def test_idempotency_key_stores_once_per_organisation(store):
    a, b = _org(store, "a"), _org(store, "b")
    first, created = store.record_attempt(a.id, "l1", _report(), "x", "key-1")
    again, created_again = store.record_attempt(a.id, "l1", _report(), "x", "key-1")
    assert created and not created_again and again["id"] == first["id"]
    other, created_b = store.record_attempt(b.id, "l1", _report(), "x", "key-1")  # same key, other org
    assert created_b and other["id"] != first["id"]
    assert len(store.attempts(a.id, "l1")) == 1


def test_concurrent_writers_lose_nothing(store):
    org = _org(store, "busy")
    errors: list[BaseException] = []
    n_threads, per_thread = 8, 12

    def work(t: int) -> None:
        try:
            for i in range(per_thread):
                key = f"t{t}-i{i}"
                store.record_attempt(org.id, f"learner-{i % 3}", _report(i), "ans", key)
                store.record_attempt(org.id, f"learner-{i % 3}", _report(i), "ans", key)  # retry
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(n_threads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    assert not errors, errors[:3]
    total = sum(len(store.attempts(org.id, f"learner-{j}")) for j in range(3))
    assert total == n_threads * per_thread
    assert sum(r["attempts"] for r in store.org_report(org.id)) == total


def test_same_idempotency_key_raced_from_many_threads_is_stored_once(store):
    org = _org(store, "race")
    results: list = []
    barrier = threading.Barrier(8)

    def work():
        barrier.wait(timeout=30)
        results.append(store.record_attempt(org.id, "racer", _report(), "same", "the-key"))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=60)
    assert len(results) == 8
    assert len({r[0]["id"] for r in results}) == 1
    assert sum(1 for _, created in results if created) == 1
    assert len(store.attempts(org.id, "racer")) == 1


def test_unreachable_postgres_is_store_unavailable():
    url = f"postgresql+psycopg://nobody@127.0.0.1:{_closed_port()}/none?connect_timeout=2"
    with pytest.raises(StoreUnavailable, match="not reachable"):
        AttemptStore(url)
    lazy = AttemptStore(url, migrate=False)
    assert lazy.ping() is False

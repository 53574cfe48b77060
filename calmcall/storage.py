"""The attempts store: organisations, API keys, learners and their graded attempts.

SQLAlchemy, SQLite by default (WAL + busy timeout, safe under concurrent writers), any
SQLAlchemy URL (PostgreSQL) by ``CALMCALL_DATABASE_URL``. The schema is created and
migrated with Alembic (``calmcall/migrations``). Every learner and attempt belongs to one
organisation, and every query here is scoped by organisation.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    select,
)
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
LOCAL_ORG = "local"


class StoreUnavailable(RuntimeError):
    """The database cannot be reached or written; the message is safe to show."""


def _now() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class Organisation(Base):
    __tablename__ = "organisations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    secret: Mapped[str] = mapped_column(String(128))  # HMAC key for embed tokens
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


class ApiKey(Base):
    __tablename__ = "api_keys"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    key_id: Mapped[str] = mapped_column(String(32), unique=True)  # public prefix
    key_hash: Mapped[str] = mapped_column(String(128))  # sha256 of the secret part
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Learner(Base):
    __tablename__ = "learners"
    __table_args__ = (UniqueConstraint("org_id", "external_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    external_id: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


class Attempt(Base):
    __tablename__ = "attempts"
    __table_args__ = (UniqueConstraint("org_id", "idempotency_key"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    learner_id: Mapped[int] = mapped_column(ForeignKey("learners.id"), index=True)
    question_id: Mapped[str] = mapped_column(String(100))
    language: Mapped[str] = mapped_column(String(8))
    score: Mapped[int] = mapped_column(Integer)
    answer: Mapped[str] = mapped_column(Text)
    covered: Mapped[list] = mapped_column(JSON)  # step ids covered
    report: Mapped[dict] = mapped_column(JSON)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now, index=True)

    def as_dict(self, learner_external_id: str) -> dict:
        return {
            "id": self.id,
            "learner_id": learner_external_id,
            "question": self.question_id,
            "language": self.language,
            "score": self.score,
            "covered": list(self.covered or []),
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "answer": self.answer,
        }


# -- role-play calls (calmcall.roleplay; migration 0002) ---------------------------------
class Call(Base):
    """One role-play call. ``state`` is the whole call (calmcall.roleplay.Call.to_state) after
    the latest turn, so any worker can take the next one; ``n_turns`` guards against two
    workers recording the same turn."""

    __tablename__ = "calls"
    __table_args__ = (UniqueConstraint("org_id", "idempotency_key"),)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # rp_<hex>, not guessable
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    learner_id: Mapped[int] = mapped_column(ForeignKey("learners.id"), index=True)
    scenario_id: Mapped[str] = mapped_column(String(100))
    language: Mapped[str] = mapped_column(String(8))
    seed: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | done
    outcome: Mapped[str | None] = mapped_column(String(32), nullable=True)
    score: Mapped[int | None] = mapped_column(Integer, nullable=True)
    anger: Mapped[int] = mapped_column(Integer)
    n_turns: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[dict] = mapped_column(JSON)
    scorecard: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now, index=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)

    def as_dict(self, learner_external_id: str) -> dict:
        return {
            "id": self.id,
            "learner_id": learner_external_id,
            "scenario": self.scenario_id,
            "language": self.language,
            "status": self.status,
            "outcome": self.outcome,
            "score": self.score,
            "anger": self.anger,
            "turns": self.n_turns,
            "success": bool((self.scorecard or {}).get("success")) if self.scorecard else None,
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.updated_at),
        }


class CallTurn(Base):
    __tablename__ = "call_turns"
    __table_args__ = (UniqueConstraint("call_id", "n"), UniqueConstraint("call_id", "idempotency_key"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id"), index=True)
    n: Mapped[int] = mapped_column(Integer)
    say: Mapped[str] = mapped_column(Text)
    caller: Mapped[str] = mapped_column(Text)
    anger: Mapped[int] = mapped_column(Integer)
    result: Mapped[dict] = mapped_column(JSON)  # the turn as the API answered it
    idempotency_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


class TurnConflict(RuntimeError):
    """Another request recorded this call's next turn first (or the call is over)."""


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:  # SQLite hands timestamps back without their offset
        value = value.replace(tzinfo=UTC)
    return value.isoformat()


# -- LMS and LRS (calmcall.scorm, calmcall.xapi; migration 0003) -------------------------
class PackageCredential(Base):
    """What a SCORM package carries instead of an API key: it can only mint embed tokens
    for learners of its organisation (``POST /v1/scorm/launch``). Only a hash is stored."""

    __tablename__ = "package_credentials"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    cred_id: Mapped[str] = mapped_column(String(32), unique=True)  # public prefix, pk_<hex>
    secret_hash: Mapped[str] = mapped_column(String(128))
    label: Mapped[str] = mapped_column(String(200), default="")
    question_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    scenario_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    lms_origins: Mapped[list] = mapped_column(JSON, default=list)  # empty = any origin
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class OrgLrs(Base):
    """An organisation's own LRS (overrides CALMCALL_XAPI_URL / CALMCALL_XAPI_AUTH)."""

    __tablename__ = "org_lrs"
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)  # False: send nothing
    endpoint: Mapped[str] = mapped_column(String(500), default="")  # "" = the server-wide one
    auth: Mapped[str] = mapped_column(String(500), default="")  # user:password
    homepage: Mapped[str] = mapped_column(String(500), default="")  # learner account namespace
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


class XapiOutbox(Base):
    """One xAPI statement to deliver, written in the same transaction as what it reports,
    so an LRS that is down loses nothing and blocks nothing (see calmcall.xapi)."""

    __tablename__ = "xapi_outbox"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    statement_id: Mapped[str] = mapped_column(String(36), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # attempt | call
    ref: Mapped[str] = mapped_column(String(64))  # the attempt's (or call's) id
    facts: Mapped[dict] = mapped_column(JSON)  # what the statement is composed from
    statement: Mapped[dict | None] = mapped_column(JSON, nullable=True)  # frozen at first send
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    tries: Mapped[int] = mapped_column(Integer, default=0)
    next_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now, index=True)
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class AttemptStore:
    """All database access; safe to share between threads (one engine, short sessions)."""

    def __init__(self, url: str, migrate: bool = True):
        self.url = url
        kwargs: dict = {"pool_pre_ping": True}
        if url.startswith("sqlite"):
            path = url.split("///", 1)[-1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
        self.engine = create_engine(url, **kwargs)
        if url.startswith("sqlite"):
            @event.listens_for(self.engine, "connect")
            def _sqlite_pragmas(dbapi_conn, _):
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA busy_timeout=30000")
                cur.execute("PRAGMA foreign_keys=ON")
                cur.close()

        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        if migrate:
            self.migrate()

    # -- schema ------------------------------------------------------------------------
    def migrate(self) -> None:
        """Bring the schema to the latest Alembic revision."""
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.set_main_option("sqlalchemy.url", self.url.replace("%", "%%"))
        try:
            with self.engine.begin() as conn:
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
        except OperationalError as exc:
            raise StoreUnavailable(f"database is not reachable: {exc.orig}") from exc

    def _session(self) -> Session:
        return self._sessions()

    def ping(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
            return True
        except SQLAlchemyError:
            return False

    # -- organisations and keys ---------------------------------------------------------
    def organisation(self, name: str, create: bool = True) -> Organisation | None:
        try:
            with self._session() as s:
                org = s.scalar(select(Organisation).where(Organisation.name == name))
                if org is None and create:
                    org = Organisation(name=name, secret=secrets.token_hex(32))
                    s.add(org)
                    try:
                        s.commit()
                    except IntegrityError:  # created concurrently
                        s.rollback()
                        org = s.scalar(select(Organisation).where(Organisation.name == name))
                return org
        except OperationalError as exc:
            raise StoreUnavailable(f"database is not reachable: {exc.orig}") from exc

    def create_key(self, org_name: str) -> tuple[str, str]:
        """Returns (key_id, full key). Only the hash of the secret part is stored."""
        org = self.organisation(org_name)
        key_id = "cc_" + secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        with self._session() as s:
            s.add(ApiKey(org_id=org.id, key_id=key_id, key_hash=hash_key(secret)))
            s.commit()
        return key_id, f"{key_id}.{secret}"

    def revoke_key(self, key_id: str) -> bool:
        with self._session() as s:
            key = s.scalar(select(ApiKey).where(ApiKey.key_id == key_id))
            if key is None or key.revoked_at is not None:
                return False
            key.revoked_at = _now()
            s.commit()
            return True

    def list_keys(self) -> list[dict]:
        with self._session() as s:
            rows = s.execute(select(ApiKey, Organisation).join(Organisation, ApiKey.org_id == Organisation.id)).all()
            return [
                {"key_id": k.key_id, "org": o.name, "created_at": k.created_at.isoformat(),
                 "revoked": k.revoked_at is not None}
                for k, o in rows
            ]

    def org_for_key(self, full_key: str) -> Organisation | None:
        """The organisation a (non-revoked) key belongs to, compared in constant time."""
        key_id, _, secret = full_key.partition(".")
        if not key_id or not secret:
            return None
        with self._session() as s:
            key = s.scalar(select(ApiKey).where(ApiKey.key_id == key_id))
            if key is None or key.revoked_at is not None:
                return None
            if not secrets.compare_digest(key.key_hash, hash_key(secret)):
                return None
            return s.get(Organisation, key.org_id)

    # -- learners and attempts ----------------------------------------------------------
    def _learner(self, s: Session, org_id: int, external_id: str, create: bool) -> Learner | None:
        learner = s.scalar(select(Learner).where(Learner.org_id == org_id, Learner.external_id == external_id))
        if learner is None and create:
            learner = Learner(org_id=org_id, external_id=external_id)
            s.add(learner)
            try:
                s.flush()
            except IntegrityError:
                s.rollback()
                learner = s.scalar(
                    select(Learner).where(Learner.org_id == org_id, Learner.external_id == external_id)
                )
        return learner

    def record_attempt(
        self,
        org_id: int,
        learner_id: str,
        report: dict,
        answer: str,
        idempotency_key: str | None = None,
    ) -> tuple[dict, bool]:
        """Store one graded attempt. Returns (attempt, created). With an idempotency key,
        a retry returns the attempt stored the first time instead of a duplicate."""
        try:
            with self._session() as s:
                if idempotency_key:
                    existing = s.scalar(
                        select(Attempt).where(Attempt.org_id == org_id, Attempt.idempotency_key == idempotency_key)
                    )
                    if existing is not None:
                        learner = s.get(Learner, existing.learner_id)
                        return existing.as_dict(learner.external_id), False
                learner = self._learner(s, org_id, learner_id, create=True)
                attempt = Attempt(
                    org_id=org_id,
                    learner_id=learner.id,
                    question_id=report.get("question", {}).get("id", ""),
                    language=report.get("language", ""),
                    score=int(report.get("score", 0)),
                    answer=answer,
                    covered=[c["step"] for c in report.get("covered", [])],
                    report=json.loads(json.dumps(report)),
                    idempotency_key=idempotency_key,
                )
                s.add(attempt)
                try:
                    s.flush()  # the attempt's id: its xAPI statement is queued in the same commit
                    from .xapi import enqueue_attempt, notify

                    enqueue_attempt(s, attempt, learner.external_id)
                    s.commit()
                except IntegrityError:  # the same idempotency key raced us
                    s.rollback()
                    existing = s.scalar(
                        select(Attempt).where(Attempt.org_id == org_id, Attempt.idempotency_key == idempotency_key)
                    )
                    if existing is None:
                        raise
                    return existing.as_dict(learner_id), False
                notify()  # wake this process's xAPI sender
                return attempt.as_dict(learner_id), True
        except OperationalError as exc:
            raise StoreUnavailable(f"database is not reachable: {exc.orig}") from exc

    def attempts(self, org_id: int, learner_id: str) -> list[dict]:
        with self._session() as s:
            learner = self._learner(s, org_id, learner_id, create=False)
            if learner is None:
                return []
            rows = s.scalars(
                select(Attempt).where(Attempt.org_id == org_id, Attempt.learner_id == learner.id).order_by(Attempt.id)
            ).all()
            return [a.as_dict(learner_id) for a in rows]

    def attempt_report(self, org_id: int, attempt_id: int) -> dict | None:
        with self._session() as s:
            a = s.get(Attempt, attempt_id)
            return a.report if a is not None and a.org_id == org_id else None

    def org_report(self, org_id: int) -> list[dict]:
        """Per learner: attempts, best and latest score, steps mastered (covered at least once)."""
        with self._session() as s:
            rows = s.execute(
                select(Attempt, Learner.external_id)
                .join(Learner, Attempt.learner_id == Learner.id)
                .where(Attempt.org_id == org_id)
                .order_by(Attempt.id)
            ).all()
        per: dict[str, dict] = {}
        for attempt, ext in rows:
            entry = per.setdefault(ext, {"learner_id": ext, "attempts": 0, "best_score": 0, "latest_score": 0,
                                         "steps_mastered": set()})
            entry["attempts"] += 1
            entry["best_score"] = max(entry["best_score"], attempt.score)
            entry["latest_score"] = attempt.score
            entry["steps_mastered"].update(attempt.covered or [])
        for ext, calls in self._finished_calls(org_id).items():  # role-play calls, finished ones
            entry = per.setdefault(ext, {"learner_id": ext, "attempts": 0, "best_score": 0, "latest_score": 0,
                                         "steps_mastered": set()})
            entry["calls"] = len(calls)
            entry["calls_won"] = sum(1 for c in calls if c["success"])
            entry["best_call_score"] = max(c["score"] or 0 for c in calls)
            entry["latest_call_score"] = calls[-1]["score"] or 0
        return [{**e, "steps_mastered": sorted(e["steps_mastered"])} for e in per.values()]

    # -- role-play calls (calmcall.roleplay) -------------------------------------------------
    def create_call(self, org_id: int, learner_id: str, call_id: str, scenario_id: str, language: str,
                    seed: int, state: dict, anger: int, idempotency_key: str | None = None) -> tuple[dict, bool]:
        """Store a new call (its opening line is in ``state``). Returns (call, created); with
        an idempotency key a retry returns the call stored the first time."""
        try:
            with self._session() as s:
                if idempotency_key:
                    existing = self._call_by_key(s, org_id, idempotency_key)
                    if existing is not None:
                        return existing, False
                learner = self._learner(s, org_id, learner_id, create=True)
                row = Call(id=call_id, org_id=org_id, learner_id=learner.id, scenario_id=scenario_id,
                           language=language, seed=seed, status="open", anger=anger, n_turns=0,
                           state=json.loads(json.dumps(state)), idempotency_key=idempotency_key)
                s.add(row)
                try:
                    s.commit()
                except IntegrityError:  # the same idempotency key raced us
                    s.rollback()
                    existing = self._call_by_key(s, org_id, idempotency_key) if idempotency_key else None
                    if existing is None:
                        raise
                    return existing, False
                return {**row.as_dict(learner_id), "state": row.state}, True
        except OperationalError as exc:
            raise StoreUnavailable(f"database is not reachable: {exc.orig}") from exc

    def _call_by_key(self, s: Session, org_id: int, key: str) -> dict | None:
        row = s.execute(select(Call, Learner.external_id).join(Learner, Call.learner_id == Learner.id)
                        .where(Call.org_id == org_id, Call.idempotency_key == key)).first()
        return {**row[0].as_dict(row[1]), "state": row[0].state} if row else None

    def get_call(self, org_id: int, call_id: str, with_turns: bool = False) -> dict | None:
        """A call of this organisation (None for another organisation's, exactly like a
        missing one), with its state and, if asked, its stored turns in order."""
        try:
            with self._session() as s:
                row = s.execute(select(Call, Learner.external_id).join(Learner, Call.learner_id == Learner.id)
                                .where(Call.id == call_id, Call.org_id == org_id)).first()
                if row is None:
                    return None
                call, ext = row
                out = {**call.as_dict(ext), "state": call.state, "scorecard": call.scorecard}
                if with_turns:
                    turns = s.scalars(select(CallTurn).where(CallTurn.call_id == call.id).order_by(CallTurn.n)).all()
                    out["stored_turns"] = [{"n": t.n, "say": t.say, "caller": t.caller, "anger": t.anger,
                                            "result": t.result} for t in turns]
                return out
        except OperationalError as exc:
            raise StoreUnavailable(f"database is not reachable: {exc.orig}") from exc

    def call_turn_by_key(self, org_id: int, call_id: str, key: str) -> dict | None:
        with self._session() as s:
            row = s.execute(select(CallTurn).join(Call, CallTurn.call_id == Call.id)
                            .where(Call.org_id == org_id, CallTurn.call_id == call_id,
                                   CallTurn.idempotency_key == key)).scalar()
            return None if row is None else {"n": row.n, "say": row.say, "result": row.result}

    def record_turn(self, org_id: int, call_id: str, n: int, say: str, caller: str, anger: int, result: dict,
                    state: dict, status: str, outcome: str | None, score: int | None, scorecard: dict | None,
                    idempotency_key: str | None = None) -> tuple[dict, bool]:
        """Store turn ``n`` and the call's new state in one transaction, only if the call
        still has n - 1 turns (compare and set). Returns (turn result, created): a retry with
        the same idempotency key gets the stored turn; a lost race raises ``TurnConflict``."""
        try:
            with self._session() as s:
                if idempotency_key:
                    prior = s.execute(select(CallTurn).where(CallTurn.call_id == call_id,
                                                             CallTurn.idempotency_key == idempotency_key)).scalar()
                    if prior is not None:
                        return prior.result, False
                updated = s.execute(
                    Call.__table__.update()
                    .where(Call.id == call_id, Call.org_id == org_id, Call.n_turns == n - 1, Call.status == "open")
                    .values(n_turns=n, anger=anger, state=json.loads(json.dumps(state)), status=status,
                            outcome=outcome, score=score, scorecard=json.loads(json.dumps(scorecard)) if scorecard
                            is not None else None, updated_at=_now())
                ).rowcount
                if updated != 1:
                    s.rollback()
                    raise TurnConflict(f"call {call_id} already has a turn {n} or is over")
                s.add(CallTurn(call_id=call_id, n=n, say=say, caller=caller, anger=anger,
                               result=json.loads(json.dumps(result)), idempotency_key=idempotency_key))
                if status == "done":  # the call's xAPI statement commits with its last turn
                    from .xapi import enqueue_finished_call

                    enqueue_finished_call(s, call_id)
                try:
                    s.commit()
                except IntegrityError:
                    s.rollback()
                    if idempotency_key:
                        prior = s.execute(select(CallTurn).where(CallTurn.call_id == call_id,
                                                                 CallTurn.idempotency_key == idempotency_key)).scalar()
                        if prior is not None:
                            return prior.result, False
                    raise TurnConflict(f"call {call_id} already has a turn {n}") from None
                return result, True
        except OperationalError as exc:
            raise StoreUnavailable(f"database is not reachable: {exc.orig}") from exc

    def update_call_state(self, org_id: int, call_id: str, n_turns: int, state: dict) -> bool:
        """Save state that changes between turns (a hint was taken), if no turn came in between."""
        with self._session() as s:
            updated = s.execute(Call.__table__.update()
                                .where(Call.id == call_id, Call.org_id == org_id, Call.n_turns == n_turns)
                                .values(state=json.loads(json.dumps(state)), updated_at=_now())).rowcount
            s.commit()
            return updated == 1

    def finish_call(self, org_id: int, call_id: str, n_turns: int, state: dict, outcome: str, score: int,
                    scorecard: dict) -> bool:
        """Close an open call without a turn (the learner stopped it)."""
        with self._session() as s:
            updated = s.execute(Call.__table__.update()
                                .where(Call.id == call_id, Call.org_id == org_id, Call.n_turns == n_turns,
                                       Call.status == "open")
                                .values(state=json.loads(json.dumps(state)), status="done", outcome=outcome,
                                        score=score, scorecard=json.loads(json.dumps(scorecard)),
                                        updated_at=_now())).rowcount
            if updated == 1:  # its xAPI statement, in the same transaction
                from .xapi import enqueue_finished_call

                enqueue_finished_call(s, call_id)
            s.commit()
            return updated == 1

    def calls(self, org_id: int, learner_id: str) -> list[dict]:
        """A learner's role-play calls, oldest first (progress and replay)."""
        with self._session() as s:
            learner = self._learner(s, org_id, learner_id, create=False)
            if learner is None:
                return []
            rows = s.scalars(select(Call).where(Call.org_id == org_id, Call.learner_id == learner.id)
                             .order_by(Call.created_at, Call.id)).all()
            return [c.as_dict(learner_id) for c in rows]

    def _finished_calls(self, org_id: int) -> dict[str, list[dict]]:
        with self._session() as s:
            rows = s.execute(select(Call, Learner.external_id).join(Learner, Call.learner_id == Learner.id)
                             .where(Call.org_id == org_id, Call.status == "done")
                             .order_by(Call.updated_at, Call.id)).all()
        per: dict[str, list[dict]] = {}
        for call, ext in rows:
            per.setdefault(ext, []).append(call.as_dict(ext))
        return per

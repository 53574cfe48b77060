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
                    s.commit()
                except IntegrityError:  # the same idempotency key raced us
                    s.rollback()
                    existing = s.scalar(
                        select(Attempt).where(Attempt.org_id == org_id, Attempt.idempotency_key == idempotency_key)
                    )
                    if existing is None:
                        raise
                    return existing.as_dict(learner_id), False
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
        return [{**e, "steps_mastered": sorted(e["steps_mastered"])} for e in per.values()]

"""xAPI 1.0.3 statements for graded attempts (and role-play calls), delivered to the
organisation's LRS through a durable outbox.

Why an outbox: the statement is written to ``xapi_outbox`` in the same transaction as the
attempt it reports (``AttemptStore.record_attempt`` calls :func:`enqueue_attempt`), so an
LRS that is down, slow or misconfigured never blocks or fails grading and never loses a
statement. A sender thread in each API/app process (:func:`start_sender`) and the CLI
(``python -m calmcall xapi flush``) deliver due rows, retrying with exponential backoff.

Sent once: the statement id is derived from the attempt (its kind, organisation, id and
creation time), and the statement is frozen the first time it is sent, so a retry after a
lost response carries the same id and content and the LRS stores it once (xAPI: an
identical statement with a known id is ignored; a different one is a 409 conflict).

Where to: the organisation's own LRS (``org_lrs`` row, set with ``xapi lrs``) or the
server-wide ``CALMCALL_XAPI_URL`` / ``CALMCALL_XAPI_AUTH``. Statements of an organisation
with neither are marked ``skipped`` (kept; ``xapi flush --requeue-skipped`` sends them
once an LRS is configured) by ``xapi flush`` or by a sender whose process knows some LRS;
a sender in a process that knows none leaves them for one that does (:class:`Sender`).
Every process should get the same LRS settings and IRI base (``CALMCALL_XAPI_BASE`` or
``CALMCALL_APP_URL``): whichever sender claims a statement first composes it.
"""

from __future__ import annotations

import logging
import random
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal
from urllib.parse import quote

from sqlalchemy import func, or_, select, update

from .storage import Organisation, OrgLrs, XapiOutbox

log = logging.getLogger("calmcall.xapi")

XAPI_VERSION = "1.0.3"
# Fixed namespace for statement ids (uuid5): the same attempt always gets the same id.
NAMESPACE = uuid.UUID("6b0e4c9e-2f7a-5d3c-9a51-c41c0a11c0de")
DEFAULT_BASE = "https://calmcall.invalid"
VERBS = {
    "scored": {"id": "http://adlnet.gov/expapi/verbs/scored", "display": {"en-US": "scored"}},
    "completed": {"id": "http://adlnet.gov/expapi/verbs/completed", "display": {"en-US": "completed"}},
}
ACTIVITY_TYPES = {
    "question": "http://adlnet.gov/expapi/activities/question",
    "scenario": "http://adlnet.gov/expapi/activities/simulation",
}
Status = Literal["pending", "sent", "skipped", "rejected"]
_WAKE = threading.Event()


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime | None) -> datetime | None:
    """SQLite hands timestamps back without their (UTC) offset."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def notify() -> None:
    """Something was queued: wake this process's sender now instead of at its next poll."""
    _WAKE.set()


# -- queueing (inside the caller's transaction) ------------------------------------------
def statement_id(kind: str, org_id: int, ref: str, timestamp: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"calmcall:{kind}:{org_id}:{ref}:{timestamp}"))


def enqueue(session, org_id: int, kind: Literal["attempt", "call"], ref: str, facts: dict) -> XapiOutbox:
    """Queue one statement in ``session`` (committed, or rolled back, with the caller's
    work). ``facts`` must hold ``learner``, ``score`` (0-100), ``language`` and
    ``timestamp`` (ISO 8601), plus ``question``/``question_text`` for an attempt or
    ``scenario``/``scenario_title`` (and optionally ``success``, ``outcome``) for a call."""
    row = XapiOutbox(
        org_id=org_id,
        statement_id=statement_id(kind, org_id, str(ref), facts["timestamp"]),
        kind=kind,
        ref=str(ref),
        facts=facts,
        status="pending",
        tries=0,
        next_at=_now(),
        last_error="",
    )
    session.add(row)
    return row


def enqueue_attempt(session, attempt, learner_external_id: str) -> XapiOutbox:
    """The statement for a graded practice attempt (``storage.Attempt``, flushed)."""
    created = _aware(attempt.created_at) or _now()
    question = (attempt.report or {}).get("question") or {}
    facts = {
        "learner": learner_external_id,
        "question": attempt.question_id,
        "question_text": str(question.get("text") or "")[:500],
        "language": attempt.language or "en",
        "score": int(attempt.score),
        "timestamp": created.isoformat(),
        "attempt": attempt.id,
    }
    return enqueue(session, attempt.org_id, "attempt", str(attempt.id), facts)


def enqueue_call(session, org_id: int, call_id, facts: dict) -> XapiOutbox:
    """The statement for a finished role-play call (for the role-play store): ``facts`` as
    in :func:`enqueue` with ``scenario``, ``scenario_title``, ``outcome`` and ``success``."""
    return enqueue(session, org_id, "call", str(call_id), {**facts, "call": call_id})


def enqueue_finished_call(session, call_id: str) -> XapiOutbox:
    """The statement for a role-play call that just ended (``storage.Call``, updated in
    ``session``): called by the store in the transaction that closes the call."""
    from .storage import Call, Learner

    with session.no_autoflush:  # the caller's pending rows are flushed by its own commit
        call = session.get(Call, call_id)
        learner = session.get(Learner, call.learner_id)
    card = call.scorecard or {}
    facts = {
        "learner": learner.external_id,
        "scenario": call.scenario_id,
        "scenario_title": str(card.get("scenario_title") or card.get("title") or call.scenario_id)[:500],
        "language": call.language or "en",
        "score": int(call.score or 0),
        "outcome": call.outcome or "",
        "timestamp": (_aware(call.updated_at) or _now()).isoformat(),
    }
    if card.get("success") is not None:
        facts["success"] = bool(card["success"])
    return enqueue_call(session, call.org_id, call.id, facts)


# -- where statements go -------------------------------------------------------------------
@dataclass(frozen=True)
class Destination:
    endpoint: str  # ends with "/"; statements are POSTed to <endpoint>statements
    auth: tuple[str, str] | None
    homepage: str  # the organisation's namespace for learner accounts


def base_iri(settings) -> str:
    return (settings.xapi_base or settings.app_url or DEFAULT_BASE).rstrip("/")


def _split_auth(auth: str) -> tuple[str, str] | None:
    if not auth:
        return None
    user, sep, password = auth.partition(":")
    if not sep:
        raise ValueError("LRS auth must be user:password")
    return user, password


def default_homepage(settings, org_name: str) -> str:
    return f"{base_iri(settings)}/orgs/{quote(org_name, safe='')}"


def destination(session, org: Organisation, settings) -> Destination | None:
    """The organisation's LRS, else the server-wide one, else None (nothing to send to)."""
    own = session.get(OrgLrs, org.id)
    homepage = (own.homepage if own is not None else "") or default_homepage(settings, org.name)
    if own is not None and not own.enabled:
        return None
    if own is not None and own.endpoint:
        endpoint, auth = own.endpoint, own.auth
    elif settings.xapi_url:
        endpoint, auth = settings.xapi_url, settings.xapi_auth
    else:
        return None
    return Destination(endpoint.rstrip("/") + "/", _split_auth(auth), homepage)


def configured(store, settings) -> bool:
    """Is any LRS configured (server-wide or for some organisation)?"""
    if settings.xapi_url:
        return True
    with store._session() as s:
        return bool(s.scalar(select(func.count()).select_from(OrgLrs).where(OrgLrs.enabled, OrgLrs.endpoint != "")))


def compose(row: XapiOutbox, org_name: str, dest: Destination, settings) -> dict:
    """The xAPI 1.0.3 statement for an outbox row. The learner is an account in the
    organisation's home page namespace; the organisation is in the context; the answer
    text is never sent."""
    facts = row.facts
    base = base_iri(settings)
    lang = str(facts.get("language") or "en")
    score = max(0, min(100, int(facts.get("score", 0))))
    if row.kind == "call":
        verb, kind, ident = "completed", "scenario", str(facts.get("scenario") or "")
        title = str(facts.get("scenario_title") or ident)
        success = bool(facts["success"]) if "success" in facts else score >= settings.mastery_score
    else:
        verb, kind, ident = "scored", "question", str(facts.get("question") or "")
        title = str(facts.get("question_text") or ident)
        success = score >= settings.mastery_score
    org_iri = default_homepage(settings, org_name)
    result: dict = {
        "score": {"scaled": round(score / 100, 4), "raw": score, "min": 0, "max": 100},
        "success": success,
        "completion": True,
    }
    if facts.get("outcome"):
        result["extensions"] = {f"{base}/xapi/extensions/outcome": str(facts["outcome"])}
    return {
        "id": row.statement_id,
        "actor": {"objectType": "Agent", "account": {"homePage": dest.homepage, "name": str(facts["learner"])}},
        "verb": VERBS[verb],
        "object": {
            "objectType": "Activity",
            "id": f"{base}/xapi/activities/{kind}s/{quote(ident, safe='')}",
            "definition": {"type": ACTIVITY_TYPES[kind], "name": {lang: title or ident}},
        },
        "result": result,
        "context": {
            "platform": "CalmCall Coach",
            "language": lang,
            "contextActivities": {
                "grouping": [{"objectType": "Activity", "id": org_iri, "definition": {"name": {"en-US": org_name}}}]
            },
            "extensions": {
                f"{base}/xapi/extensions/organisation": org_name,
                f"{base}/xapi/extensions/{row.kind}-id": str(row.ref),
            },
        },
        "timestamp": facts["timestamp"],
    }


# -- delivery ------------------------------------------------------------------------------
@dataclass
class FlushReport:
    sent: int = 0
    retrying: int = 0
    rejected: int = 0
    skipped: int = 0
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"sent": self.sent, "retrying": self.retrying, "rejected": self.rejected, "skipped": self.skipped,
                "errors": self.errors[:20]}


def backoff_s(tries: int, settings) -> float:
    """Exponential from xapi_retry_s, capped at xapi_max_backoff_s, with ±20 % jitter so
    workers that failed together do not retry together."""
    delay = min(settings.xapi_max_backoff_s, settings.xapi_retry_s * 2 ** max(0, tries - 1))
    return delay * random.uniform(0.8, 1.2)


def _claim(store, settings, cursor: int, ignore_backoff: bool, now: datetime) -> list[int]:
    lease = now + timedelta(seconds=settings.xapi_timeout_s * 3 + 30)
    free = or_(XapiOutbox.lease_until.is_(None), XapiOutbox.lease_until < now)
    with store._session() as s:
        query = select(XapiOutbox.id).where(XapiOutbox.status == "pending", XapiOutbox.id > cursor, free)
        if not ignore_backoff:
            query = query.where(XapiOutbox.next_at <= now)
        ids = list(s.scalars(query.order_by(XapiOutbox.id).limit(settings.xapi_batch)))
        claimed = []
        for row_id in ids:  # one row at a time: another worker may be claiming the same rows
            done = s.execute(
                update(XapiOutbox).where(XapiOutbox.id == row_id, XapiOutbox.status == "pending", free)
                .values(lease_until=lease)
            )
            if done.rowcount == 1:
                claimed.append(row_id)
        s.commit()
    return claimed


def _post(client, dest: Destination, statements: list[dict]):
    return client.post(
        dest.endpoint + "statements",
        json=statements if len(statements) > 1 else statements[0],
        auth=dest.auth,
        headers={"X-Experience-API-Version": XAPI_VERSION},
    )


def _settle(row: XapiOutbox, outcome: str, settings, error: str = "") -> None:
    now = _now()
    row.lease_until = None
    if outcome == "sent":
        row.status, row.sent_at, row.last_error = "sent", now, ""
    elif outcome in ("rejected", "skipped"):
        row.status, row.last_error = outcome, error[:1000]
    else:
        row.tries += 1
        row.next_at = now + timedelta(seconds=backoff_s(row.tries, settings))
        row.last_error = error[:1000]


def _send(client, dest: Destination, batch: list[tuple[int, dict]], outcomes: dict[int, tuple[str, str]]) -> None:
    """POST a batch of (row id, statement); split a refused batch to find the statement at
    fault. Records (outcome, error) per row id; touches no database."""
    import httpx

    try:
        response = _post(client, dest, [statement for _, statement in batch])
    except httpx.HTTPError as exc:
        for row_id, _ in batch:
            outcomes[row_id] = ("retry", f"LRS not reachable: {type(exc).__name__}: {exc}")
        return
    code = response.status_code
    if code in (200, 204):
        for row_id, _ in batch:
            outcomes[row_id] = ("sent", "")
        return
    detail = f"LRS answered {code}: {response.text[:300]}"
    if code in (400, 409, 413, 422) and len(batch) > 1:
        for item in batch:
            _send(client, dest, [item], outcomes)
        return
    # 400/409/422: this statement will never be accepted as it is. 401/403 (credentials),
    # 404 (URL), 413, 429, 5xx: worth retrying later.
    outcome = "rejected" if code in (400, 409, 422) else "retry"
    for row_id, _ in batch:
        outcomes[row_id] = (outcome, detail)


def deliver(store, settings, *, ignore_backoff: bool = False, limit: int | None = None,
            client=None) -> FlushReport:
    """Send the due statements (all pending ones with ``ignore_backoff``), in id order,
    each row at most once per call. Safe to run in several processes at once (rows are
    leased), and no database transaction is open while the LRS is called, so a slow LRS
    holds up no writer."""
    import httpx

    report = FlushReport()
    own_client = client is None
    client = client or httpx.Client(timeout=settings.xapi_timeout_s)
    cursor, done = 0, 0
    try:
        while limit is None or done < limit:
            ids = _claim(store, settings, cursor, ignore_backoff, _now())
            if not ids:
                break
            cursor = max(ids)
            done += len(ids)
            groups: list[tuple[Destination, list[tuple[int, dict]]]] = []
            with store._session() as s:  # compose (frozen from now on) and route
                rows = list(s.scalars(select(XapiOutbox).where(XapiOutbox.id.in_(ids)).order_by(XapiOutbox.id)))
                by_org: dict[int, list[XapiOutbox]] = {}
                for row in rows:
                    by_org.setdefault(row.org_id, []).append(row)
                for org_id, group in by_org.items():
                    org = s.get(Organisation, org_id)
                    try:
                        dest = destination(s, org, settings)
                    except ValueError as exc:
                        for row in group:
                            _settle(row, "retry", settings, f"LRS settings: {exc}")
                        report.retrying += len(group)
                        continue
                    if dest is None:
                        for row in group:
                            _settle(row, "skipped", settings, "no LRS configured for this organisation")
                        report.skipped += len(group)
                        continue
                    for row in group:
                        if row.statement is None:
                            row.statement = compose(row, org.name, dest, settings)
                    groups.append((dest, [(row.id, row.statement) for row in group]))
                s.commit()
            outcomes: dict[int, tuple[str, str]] = {}
            for dest, batch in groups:
                _send(client, dest, batch, outcomes)
            if not outcomes:
                continue
            with store._session() as s:
                for row in s.scalars(select(XapiOutbox).where(XapiOutbox.id.in_(list(outcomes)))):
                    outcome, error = outcomes[row.id]
                    _settle(row, outcome, settings, error)
                    if outcome == "sent":
                        report.sent += 1
                    elif outcome == "rejected":
                        report.rejected += 1
                    else:
                        report.retrying += 1
                    if error and error not in report.errors:
                        report.errors.append(error)
                s.commit()
    finally:
        if own_client:
            client.close()
    return report


def requeue(store, statuses: tuple[str, ...] = ("skipped",)) -> int:
    """Put skipped (or rejected) statements back in the queue, due now."""
    with store._session() as s:
        done = s.execute(
            update(XapiOutbox).where(XapiOutbox.status.in_(statuses))
            .values(status="pending", next_at=_now(), lease_until=None, tries=0)
        )
        s.commit()
        return done.rowcount


def backlog(store, now: datetime | None = None) -> dict:
    """What /readyz and ``xapi status`` show: statements waiting, the oldest one's age,
    rejected and skipped counts, and the last delivery error."""
    now = now or _now()
    with store._session() as s:
        counts = dict(s.execute(select(XapiOutbox.status, func.count()).group_by(XapiOutbox.status)).all())
        oldest = s.scalar(select(func.min(XapiOutbox.created_at)).where(XapiOutbox.status == "pending"))
        last_error = s.scalar(
            select(XapiOutbox.last_error).where(XapiOutbox.status == "pending", XapiOutbox.last_error != "")
            .order_by(XapiOutbox.id.desc()).limit(1)
        )
    oldest = _aware(oldest)
    return {
        "pending": int(counts.get("pending", 0)),
        "oldest_pending_s": round((now - oldest).total_seconds(), 1) if oldest else 0.0,
        "sent": int(counts.get("sent", 0)),
        "rejected": int(counts.get("rejected", 0)),
        "skipped": int(counts.get("skipped", 0)),
        "last_error": last_error or "",
    }


# -- per-organisation LRS ------------------------------------------------------------------
def set_org_lrs(store, org_name: str, *, endpoint: str | None = None, auth: str | None = None,
                homepage: str | None = None, enabled: bool = True) -> dict:
    """Give an organisation its own LRS (or switch its statements off with enabled=False)."""
    if auth:
        _split_auth(auth)
    for value, what in ((endpoint, "endpoint"), (homepage, "homepage")):
        if value and not value.startswith(("http://", "https://")):
            raise ValueError(f"the LRS {what} must be an http(s) URL")
    org = store.organisation(org_name)
    with store._session() as s:
        row = s.get(OrgLrs, org.id) or OrgLrs(org_id=org.id, endpoint="", auth="", homepage="")
        if endpoint is not None:
            row.endpoint = endpoint
        if auth is not None:
            row.auth = auth
        if homepage is not None:
            row.homepage = homepage
        row.enabled, row.updated_at = enabled, _now()
        s.merge(row)
        s.commit()
    return org_lrs(store, org_name)


def clear_org_lrs(store, org_name: str) -> bool:
    org = store.organisation(org_name, create=False)
    if org is None:
        return False
    with store._session() as s:
        row = s.get(OrgLrs, org.id)
        if row is None:
            return False
        s.delete(row)
        s.commit()
        return True


def org_lrs(store, org_name: str) -> dict | None:
    """The organisation's LRS settings, the password masked."""
    org = store.organisation(org_name, create=False)
    if org is None:
        return None
    with store._session() as s:
        row = s.get(OrgLrs, org.id)
        if row is None:
            return None
        user = row.auth.partition(":")[0]
        return {"organisation": org.name, "enabled": row.enabled, "endpoint": row.endpoint,
                "auth": f"{user}:***" if row.auth else "", "homepage": row.homepage}


# -- the sender thread ---------------------------------------------------------------------
class Sender:
    """Delivers due statements every ``xapi_poll_s`` seconds (sooner when something is
    queued in this process). A failure is logged and retried; it never stops the thread.

    A process with no LRS configured at all (no ``CALMCALL_XAPI_URL``, no organisation LRS
    in the store) sends nothing and decides nothing: it leaves the queue to a process that
    has one. Otherwise a Streamlit app started without the API's LRS settings marked every
    attempt made in it ``skipped`` for good as soon as it was recorded (its sender is woken
    first), and nothing ever delivered it (the cause of the LMS browser test's lost
    statement). ``xapi flush`` still marks such rows ``skipped`` when run on purpose."""

    def __init__(self, store_fn, settings):
        self.store_fn = store_fn
        self.settings = settings
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.users = 0
        self.last_report: FlushReport | None = None

    def start(self) -> Sender:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="calmcall-xapi-sender", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        _WAKE.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            _WAKE.clear()
            try:
                store = self.store_fn()
                if configured(store, self.settings):
                    self.last_report = deliver(store, self.settings)
                    if self.last_report.errors:
                        log.warning("xAPI delivery: %s", self.last_report.errors[-1])
            except Exception as exc:  # noqa: BLE001 - a database that went away, say; try again later
                log.warning("xAPI sender: %s: %s", type(exc).__name__, exc)
            _WAKE.wait(self.settings.xapi_poll_s)


_senders: dict[str, Sender] = {}
_senders_lock = threading.Lock()


def start_sender(store_fn, settings, key: str | None = None) -> Sender:
    """The process's sender for this database (one per database, shared by callers)."""
    key = key or settings.resolved_database_url
    with _senders_lock:
        sender = _senders.get(key)
        if sender is None:
            sender = _senders[key] = Sender(store_fn, settings).start()
        sender.users += 1
        return sender


def stop_sender(sender: Sender) -> None:
    with _senders_lock:
        sender.users -= 1
        if sender.users > 0:
            return
        for key, value in list(_senders.items()):
            if value is sender:
                del _senders[key]
    sender.stop()


# -- CLI: python -m calmcall xapi flush | status | lrs -----------------------------------------
def command(args) -> int:
    """``xapi flush`` sends every pending statement now (backoff ignored): exit 0 when none
    is left waiting, 1 when some still are (the LRS is down: they stay queued).
    ``xapi status`` shows the outbox; ``xapi lrs --org NAME …`` sets an organisation's LRS."""
    import json
    import sys

    from .api.keys import _org_name
    from .config import get_settings
    from .storage import AttemptStore, StoreUnavailable

    settings = get_settings()
    try:
        store = AttemptStore(settings.resolved_database_url)
        if args.xapi_command == "flush":
            requeued = requeue(store) if args.requeue_skipped else 0
            report = deliver(store, settings, ignore_backoff=True, limit=args.limit)
            left = backlog(store)
            if args.json:
                print(json.dumps({**report.as_dict(), "requeued": requeued, "backlog": left}, ensure_ascii=False))
            else:
                print(f"sent {report.sent}, retrying {report.retrying}, rejected {report.rejected}, "
                      f"skipped {report.skipped} (no LRS){f', requeued {requeued}' if requeued else ''}; "
                      f"{left['pending']} pending")
                for error in report.errors[:5]:
                    print(f"  {error}", file=sys.stderr)
            return 0 if left["pending"] == 0 else 1
        if args.xapi_command == "status":
            info = {**backlog(store), "server_lrs": settings.xapi_url or None}
            if args.json:
                print(json.dumps(info, ensure_ascii=False))
            else:
                for name, value in info.items():
                    print(f"{name:17} {value}")
            return 0
        if args.xapi_command == "lrs":
            org = _org_name(args.org)
            if args.clear:
                cleared = clear_org_lrs(store, org)
                print(f"{org!r} now uses the server-wide LRS" if cleared else f"{org!r} had no LRS of its own")
                return 0
            if args.url or args.auth or args.homepage or args.disable:
                try:
                    info = set_org_lrs(store, org, endpoint=args.url, auth=args.auth, homepage=args.homepage,
                                       enabled=not args.disable)
                except ValueError as exc:
                    print(f"error: {exc}", file=sys.stderr)
                    return 2
            else:
                info = org_lrs(store, org)
            print(json.dumps(info, ensure_ascii=False) if info else f"{org!r} uses the server-wide LRS "
                  f"({settings.xapi_url or 'none configured'})")
            return 0
    except StoreUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"error: unknown xapi command {args.xapi_command!r}", file=sys.stderr)
    return 2


def start_app_sender(settings=None) -> Sender:
    """The sender of a process that has no Coach at hand (the Streamlit server): its own
    store on the configured database, opened on first use, never migrating (the app does)."""
    from .config import get_settings
    from .storage import AttemptStore

    settings = settings or get_settings()
    holder: list = []

    def store():
        if not holder:
            holder.append(AttemptStore(settings.resolved_database_url, migrate=False))
        return holder[0]

    return start_sender(store, settings)

"""Writing the event log: the pending row (the durability point, step 4) and rejected requests.

The pending row is written by a precompiled INSERT in autocommit: a 2xx is
sent only after it returns. The request threads of a process share those
INSERTs (``group_commit``): one statement commits the rows of every request
that arrived while the last one was in flight. A batch (a CDP array, a
tracking API call) is written in one transaction, so that its events are
all committed or none are. A rejected request gets a row too, with its
reason and the first 4 KiB of its body, so that a misconfigured sender can
be debugged; losing that row is logged, never turned into a 5xx.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from peewee import IntegrityError, InterfaceError, OperationalError, PeeweeException

from knock_sources.errors import LogUnavailable, NotFound, PayloadError, SignatureError, SourcesError
from knock_sources.ingest.cache import ReceivingEnvironment
from knock_sources.ingest.group_commit import GroupCommit
from knock_sources.ingest.verification import Verdict, VerificationStatus
from knock_sources.providers import Envelope
from knock_sources.store import IDEMPOTENT, PENDING, REJECTED, db
from knock_sources.store.control import EventLog, SourceEnvironment
from knock_sources.worker import idempotency

log = logging.getLogger(__name__)

REJECTED_EXCERPT_BYTES = 4096

_PERSISTED_COLUMNS = (
    "source_environment",
    "status",
    "headers",
    "body",
    "remote_ip",
    "verification_status",
    "received_at",
    "preprocess_output",
    "normalized",
    "error",
    "replay_of",
)


@lru_cache(maxsize=64)
def _insert_sql(param: str, rows: int = 1) -> str:
    """The hot path's INSERT of ``rows`` rows, built once: the ORM's query builder costs more than the write."""
    fields = [EventLog._meta.fields[name] for name in _PERSISTED_COLUMNS]
    columns = ", ".join(f'"{field.column_name}"' for field in fields)
    values = ", ".join(["(" + ", ".join([param] * len(fields)) + ")"] * rows)
    return f'INSERT INTO "{EventLog._meta.table_name}" ({columns}) VALUES {values} RETURNING "id"'


def _reconnecting(write, *args):
    """Return ``write(*args)``; on a connection the server dropped, reconnect once and run it again.

    Pooled connections are not pinged when checked out, so one the server
    dropped is only found when it is used.
    """
    for attempt in (1, 2):
        try:
            return write(*args)
        except (InterfaceError, OperationalError):
            if attempt == 2:
                raise
            db.close()
            db.connect()
    raise AssertionError("unreachable")


def _insert(params: list) -> int:
    """Insert one event row on this thread's connection, in its transaction if it has one; return its id."""
    return db.execute_sql(_insert_sql(db.param), params).fetchone()[0]


def write_rows(rows: list[list]) -> list:
    """Commit the event rows ``rows`` (``_params`` lists) in one statement; return their ids, in order.

    If the statement fails, each row is written on its own, so that one
    row's fault (its source environment deleted meanwhile) is only that
    row's: its place in the result holds the exception.
    """
    if len(rows) > 1:
        try:
            values = [value for row in rows for value in row]
            cursor = _reconnecting(db.execute_sql, _insert_sql(db.param, len(rows)), values)
            # The ids come from the sequence row by row, in VALUES order, so
            # sorted they are the rows' ids in order, whatever order RETURNING
            # lists them in (neither database promises one).
            return sorted(row[0] for row in cursor.fetchall())
        except PeeweeException:
            # Nothing of it was committed; below, the failing row fails alone.
            pass
    results: list = []
    for params in rows:
        try:
            results.append(_reconnecting(_insert, params))
        except PeeweeException as exc:
            results.append(exc)
    return results


_GROUP = GroupCommit(write_rows)


def insert_row(params: list) -> int:
    """Insert one event row, committed when it returns, and return its id.

    Outside a transaction the row goes through the process's group commit;
    inside one it must be written on the caller's connection, to be
    committed or rolled back with the rest.
    """
    if db.in_transaction():
        return _insert(params)
    return _GROUP.submit(params)


def _params(
    receiving,
    envelope: Envelope,
    headers: dict,
    verdict: Verdict,
    body,
    body_text,
    normalized,
    replay_of=None,
    note=None,
) -> list:
    values = (
        receiving.id,
        PENDING,
        headers,
        body,
        envelope.remote_ip,
        verdict.status,
        envelope.received_at,
        verdict.preprocess_output,
        normalized,
        "; ".join(text for text in (verdict.error, note) if text) or None,
        replay_of,
    )
    fields = EventLog._meta.fields
    try:
        return [
            body_text if name == "body" and body_text is not None else fields[name].db_value(value)
            for name, value in zip(_PERSISTED_COLUMNS, values, strict=True)
        ]
    except RecursionError:
        raise PayloadError("The JSON body is nested too deeply.", code="too_deep") from None


def persist(
    receiving: ReceivingEnvironment,
    envelope: Envelope,
    headers: dict,
    verdict: Verdict,
    *,
    body_text: str | None = None,
    normalized: dict | None = None,
    replay_of: int | None = None,
    note: str | None = None,
) -> int:
    """Commit the pending ``EventLog`` (the durability point) and return its id.

    ``body_text`` is the body's JSON text when it is already at hand;
    ``normalized`` the provider's normalized form of it; ``replay_of`` the
    id of the event a replay repeats; ``note`` is recorded with the event's
    error, for the sender to read. Raises ``LogUnavailable`` when the
    database cannot take it, so that the sender retries, and ``NotFound``
    when the source was deleted meanwhile.
    """
    params = _params(receiving, envelope, headers, verdict, envelope.body, body_text, normalized, replay_of, note)
    try:
        return insert_row(params)
    except PeeweeException as exc:
        _raise_unavailable(receiving, exc)


@dataclass(frozen=True)
class Entry:
    """One event of a batch: its body and normalized form, or the error that rejects it.

    ``message_key`` (tracking API only) is the key under which a repeat of
    the event is recognised as an SDK retry; ``event_type`` is recorded on
    such a duplicate, which never reaches the worker.
    """

    body: Any
    normalized: dict | None = None
    rejection: SourcesError | None = None
    message_key: str | None = None
    event_type: str | None = None


@dataclass(frozen=True)
class Stored:
    """What became of one ``Entry``: its event log id and status (pending, idempotent or rejected)."""

    id: int
    status: str


def persist_batch(
    receiving: ReceivingEnvironment,
    envelope: Envelope,
    headers: dict,
    verdict: Verdict,
    entries: list[Entry],
    *,
    window: timedelta | None = None,
) -> list[Stored]:
    """Commit one row per entry in one transaction (all or none) and return what became of each.

    Accepted entries become pending rows, rejected ones rejected rows. With
    ``window``, an entry whose ``message_key`` this source environment
    received within the window is logged as idempotent instead (the claim
    is atomic, see ``idempotency.claim_message``). Raises like ``persist``.
    """
    stored = []
    now = envelope.received_at
    try:
        with db.atomic():
            for entry in entries:
                if entry.rejection is not None:
                    excerpt = _excerpt(entry.body)
                    fields = rejection_fields(receiving, entry.rejection, headers, excerpt, replayable=False)
                    row = EventLog.create(**fields, remote_ip=envelope.remote_ip)
                    stored.append(Stored(row.id, REJECTED))
                    continue
                params = _params(receiving, envelope, headers, verdict, entry.body, None, entry.normalized)
                event_log_id = _insert(params)
                if window is None or entry.message_key is None:
                    stored.append(Stored(event_log_id, PENDING))
                elif idempotency.claim_message(receiving.id, entry.message_key, event_log_id, now=now, window=window):
                    stored.append(Stored(event_log_id, PENDING))
                else:
                    _mark_duplicate(event_log_id, entry, now)
                    stored.append(Stored(event_log_id, IDEMPOTENT))
    except PeeweeException as exc:
        _raise_unavailable(receiving, exc)
    return stored


def _mark_duplicate(event_log_id: int, entry: Entry, now: datetime) -> None:
    EventLog.update(
        status=IDEMPOTENT,
        event_type=entry.event_type,
        idempotency_key=entry.message_key,
        error="messageId already received: an SDK retry, not run again",
        processed_at=now,
    ).where(EventLog.id == event_log_id).execute()


def _raise_unavailable(receiving: ReceivingEnvironment, exc: PeeweeException):
    if isinstance(exc, IntegrityError) and not (
        SourceEnvironment.select().where(SourceEnvironment.id == receiving.id).exists()
    ):
        # Deleted since this process cached its token.
        raise NotFound("No source is configured for this URL.", code="source_missing") from None
    log.error("could not write the event log for source environment %s: %s", receiving.id, exc)
    raise LogUnavailable("The event could not be recorded; retry later.") from None


def _excerpt(body) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "replace")


def whole_text(raw: bytes | None) -> str | None:
    """Return ``raw`` as text when all of it can be kept (short, valid UTF-8, no NUL), else ``None``."""
    if raw is None or len(raw) > REJECTED_EXCERPT_BYTES or b"\x00" in raw:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def rejection_fields(
    receiving: ReceivingEnvironment, error: SourcesError, headers: dict, raw: bytes | None, *, replayable: bool = True
) -> dict:
    """Return the columns of a ``rejected`` event log: reason, error and the start of the body.

    ``raw`` is ``None`` when the body was not read (too large). A request to
    the ingest URL whose body is kept whole (``raw_complete``) can be replayed
    (``control.replay``), verified again; ``replayable`` is false for what is
    not such a request (a batch item, a tracking API call).
    """
    raw = raw or b""
    return {
        "raw_complete": replayable and whole_text(raw) is not None,
        "source_environment": receiving.id,
        "status": REJECTED,
        "reason": error.code,
        "error": error.detail or error.message,
        "headers": headers,
        # Stored with what PostgreSQL text cannot hold replaced (StorableTextField).
        "raw_excerpt": raw[:REJECTED_EXCERPT_BYTES].decode("utf-8", "replace"),
        "verification_status": VerificationStatus.ENFORCED_UNVERIFIED if isinstance(error, SignatureError) else None,
    }


def log_rejection(
    receiving: ReceivingEnvironment,
    error: SourcesError,
    headers: dict,
    raw: bytes | None,
    remote_ip,
    *,
    replay_of: int | None = None,
    replayable: bool = True,
) -> int | None:
    """Record a refused request as ``rejected``; return its id, ``None`` if it could not be written."""
    try:
        fields = rejection_fields(receiving, error, headers, raw, replayable=replayable)
        return EventLog.create(**fields, remote_ip=remote_ip, replay_of=replay_of).id
    except PeeweeException as exc:
        # The caller still gets its 4xx; losing the debug row is the lesser harm.
        log.error("could not log a rejected request for source environment %s: %s", receiving.id, exc)
        return None

"""Writing the event log: the pending row (the durability point, step 4) and rejected requests.

The pending row is written by one precompiled INSERT in autocommit: a 2xx is
sent only after it returns. A rejected request gets a row too, with its
reason and the first 4 KiB of its body, so that a misconfigured sender can
be debugged; losing that row is logged, never turned into a 5xx.
"""

from __future__ import annotations

import logging
from functools import lru_cache

from peewee import IntegrityError, InterfaceError, OperationalError, PeeweeException

from knock_sources.errors import LogUnavailable, NotFound, PayloadError, SignatureError, SourcesError
from knock_sources.ingest.cache import ReceivingEnvironment
from knock_sources.ingest.verification import Verdict, VerificationStatus
from knock_sources.providers import Envelope
from knock_sources.store import PENDING, REJECTED, db
from knock_sources.store.control import EventLog, SourceEnvironment

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
    "error",
    "replay_of",
)


@lru_cache(maxsize=4)
def _insert_sql(param: str) -> str:
    """The hot path's INSERT, built once: the ORM's query builder costs more than the write."""
    fields = [EventLog._meta.fields[name] for name in _PERSISTED_COLUMNS]
    columns = ", ".join(f'"{field.column_name}"' for field in fields)
    params = ", ".join([param] * len(fields))
    return f'INSERT INTO "{EventLog._meta.table_name}" ({columns}) VALUES ({params}) RETURNING "id"'


def insert_row(params: list) -> int:
    """Insert one event row, committed when it returns (autocommit), and return its id.

    Pooled connections are not pinged when checked out, so one the server
    dropped is only found here: reconnect once and retry.
    """
    for attempt in (1, 2):
        try:
            return db.execute_sql(_insert_sql(db.param), params).fetchone()[0]
        except (InterfaceError, OperationalError):
            if attempt == 2:
                raise
            db.close()
            db.connect()
    raise AssertionError("unreachable")


def persist(
    receiving: ReceivingEnvironment,
    envelope: Envelope,
    headers: dict,
    verdict: Verdict,
    *,
    body_text: str | None = None,
    replay_of: int | None = None,
) -> int:
    """Commit the pending ``EventLog`` (the durability point) and return its id.

    ``body_text`` is the body's JSON text when it is already at hand;
    ``replay_of`` the id of the event a replay repeats. Raises
    ``LogUnavailable`` when the database cannot take it, so that the sender
    retries, and ``NotFound`` when the source was deleted meanwhile.
    """
    values = (
        receiving.id,
        PENDING,
        headers,
        envelope.body,
        envelope.remote_ip,
        verdict.status,
        envelope.received_at,
        verdict.preprocess_output,
        verdict.error,
        replay_of,
    )
    fields = EventLog._meta.fields
    try:
        params = [
            body_text if name == "body" and body_text is not None else fields[name].db_value(value)
            for name, value in zip(_PERSISTED_COLUMNS, values, strict=True)
        ]
    except RecursionError:
        raise PayloadError("The JSON body is nested too deeply.", code="too_deep") from None
    try:
        return insert_row(params)
    except IntegrityError as exc:
        if not SourceEnvironment.select().where(SourceEnvironment.id == receiving.id).exists():
            # Deleted since this process cached its token.
            raise NotFound("No source is configured for this URL.", code="source_missing") from None
        log.error("could not write the event log for source environment %s: %s", receiving.id, exc)
    except PeeweeException as exc:
        log.error("could not write the event log for source environment %s: %s", receiving.id, exc)
    raise LogUnavailable("The event could not be recorded; retry later.")


def whole_text(raw: bytes | None) -> str | None:
    """Return ``raw`` as text when all of it is kept (short enough, valid UTF-8), else ``None``."""
    if raw is None or len(raw) > REJECTED_EXCERPT_BYTES:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def log_rejection(
    receiving: ReceivingEnvironment,
    error: SourcesError,
    headers: dict,
    raw: bytes | None,
    remote_ip,
    *,
    replay_of: int | None = None,
) -> int | None:
    """Record a refused request as ``rejected``, with its reason and the start of its body.

    ``raw`` is ``None`` when the body was not read (too large). A body kept
    whole can be replayed (``control.replay``), verified again. Returns the
    row's id, or ``None`` when it could not be written.
    """
    whole = whole_text(raw)
    try:
        return EventLog.create(
            source_environment=receiving.id,
            status=REJECTED,
            reason=error.code,
            error=error.detail or error.message,
            headers=headers,
            raw_excerpt=whole
            if whole is not None
            else (raw or b"")[:REJECTED_EXCERPT_BYTES].decode("utf-8", "replace"),
            raw_complete=whole is not None,
            remote_ip=remote_ip,
            replay_of=replay_of,
            verification_status=VerificationStatus.ENFORCED_UNVERIFIED if isinstance(error, SignatureError) else None,
        ).id
    except PeeweeException as exc:
        # The caller still gets its 4xx; losing the debug row is the lesser harm.
        log.error("could not log a rejected request for source environment %s: %s", receiving.id, exc)
        return None

"""Source event idempotency with Knock's semantics, race-free.

A key is a string of at most 255 characters found at the environment's
idempotency key path; anything else is dropped and the event runs normally.
The scope is key + event type + source environment (which implies the
environment). A claim is an INSERT into a uniquely indexed table, never a
check-then-insert (Convoy shipped that race): of concurrent duplicates
exactly one inserts. Only a fully successful execution is recorded; a failed
one deletes its claim so that a redelivery runs.

The tracking API adds a second, cheaper guard (``claim_message``): SDKs
resend a batch with the same messageIds, so a messageId received before by
a source environment is a retry, whatever its event type or the settings.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from peewee import IntegrityError, chunked

from knock_sources.paths import MISSING, resolve
from knock_sources.store import db, unstorable
from knock_sources.store.control import IdempotencyRecord, ReceivedMessage

MAX_KEY_LENGTH = 255
#: Rows per claiming INSERT: well under SQLite's and PostgreSQL's limits on bound parameters.
CLAIMS_PER_STATEMENT = 200


def key_problem(value) -> str | None:
    """Say why ``value`` is not a usable idempotency key, or ``None`` when it is one."""
    if not isinstance(value, str) or not value:
        return "it is not a non-empty string"
    if len(value) > MAX_KEY_LENGTH:
        return f"it is longer than {MAX_KEY_LENGTH} characters"
    problem = unstorable(value)
    return f"it holds {problem}, which cannot be stored" if problem else None


def key_for(settings: dict, scope: dict) -> tuple[str | None, str | None]:
    """Return ``(key, None)`` when the environment enforces idempotency and the event has a usable key.

    Otherwise ``(None, note)``: ``note`` says why a value found at the key
    path was dropped (the event runs normally), and is ``None`` when there
    was nothing to drop.
    """
    if not (settings.get("enforce_idempotency") and settings.get("idempotency_key_path")):
        return None, None
    value = resolve(settings["idempotency_key_path"], scope)
    if value is MISSING or value is None:
        return None, None
    problem = key_problem(value)
    if problem:
        return None, f"the idempotency key was dropped: {problem}"
    return value, None


def _scope(source_environment_id: int, event_type: str, key: str):
    """The rows a key's claim conflicts with: same key, event type and source environment."""
    return (
        (IdempotencyRecord.source_environment == source_environment_id)
        & (IdempotencyRecord.event_type == event_type)
        & (IdempotencyRecord.key == key)
    )


def is_claimed(source_environment_id: int, event_type: str, key: str, *, now: datetime) -> bool:
    """Return whether a claim of ``key`` now would find it taken (the dry run of ``claim``)."""
    unexpired = IdempotencyRecord.expires_at > now
    return IdempotencyRecord.select().where(_scope(source_environment_id, event_type, key) & unexpired).exists()


def claim(
    source_environment_id: int,
    event_type: str,
    key: str,
    event_log_id: int,
    *,
    now: datetime,
    window: timedelta,
) -> bool:
    """Claim ``key`` for ``event_log_id``; ``False`` means this event is a duplicate.

    Runs inside the event's transaction: a concurrent duplicate's insert
    waits on the unique index until that transaction ends. A record older
    than the window no longer blocks the key.
    """
    scope = _scope(source_environment_id, event_type, key)
    return _insert_unless_live(
        IdempotencyRecord,
        scope,
        now,
        source_environment=source_environment_id,
        event_type=event_type,
        key=key,
        event_log=event_log_id,
        claimed_at=now,
        expires_at=now + window,
    )


def claim_each(claims, *, now: datetime, window: timedelta) -> set[int]:
    """Claim several keys at once; return the ids of the events that got their claim.

    ``claims`` are ``(source environment id, event type, key, event log id)``
    tuples, one per key. They are inserted in key order, a few hundred per
    statement, so that two workers claiming overlapping keys take the unique
    index's locks in the same order and cannot deadlock on them; a key
    another transaction is claiming waits for it, as in ``claim``. A key
    that was taken is claimed again through ``claim``, which replaces an
    expired record.
    """
    ordered = sorted(claims)
    taken: set[int] = set()
    for chunk in chunked(ordered, CLAIMS_PER_STATEMENT):
        rows = [
            {
                "source_environment": source_environment_id,
                "event_type": event_type,
                "key": key,
                "event_log": event_log_id,
                "claimed_at": now,
                "expires_at": now + window,
            }
            for source_environment_id, event_type, key, event_log_id in chunk
        ]
        inserted = IdempotencyRecord.insert_many(rows).on_conflict_ignore().returning(IdempotencyRecord.event_log)
        taken.update(event_log_id for (event_log_id,) in inserted.tuples().execute())
    for source_environment_id, event_type, key, event_log_id in ordered:
        if event_log_id not in taken and claim(
            source_environment_id, event_type, key, event_log_id, now=now, window=window
        ):
            taken.add(event_log_id)
    return taken


def message_key(message_id) -> str | None:
    """Return the key a tracking API ``messageId`` is remembered by, or ``None`` when it has none.

    Ids too long for the column are replaced by their SHA-256 digest, which
    is as stable across SDK retries as the id itself.
    """
    if isinstance(message_id, (int, float)) and not isinstance(message_id, bool):
        message_id = str(message_id)
    if not isinstance(message_id, str) or not message_id:
        return None
    if len(message_id) > MAX_KEY_LENGTH:
        return "sha256:" + hashlib.sha256(message_id.encode("utf-8", "surrogatepass")).hexdigest()
    return message_id


def claim_message(source_environment_id: int, key: str, event_log_id: int, *, now: datetime, window: timedelta) -> bool:
    """Remember a tracking API message; ``False`` means it was received before (an SDK retry).

    Unlike Knock's idempotency this records receipt, not success: a message
    that was received is logged and will be processed, so a resend of it is
    always a duplicate. Runs inside the batch's transaction, like ``claim``.
    """
    scope = (ReceivedMessage.source_environment == source_environment_id) & (ReceivedMessage.message_id == key)
    return _insert_unless_live(
        ReceivedMessage,
        scope,
        now,
        source_environment=source_environment_id,
        message_id=key,
        event_log=event_log_id,
        received_at=now,
        expires_at=now + window,
    )


def _insert_unless_live(model, scope, now: datetime, **fields) -> bool:
    """Insert a uniquely indexed row; ``False`` if an unexpired one holds its key (an expired one is replaced)."""
    for _ in range(2):
        try:
            with db.atomic():
                model.create(**fields)
            return True
        except IntegrityError:
            if not model.delete().where(scope & (model.expires_at <= now)).execute():
                return False
    return False


def record_success(event_log_ids, *, now: datetime, window: timedelta) -> None:
    """Record the claims held by ``event_log_ids`` as successful executions (one statement)."""
    if not event_log_ids:
        return
    IdempotencyRecord.update(succeeded=True, expires_at=now + window).where(
        IdempotencyRecord.event_log.in_(sorted(event_log_ids))
    ).execute()


def release(event_log_id: int) -> None:
    """Drop the unsucceeded claim held by ``event_log_id`` so that a redelivery runs."""
    IdempotencyRecord.delete().where(
        (IdempotencyRecord.event_log == event_log_id) & (IdempotencyRecord.succeeded == False)  # noqa: E712
    ).execute()


def purge(now: datetime) -> int:
    """Delete expired idempotency records and received messages; return how many."""
    records = IdempotencyRecord.delete().where(IdempotencyRecord.expires_at <= now).execute()
    return records + ReceivedMessage.delete().where(ReceivedMessage.expires_at <= now).execute()

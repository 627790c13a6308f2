"""Source event idempotency with Knock's semantics, race-free.

A key is a string of at most 255 characters found at the environment's
idempotency key path; anything else is dropped and the event runs normally.
The scope is key + event type + source environment (which implies the
environment). A claim is an INSERT into a uniquely indexed table, never a
check-then-insert (Convoy shipped that race): of concurrent duplicates
exactly one inserts. Only a fully successful execution is recorded; a failed
one deletes its claim so that a redelivery runs.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from peewee import IntegrityError

from knock_sources.paths import resolve
from knock_sources.store import db
from knock_sources.store.control import IdempotencyRecord

MAX_KEY_LENGTH = 255


def valid_key(value) -> str | None:
    """Return ``value`` if it is a usable idempotency key, else ``None``."""
    if isinstance(value, str) and 0 < len(value) <= MAX_KEY_LENGTH:
        return value
    return None


def key_for(settings: dict, scope: dict) -> str | None:
    """Return the event's idempotency key when the environment enforces idempotency, else ``None``."""
    if settings.get("enforce_idempotency") and settings.get("idempotency_key_path"):
        return valid_key(resolve(settings["idempotency_key_path"], scope))
    return None


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
    for _ in range(2):
        try:
            with db.atomic():
                IdempotencyRecord.create(
                    source_environment=source_environment_id,
                    event_type=event_type,
                    key=key,
                    event_log=event_log_id,
                    claimed_at=now,
                    expires_at=now + window,
                )
            return True
        except IntegrityError:
            expired = IdempotencyRecord.expires_at <= now
            if not IdempotencyRecord.delete().where(scope & expired).execute():
                return False
    return False


def record_success(event_log_id: int, *, now: datetime, window: timedelta) -> None:
    """Record the claim held by ``event_log_id`` as a successful execution."""
    IdempotencyRecord.update(succeeded=True, expires_at=now + window).where(
        IdempotencyRecord.event_log == event_log_id
    ).execute()


def release(event_log_id: int) -> None:
    """Drop the unsucceeded claim held by ``event_log_id`` so that a redelivery runs."""
    IdempotencyRecord.delete().where(
        (IdempotencyRecord.event_log == event_log_id) & (IdempotencyRecord.succeeded == False)  # noqa: E712
    ).execute()


def purge(now: datetime) -> int:
    """Delete expired records; return how many."""
    return IdempotencyRecord.delete().where(IdempotencyRecord.expires_at <= now).execute()

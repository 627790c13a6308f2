"""Reading event logs: the filtered, newest-first query behind the logs API and the logs page.

Every filter narrows a walk of the ``(source_environment, id)`` index, so
the newest rows of a page are found without sorting the table (a date range
becomes an id range: ``activity.first_id_since``); pagination is by id
cursor, so new arrivals never shift the pages already seen.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from knock_sources.control import activity
from knock_sources.store import db, partitions, to_utc_naive
from knock_sources.store.control import ActionLog, EventLog

#: Event logs one statement of ``purge`` deletes: short transactions, no long lock.
PURGE_BATCH = 5000


def filtered(
    source_env,
    *,
    event: str | None = None,
    status: str | None = None,
    starting_at: datetime | None = None,
    ending_at: datetime | None = None,
):
    """Return the event logs of ``source_env`` matching the filters (unordered: paginate by id)."""
    query = EventLog.select().where(EventLog.source_environment == source_env)
    if event:
        query = query.where(EventLog.event_type == event)
    if status:
        query = query.where(EventLog.status == status)
    # Times become id bounds too, so that a date range is a range of the index.
    if starting_at is not None:
        starting_at = to_utc_naive(starting_at)
        since = activity.first_id_since(starting_at)
        if since is None:
            # Nothing has been received since then.
            return query.where(EventLog.id.is_null())
        query = query.where((EventLog.id >= since) & (EventLog.received_at >= starting_at))
    if ending_at is not None:
        ending_at = to_utc_naive(ending_at)
        after = activity.first_id_since(ending_at + timedelta(microseconds=1))
        if after is not None:
            query = query.where(EventLog.id < after)
        query = query.where(EventLog.received_at <= ending_at)
    return query


def get(source_env, log_id: int) -> EventLog | None:
    """Return one event log of ``source_env``, or ``None``."""
    return EventLog.get_or_none((EventLog.id == log_id) & (EventLog.source_environment == source_env))


def actions_of(event_log_ids: list[int]) -> dict[int, list[ActionLog]]:
    """Return the action logs of several event logs in one query, in the order they ran."""
    found: dict[int, list[ActionLog]] = {event_log_id: [] for event_log_id in event_log_ids}
    if event_log_ids:
        query = ActionLog.select().where(ActionLog.event_log.in_(event_log_ids)).order_by(ActionLog.id)
        for action_log in query:
            found[action_log.event_log_id].append(action_log)
    return found


def newer_than(query, newest_seen: int, limit: int = 100) -> list[EventLog]:
    """Return up to ``limit`` rows of ``query`` newer than ``newest_seen``, newest first (the live tail)."""
    rows = list(query.where(EventLog.id > newest_seen).order_by(EventLog.id.asc()).limit(limit))
    return list(reversed(rows))


@dataclass(frozen=True)
class Purged:
    """What ``purge`` removed: whole days dropped (PostgreSQL) and event logs deleted row by row."""

    deleted: int
    days: list[date] = field(default_factory=list)


def purge(cutoff: datetime) -> Purged:
    """Remove the event logs received before ``cutoff``, with their action logs.

    On PostgreSQL, each day that ended by ``cutoff`` is dropped whole (see
    ``store.partitions``), so retention keeps up to one day more than asked;
    rows before ``cutoff`` are deleted only from the DEFAULT partition, which
    holds the few whose day had no partition. On SQLite, rows are deleted.
    """
    if not partitions.is_postgres(db):
        return Purged(_delete_before(cutoff, EventLog._meta.table_name))
    dropped = partitions.drop_days_before(db, cutoff)
    deleted = _delete_before(cutoff, partitions.EVENT_LOGS.default)
    partitions.forget_dropped(db, dropped.last_id)
    return Purged(deleted, dropped.days)


def _delete_before(cutoff: datetime, table: str) -> int:
    """Delete the event logs of ``table`` received before ``cutoff``, oldest first, in batches; return how many.

    Walking the primary key finds old rows first (ids grow with time), so no
    index on ``received_at`` is needed; such an index would cost every
    insert. Rows are deleted through ``EventLog``, so that their action logs
    and the references to them go too (foreign keys on SQLite, the trigger of
    ``store.partitions`` on PostgreSQL).
    """
    received_at, column = EventLog.received_at, EventLog.received_at.column_name
    deleted = 0
    while True:
        batch = [
            row_id
            for (row_id,) in db.execute_sql(
                f'SELECT "id" FROM "{table}" WHERE "{column}" < {db.param} ORDER BY "id" LIMIT {PURGE_BATCH}',
                (cutoff,),
            )
        ]
        if not batch:
            return deleted
        deleted += EventLog.delete().where(EventLog.id.in_(batch) & (received_at < cutoff)).execute()

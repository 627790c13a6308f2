"""What the dashboard shows of recent traffic: last events, and events per hour over the last 24 hours.

Every query is index-backed and costs the same whatever the number of
sources on a page: one statement for all of them, never one per row. Event
logs have no index on ``received_at`` (each index costs every ingest
insert); ids grow with time instead, so a time is turned into an id bound
by a search over the primary key (``first_id_since``), and a window is an
id range of the ``(source_environment, id)`` index.

Counts per hour are in ``control.hour_counts``: hours that are over come
from its rollup table, so a page counts only the rows of the last hour or so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from peewee import fn

from knock_sources.store import FAILED, REJECTED, db
from knock_sources.store.control import EventLog

if TYPE_CHECKING:
    from knock_sources.control.hour_counts import HourlyCounts

#: How events are counted in charts: everything not rejected or failed was accepted.
BUCKETS = ("accepted", "rejected", "failed")


def bucket_of(status: str) -> str:
    """Return the chart bucket of an event status."""
    if status == REJECTED:
        return "rejected"
    if status == FAILED:
        return "failed"
    return "accepted"


def first_id_since(when: datetime, column=EventLog.received_at) -> int | None:
    """Return the smallest id of ``column``'s table whose ``column`` is at or after ``when`` (``None``: none is).

    ``column`` is the time a row was written: the event log's ``received_at``
    by default, or a workflow run's ``created_at`` (its purge). A search over
    the primary key: ids are assigned in the order rows are inserted, and
    rows are inserted as they are stamped. Steps alternate between
    interpolating (ids grow about linearly with time, so this lands close in
    a few probes) and halving (so that bursts cannot make it slow): a
    handful of index probes whatever the size of the table, and no index on
    ``column``, which would cost every insert.
    """
    model = column.model
    bounds = model.select(fn.MIN(model.id), fn.MAX(model.id)).tuples().first()
    low, high = bounds if bounds else (None, None)
    if high is None:
        return None
    low_at, high_at = _stamped_at_or_after(column, low)[1], _stamped_at_or_after(column, high)[1]
    if high_at < when:
        return None
    if low_at >= when:
        return low
    # The row at ``low`` was stamped before ``when``, the one at ``high`` at or after it,
    # and no row lies between ``bound`` and ``high``: the answer is ``high`` or below ``bound``.
    bound, interpolate = high, True
    while bound - low > 1:
        if interpolate and high_at > low_at:
            share = (when - low_at) / (high_at - low_at)
            middle = min(max(low + int((bound - low) * share), low + 1), bound - 1)
        else:
            middle = (low + bound) // 2
        interpolate = not interpolate
        row_id, row_at = _stamped_at_or_after(column, middle)
        if row_at >= when:
            high, high_at, bound = row_id, row_at, middle
        else:
            low, low_at = row_id, row_at
    return high


def _stamped_at_or_after(column, row_id: int) -> tuple[int, datetime]:
    """The id and ``column`` of the first row at or after ``row_id``."""
    model = column.model
    return model.select(model.id, column).where(model.id >= row_id).order_by(model.id).limit(1).tuples().first()


@dataclass(frozen=True)
class Hour:
    """One hour of a source environment's traffic."""

    start: datetime
    counts: dict

    @property
    def total(self) -> int:
        """Events received in this hour."""
        return sum(self.counts.values())


def hour_starts(now: datetime, hours: int = 24) -> list[datetime]:
    """The starts of the last ``hours`` hours, oldest first; the last one is the current, partial hour."""
    current = now.replace(minute=0, second=0, microsecond=0)
    return [current - timedelta(hours=offset) for offset in range(hours - 1, -1, -1)]


@dataclass
class Activity:
    """Recent traffic of one source environment: its newest event and its last 24 hours."""

    last_event: EventLog | None = None
    hours: list[Hour] = field(default_factory=list)

    @property
    def counts(self) -> dict:
        """Events of the last 24 hours by bucket."""
        return {bucket: sum(hour.counts[bucket] for hour in self.hours) for bucket in BUCKETS}

    @property
    def total(self) -> int:
        """Events of the last 24 hours, whatever became of them."""
        return sum(hour.total for hour in self.hours)


def activity_of(hourly: HourlyCounts, source_env_ids: list[int], now: datetime | None = None) -> dict[int, Activity]:
    """Return the newest event and the last 24 hours of each source environment: a few statements for all of them."""
    series = hourly.series(source_env_ids, now=now)
    activity = {source_env_id: Activity(hours=series[source_env_id]) for source_env_id in source_env_ids}
    if not source_env_ids:
        return activity
    event_ids = [event_id for (event_id,) in db.execute_sql(*_latest_ids_sql(source_env_ids)).fetchall()]
    if event_ids:
        for event in EventLog.select(
            EventLog.id, EventLog.source_environment, EventLog.event_type, EventLog.status, EventLog.received_at
        ).where(EventLog.id.in_(event_ids)):
            activity[event.source_environment_id].last_event = event
    return activity


def _latest_ids_sql(source_env_ids: list[int]) -> tuple[str, list[int]]:
    """One statement: the newest event id of each source environment, from the ``(source_environment, id)`` index.

    A branch per environment, so that the planner sees each value: a
    correlated ``MAX(id)`` is planned for any environment and PostgreSQL
    then walks the primary key backwards, through every row, for an
    environment that has none.
    """
    table = EventLog._meta.table_name
    column = EventLog.source_environment.column_name
    branch = (
        f'SELECT * FROM (SELECT "id" FROM "{table}" WHERE "{column}" = {db.param} '
        f'ORDER BY "id" DESC LIMIT 1) AS "latest_{{}}"'
    )
    return " UNION ALL ".join(branch.format(index) for index in range(len(source_env_ids))), list(source_env_ids)


def latest_event(source_env_id: int) -> EventLog | None:
    """Return the newest event log of a source environment, rejected ones included."""
    return (
        EventLog.select(EventLog.id, EventLog.event_type, EventLog.status, EventLog.received_at)
        .where(EventLog.source_environment == source_env_id)
        .order_by(EventLog.id.desc())
        .first()
    )

"""What the dashboard shows of recent traffic: last events, counts over 24 hours, events per hour.

Every query is index-backed and costs the same whatever the number of
sources on a page: one statement for all rows, never one per row. Event
logs have no index on ``received_at`` (each index costs every ingest
insert); ids grow with time instead, so a time is turned into an id bound
by a binary search over the primary key (``first_id_since``), and the
window is then an id range of the ``(source_environment, id)`` index.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from peewee import Case, fn

from knock_sources.store import FAILED, REJECTED, utcnow
from knock_sources.store.control import EventLog, SourceEnvironment

WINDOW = timedelta(hours=24)
#: How events are counted in charts: everything not rejected or failed was accepted.
BUCKETS = ("accepted", "rejected", "failed")


def bucket_of(status: str) -> str:
    """Return the chart bucket of an event status."""
    if status == REJECTED:
        return "rejected"
    if status == FAILED:
        return "failed"
    return "accepted"


def first_id_since(when: datetime) -> int | None:
    """Return the smallest event log id received at or after ``when`` (``None``: none was).

    A binary search over the primary key, about 2 log2(n) index probes:
    ids are assigned in the order rows are inserted, and rows are inserted
    as they are received.
    """
    bounds = EventLog.select(fn.MIN(EventLog.id), fn.MAX(EventLog.id)).tuples().first()
    low, high = bounds if bounds else (None, None)
    if high is None or _received_at_or_after(high) < when:
        return None
    while low < high:
        middle = (low + high) // 2
        probe = _received_at_or_after(middle)
        if probe is not None and probe >= when:
            high = middle
        else:
            low = middle + 1
    # ``low`` may fall in a gap of deleted rows: the next existing id.
    return EventLog.select(fn.MIN(EventLog.id)).where(EventLog.id >= low).scalar()


def _received_at_or_after(row_id: int) -> datetime | None:
    row = EventLog.select(EventLog.received_at).where(EventLog.id >= row_id).order_by(EventLog.id).limit(1).first()
    return row.received_at if row else None


@dataclass
class Activity:
    """Recent traffic of one source environment."""

    last_event: EventLog | None = None
    counts: dict = field(default_factory=lambda: dict.fromkeys(BUCKETS, 0))

    @property
    def total(self) -> int:
        """Events received in the window, whatever became of them."""
        return sum(self.counts.values())


def activity_of(source_env_ids: list[int], now: datetime | None = None) -> dict[int, Activity]:
    """Return the last event and the 24-hour counts of each source environment: three statements in all."""
    activity = {source_env_id: Activity() for source_env_id in source_env_ids}
    if not source_env_ids:
        return activity
    # One correlated MAX per row, each answered from the (source_environment, id) index.
    newest = EventLog.alias()
    last_id = newest.select(fn.MAX(newest.id)).where(newest.source_environment == SourceEnvironment.id)
    latest = SourceEnvironment.select(last_id.alias("event_id")).where(SourceEnvironment.id.in_(source_env_ids))
    event_ids = [event_id for (event_id,) in latest.tuples() if event_id is not None]
    if event_ids:
        for event in EventLog.select(
            EventLog.id, EventLog.source_environment, EventLog.event_type, EventLog.status, EventLog.received_at
        ).where(EventLog.id.in_(event_ids)):
            activity[event.source_environment_id].last_event = event
    since = first_id_since((now or utcnow()) - WINDOW)
    if since is not None:
        counted = (
            EventLog.select(EventLog.source_environment, EventLog.status, fn.COUNT(EventLog.id).alias("n"))
            .where(EventLog.source_environment.in_(source_env_ids) & (EventLog.id >= since))
            .group_by(EventLog.source_environment, EventLog.status)
            .tuples()
        )
        for source_env_id, status, count in counted:
            activity[source_env_id].counts[bucket_of(status)] += count
    return activity


@dataclass(frozen=True)
class Hour:
    """One hour of a source environment's traffic."""

    start: datetime
    counts: dict

    @property
    def total(self) -> int:
        """Events received in this hour."""
        return sum(self.counts.values())


def per_hour(source_env_id: int, hours: int = 24, now: datetime | None = None) -> list[Hour]:
    """Return the events of the last ``hours`` hours, oldest hour first, counted by bucket.

    The current (partial) hour is the last one. One statement: the rows are
    bucketed by comparisons with the hour boundaries, which every backend
    evaluates the same way.
    """
    now = now or utcnow()
    current = now.replace(minute=0, second=0, microsecond=0)
    starts = [current - timedelta(hours=offset) for offset in range(hours - 1, -1, -1)]
    series = [Hour(start, dict.fromkeys(BUCKETS, 0)) for start in starts]
    since = first_id_since(starts[0])
    if since is None:
        return series
    # Newest boundary first: the first that the row is not before is its hour.
    hour = Case(None, [(EventLog.received_at >= start, index) for index, start in reversed(list(enumerate(starts)))])
    rows = (
        EventLog.select(hour.alias("hour"), EventLog.status, fn.COUNT(EventLog.id))
        .where((EventLog.source_environment == source_env_id) & (EventLog.id >= since))
        .group_by(hour, EventLog.status)
        .tuples()
    )
    for index, status, count in rows:
        if index is not None:
            series[index].counts[bucket_of(status)] += count
    return series


def latest_event(source_env_id: int) -> EventLog | None:
    """Return the newest event log of a source environment, rejected ones included."""
    return (
        EventLog.select(EventLog.id, EventLog.event_type, EventLog.status, EventLog.received_at)
        .where(EventLog.source_environment == source_env_id)
        .order_by(EventLog.id.desc())
        .first()
    )

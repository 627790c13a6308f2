"""Events per hour of each source environment, rolled up once an hour is over (``ks_event_hour_count``).

At 1,000 events/s a source's last 30 days are 2.6 billion event logs:
counting them on every ``GET /v1/sources/{key}/status`` took minutes, and
the dashboard's last 24 hours a cold process recounted. An hour is counted
once, after it is over, and stored (``EventHourCount``); a reader adds the
stored hours to a live count of the hours not settled yet, so that it reads
one row per past hour and only the event logs of the last hour or so.

What the rollup promises:

- An hour is settled ``SETTLING`` after it ends, not at once: an event's
  ``received_at`` is taken when its request arrives and its id when its row
  is written, after verification (and a script) ran, so the last rows of an
  hour may get ids after the first rows of the next. Counts scan
  ``SETTLING`` past both ends of their id range and take rows by
  ``received_at``, so that each row falls in exactly one hour, stored or
  live, as long as no request takes longer than ``SETTLING``.
- ``rejected`` and the rest (``accepted`` + ``failed``) are final: an event
  is logged as rejected or not when its row is written. ``failed`` is what
  had failed when the hour was rolled up: an event still pending then (a
  backlog) that fails later stays ``accepted`` there. The status endpoint
  reads only the final split; the dashboard shows ``failed`` as rolled up.
- An hour is stored once: the first writer's counts stay (an insert that
  does nothing on conflict), so two processes rolling up the same hour at
  once store it once, never the sum. Rows written into a stored hour later
  are not counted; the service only writes rows at the current time.
- The sweep rolls up the settled hours of the last ``SWEPT_HOURS`` for every
  source environment (``roll_up``); a reader that finds an hour missing (a
  source environment created since, a store just upgraded, workers
  stopped) counts and stores it itself. Hours without events are stored
  too, as zeros, so that a missing row always means "not rolled up yet".
- The status window is whole hours (``STATUS_HOURS``): the hour that holds
  the moment 30 days ago, every hour since, and the current one so far, so
  it may count up to an hour more than exactly 30 days.
- ``flask purge`` deletes the hours that ended before the log retention
  (``purge``). With a retention shorter than the status window, a reader
  stores the purged hours again, as zeros (their id range is empty).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from peewee import IntegrityError, OperationalError, chunked, fn

from knock_sources.control.activity import BUCKETS, Hour, bucket_of, first_id_since, hour_starts
from knock_sources.store import db, partitions, utcnow
from knock_sources.store.control import EventHourCount, EventLog, SourceEnvironment

log = logging.getLogger(__name__)

HOUR = timedelta(hours=1)
#: How long after its end an hour is rolled up: longer than any request takes from arrival to its row's insert.
SETTLING = timedelta(minutes=5)
#: The settled hours each sweep makes sure are rolled up, for every source environment.
SWEPT_HOURS = 24
#: What ``GET /v1/sources/{key}/status`` counts, in whole hours: the hour that holds
#: the moment 30 days ago, every hour since, and the current one so far.
STATUS_HOURS = 30 * 24 + 1
_STORE_CHUNK = 500


def settled_until(now: datetime) -> datetime:
    """The start of the oldest hour not settled at ``now``: earlier hours are rolled up, later ones counted live."""
    return (now - SETTLING).replace(minute=0, second=0, microsecond=0)


def hourly(source_env_ids: list[int], starts: list[datetime], now: datetime, first_id=first_id_since):
    """Each source environment's counts by bucket for each hour of ``starts`` (consecutive, oldest first).

    Returns ``{source environment id: [counts of each start]}``. Settled
    hours come from the rollup (those missing are counted and stored), the
    others from one live count. ``first_id`` turns a time into an id bound
    (``activity.first_id_since``, or a memory of it).
    """
    until = settled_until(now)
    settled = [start for start in starts if start < until]
    found = _rolled_up(source_env_ids, settled, first_id)
    if source_env_ids and starts and starts[-1] >= until:
        found.update(_count(source_env_ids, max(until, starts[0]), None, first_id))
    return {
        source_env_id: [found.get((source_env_id, start)) or dict.fromkeys(BUCKETS, 0) for start in starts]
        for source_env_id in source_env_ids
    }


def roll_up() -> None:
    """Make sure the settled hours of the last ``SWEPT_HOURS`` are rolled up for every source environment.

    The sweep's part: once the hours are stored this costs one indexed read
    of them; an hour that just settled is counted for all source
    environments in one statement over its id range.
    """
    until = settled_until(utcnow())
    source_env_ids = [source_env_id for (source_env_id,) in SourceEnvironment.select(SourceEnvironment.id).tuples()]
    _rolled_up(source_env_ids, [until - HOUR * offset for offset in range(SWEPT_HOURS, 0, -1)], first_id_since)


def roll_up_quietly() -> None:
    """``roll_up``, logging rather than raising a database that is busy now (the next sweep tries again)."""
    try:
        roll_up()
    except OperationalError as exc:
        log.warning("hourly event counts could not be rolled up now: %s", exc)


def purge(cutoff: datetime) -> int:
    """Delete the rolled-up hours that ended by ``cutoff`` (``flask purge``); return how many rows went."""
    return EventHourCount.delete().where(EventHourCount.hour <= cutoff - HOUR).execute()


class HourlyCounts:
    """Events per hour for the dashboard and the status endpoint, over the rollup; one per app (``state``).

    Remembers, per process, the first ids of the times it turned into id
    bounds, as finding one costs a dozen probes of every log partition: a
    time in the past keeps its first id (later rows get larger ids), and the
    live count's bound moves once an hour. Bounded: past ``max_entries`` it
    starts again from empty.
    """

    def __init__(self, max_entries: int = 10_000):
        self.max_entries = max_entries
        self._first_ids: dict[datetime, int] = {}

    def first_id(self, start: datetime) -> int | None:
        """``first_id_since(start)``, remembered once found."""
        found = self._first_ids.get(start)
        if found is None:
            found = first_id_since(start)
            if found is not None:
                if len(self._first_ids) >= self.max_entries:
                    self._first_ids.clear()
                self._first_ids[start] = found
        return found

    def status_counts(self, source_env_id: int, now: datetime | None = None) -> tuple[int, int]:
        """Events of a source environment in the status window (``STATUS_HOURS``): ``(not rejected, rejected)``.

        The settled hours are summed by the database; only when some are
        missing from the rollup are they counted and stored first.
        """
        now = now or utcnow()
        starts, until = hour_starts(now, STATUS_HOURS), settled_until(now)
        settled = [start for start in starts if start < until]
        hours, accepted, rejected = _stored_totals(source_env_id, starts[0], until)
        if hours < len(settled):
            _rolled_up([source_env_id], settled, self.first_id)
            _, accepted, rejected = _stored_totals(source_env_id, starts[0], until)
        for counts in _count([source_env_id], until, None, self.first_id).values():
            accepted += counts["accepted"] + counts["failed"]
            rejected += counts["rejected"]
        return accepted, rejected

    def series(self, source_env_ids: list[int], hours: int = 24, now: datetime | None = None) -> dict[int, list[Hour]]:
        """Return each source environment's last ``hours`` hours, the last one partial, counted by bucket."""
        now = now or utcnow()
        starts = hour_starts(now, hours)
        counts = hourly(source_env_ids, starts, now, self.first_id)
        return {
            source_env_id: [Hour(start, hour) for start, hour in zip(starts, counts[source_env_id], strict=True)]
            for source_env_id in source_env_ids
        }


def _rolled_up(source_env_ids: list[int], settled: list[datetime], first_id) -> dict:
    """The stored counts of the ``settled`` hours (consecutive) of each source environment, storing those missing.

    Each run of consecutive missing hours is counted in one statement, for
    every source environment that misses the same run.
    """
    if not settled or not source_env_ids:
        return {}
    found = {
        (source_env_id, hour): dict(zip(BUCKETS, counts, strict=True))
        for source_env_id, hour, *counts in EventHourCount.select(
            EventHourCount.source_environment,
            EventHourCount.hour,
            *(getattr(EventHourCount, bucket) for bucket in BUCKETS),
        )
        .where(
            EventHourCount.source_environment.in_(source_env_ids) & EventHourCount.hour.between(settled[0], settled[-1])
        )
        .tuples()
    }
    runs: dict[tuple[datetime, datetime], list[int]] = {}
    for source_env_id in source_env_ids:
        for run in _missing_runs([start for start in settled if (source_env_id, start) not in found]):
            runs.setdefault(run, []).append(source_env_id)
    for (first, last), run_env_ids in runs.items():
        counted = _count(run_env_ids, first, last + HOUR, first_id)
        hours = [first + HOUR * offset for offset in range(int((last - first) / HOUR) + 1)]
        fresh = {
            (source_env_id, hour): counted.get((source_env_id, hour)) or dict.fromkeys(BUCKETS, 0)
            for source_env_id in run_env_ids
            for hour in hours
        }
        _store(fresh)
        found.update(fresh)
    return found


def _stored_totals(source_env_id: int, start: datetime, end: datetime) -> tuple[int, int, int]:
    """The stored hours of a source environment from ``start`` to ``end``: ``(how many, not rejected, rejected)``."""
    hours, accepted, rejected = (
        EventHourCount.select(
            fn.COUNT(EventHourCount.id),
            fn.SUM(EventHourCount.accepted + EventHourCount.failed),
            fn.SUM(EventHourCount.rejected),
        )
        .where(
            (EventHourCount.source_environment == source_env_id)
            & (EventHourCount.hour >= start)
            & (EventHourCount.hour < end)
        )
        .tuples()
        .first()
    )
    return hours, accepted or 0, rejected or 0


def _missing_runs(missing: list[datetime]) -> list[tuple[datetime, datetime]]:
    """``missing`` hour starts (ascending) as runs of consecutive hours: ``(first, last)`` each."""
    runs: list[tuple[datetime, datetime]] = []
    for start in missing:
        if runs and runs[-1][1] + HOUR == start:
            runs[-1] = (runs[-1][0], start)
        else:
            runs.append((start, start))
    return runs


def _count(source_env_ids: list[int], start: datetime, end: datetime | None, first_id) -> dict:
    """Count the event logs received from ``start`` to ``end`` (``None``: now), by source environment, hour, bucket.

    One statement over an id range of the ``(source_environment, id)``
    index, ``SETTLING`` wider than the times at both ends, rows taken by
    their ``received_at``. Returns ``{(source environment id, hour start): counts}``.
    """
    since = first_id(start - SETTLING)
    if since is None:
        return {}
    where = EventLog.source_environment.in_(source_env_ids) & (EventLog.id >= since) & (EventLog.received_at >= start)
    if end is not None:
        where &= EventLog.received_at < end
        after = first_id(end + SETTLING)
        if after is not None:
            where &= EventLog.id < after
    hour = _hour_of(EventLog.received_at)
    rows = (
        EventLog.select(EventLog.source_environment, hour, EventLog.status, fn.COUNT(EventLog.id))
        .where(where)
        .group_by(EventLog.source_environment, hour, EventLog.status)
        .tuples()
    )
    counted: dict = {}
    for source_env_id, at, status, count in rows:
        at = at if isinstance(at, datetime) else datetime.fromisoformat(at)
        counts = counted.setdefault((source_env_id, at), dict.fromkeys(BUCKETS, 0))
        counts[bucket_of(status)] += count
    return counted


def _hour_of(column):
    """SQL for the start of the hour of a timestamp column (SQLite stores timestamps as ISO text)."""
    if partitions.is_postgres(db):
        return fn.date_trunc("hour", column)
    return fn.strftime("%Y-%m-%d %H:00:00", column)


def _store(counted: dict) -> None:
    """Store rolled-up hours; an hour already stored keeps its row (the first writer's counts)."""
    rows = [
        {"source_environment": source_env_id, "hour": hour, **counts}
        for (source_env_id, hour), counts in counted.items()
    ]
    try:
        with db.atomic():
            for chunk in chunked(rows, _STORE_CHUNK):
                EventHourCount.insert_many(chunk).on_conflict_ignore().execute()
    except IntegrityError as exc:
        # A source environment deleted meanwhile (its foreign key): the next reader counts again.
        log.info("hourly event counts not stored: %s", exc)

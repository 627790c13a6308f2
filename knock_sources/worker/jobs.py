"""The queue, draining it, the sweeper, and what ``/healthz`` reads of them.

Jobs take IDs only (RQ's own advice); everything else is looked up in the
database. The RQ entry point itself is in ``tasks.py`` and the worker process
in ``service.py``. Without ``REDIS_URL`` there is no queue: jobs run
in-process right after the event is committed, through the same
``process_events`` function (a batch of one).

Event ids wait for a drain job in a Redis sorted set scored by id, not a
list: an id that is already waiting cannot be added twice, so the sweeper can
re-enqueue whatever it finds pending without flooding the queue with
duplicates under a backlog, and drains take the oldest events first.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING

import redis
from peewee import InterfaceError, OperationalError
from rq import Queue, Retry, worker_registration

from knock_sources import store
from knock_sources.control import hour_counts, replay
from knock_sources.store import PENDING, partitions, utcnow
from knock_sources.store.control import EventLog
from knock_sources.worker import processing

if TYPE_CHECKING:
    from knock_sources.state import KnockSources

log = logging.getLogger(__name__)

# The RQ job that drains the pending set, by dotted path: RQ imports it in the worker.
DRAIN_JOB = "knock_sources.worker.tasks.drain_pending"

# Retries cover infrastructure failures (database restarting); action
# failures are recorded on the event, not retried.
RETRY = Retry(max=3, interval=[5, 30, 120])
#: Events one worker's sweep looks at per pass, oldest first.
SWEEP_BATCH = 1000
#: Events the web process sweeps per pass in embedded mode, where it
#: processes them itself: one webhook request must not carry everyone's backlog.
EMBEDDED_SWEEP_BATCH = 10
DRAIN_BATCH = 100
DRAIN_MAX_SECONDS = 30
# Longer than a drain job normally waits in the queue; if it expires while
# the job still waits, the next event merely schedules a second drain.
DRAIN_FLAG_SECONDS = 60
#: ``/healthz`` counts pending events up to this many; beyond, it says "at least".
BACKLOG_COUNT_CAP = 10_000


def make_connection(config, retry: redis.retry.Retry | None = None) -> redis.Redis:
    """Return a Redis client for ``config``; errors surface fast unless ``retry`` says otherwise."""
    options = {"retry": retry} if retry is not None else {}
    return redis.Redis.from_url(
        config["REDIS_URL"], socket_connect_timeout=2, socket_timeout=5, health_check_interval=30, **options
    )


def make_queue(config, name: str | None = None, connection: redis.Redis | None = None) -> Queue:
    """Return the RQ queue ``name`` (default ``QUEUE_NAME``), by default on a connection that fails fast."""
    if connection is None:
        connection = make_connection(config)
    return Queue(name or config["QUEUE_NAME"], connection=connection, default_timeout=config["JOB_TIMEOUT_SECONDS"])


def pending_key(queue: Queue) -> str:
    """The Redis sorted set of event ids waiting for a drain job (member and score: the id)."""
    return f"knock_sources:{queue.name}:pending-ids"


def drain_flag_key(queue: Queue) -> str:
    """Set while a drain job is scheduled and has not started yet."""
    return f"knock_sources:{queue.name}:drain-scheduled"


def sweep_cursor_key(queue: Queue) -> str:
    """The id after which the next bounded sweep pass starts."""
    return f"knock_sources:{queue.name}:sweep-cursor"


def submit_event(state: KnockSources, event_log_id: int) -> None:
    """Get a committed event processed.

    In embedded mode it is processed right here. Otherwise the id goes to
    this process's dispatcher, which pushes ids to Redis in batches;
    ``drain_pending`` jobs process them, so RQ's job bookkeeping is paid per
    batch, not per event. The event is committed as ``pending``, so nothing
    is lost if Redis is down: the sweeper picks it up.
    """
    if state.dispatcher is not None:
        state.dispatcher.submit(event_log_id)
        return
    try:
        process_events(state, [event_log_id])
    except (OperationalError, InterfaceError) as exc:
        # Committed and still pending: the sender gets its 2xx all the same.
        log.warning("event %s stays pending: %s", event_log_id, exc)
    _sweep_if_due(state)


def _sweep_if_due(state: KnockSources) -> None:
    """Embedded mode has no worker, so the web process sweeps, once per interval."""
    now = time.monotonic()
    with state.sweep.lock:
        if now - state.sweep.last < state.config["SWEEP_INTERVAL_SECONDS"]:
            return
        state.sweep.last = now
    try:
        sweep(state, None, EMBEDDED_SWEEP_BATCH)
    except (OperationalError, InterfaceError) as exc:
        log.warning("the sweeper could not run: %s", exc)


def push_pending(queue: Queue, ids: list) -> int:
    """Add the ``ids`` not already waiting and schedule a drain if none is; one round trip.

    Returns how many were not waiting yet.
    """
    pipe = queue.connection.pipeline(transaction=False)
    pipe.zadd(pending_key(queue), {str(event_log_id): event_log_id for event_log_id in ids}, nx=True)
    pipe.set(drain_flag_key(queue), 1, nx=True, ex=DRAIN_FLAG_SECONDS)
    added, drain_needed = pipe.execute()
    if drain_needed:
        schedule_drain(queue)
    return added


def schedule_drain(queue: Queue) -> None:
    """Enqueue a ``drain_pending`` job."""
    queue.enqueue_call(DRAIN_JOB, result_ttl=0, failure_ttl=7 * 86400, retry=RETRY)


def drain(state: KnockSources, queue: Queue) -> int:
    """Process the event ids waiting in ``queue``'s pending set, oldest first, in batches; return how many.

    Each batch of up to ``DRAIN_BATCH`` ids is one transaction
    (``processing.process_batch``). Clears the drain flag first, so that an
    id pushed while this job runs schedules another drain (which another
    worker can take). Stops after ``DRAIN_MAX_SECONDS`` and hands the rest
    to a fresh job, so that a busy queue never runs one job into its timeout.
    """
    connection = queue.connection
    connection.delete(drain_flag_key(queue))
    deadline = time.monotonic() + DRAIN_MAX_SECONDS
    drained = 0
    while True:
        popped = connection.zpopmin(pending_key(queue), DRAIN_BATCH)
        if not popped:
            return drained
        ids = [int(member) for member, _ in popped]
        try:
            process_events(state, ids)
        except (OperationalError, InterfaceError) as exc:
            # Rolled back and still pending: the sweeper retries them.
            log.warning("%s events stay pending: %s", len(ids), exc)
        drained += len(popped)
        if time.monotonic() > deadline:
            schedule_drain(queue)
            return drained


def process_events(state: KnockSources, event_log_ids: list[int]) -> dict[int, str]:
    """Process logged events as one batch: resolve, deduplicate, run their actions; return their final statuses."""
    run = partial(processing.process_batch, event_log_ids, state.registry, state.config, state.metrics)
    if store.db.is_closed():
        with store.db.connection_context():
            return run()
    return run()


def sweep(state: KnockSources, queue: Queue | None, limit: int | None) -> int:
    """Resume stalled replays; hand over events still pending after the grace period, return how many.

    (A worker that dies mid-event leaves it ``pending``: each event is
    processed in one transaction; an id Redis lost leaves it pending too.)
    With a queue, the ids not already waiting are added to it; without one
    (embedded mode) the events are processed here, oldest first.

    ``limit`` bounds the events one pass looks at (``None``: all of them, for
    ``flask sweep``). A bounded pass on a queue starts where the previous one
    stopped (the cursor is kept in Redis, so it resets when Redis loses its
    data) and wraps around at the end, so a backlog whose oldest events are
    all queued does not hide the newer ones Redis lost. Stops at the first
    Redis failure; the next pass carries on.
    """
    # The sweep is every deployment's periodic task: the log partitions of the days ahead are made here,
    # and the hours that are over are rolled up.
    partitions.maintain_quietly(store.db)
    hour_counts.roll_up_quietly()
    resumed = replay.resume_stale(state)
    if resumed:
        log.info("resumed %s stalled replays", resumed)
    grace_expired = utcnow() - timedelta(seconds=state.config["SWEEP_GRACE_SECONDS"])
    # RQ queues have a length, so "is not None", never truthiness.
    resumes = queue is not None and limit is not None
    swept = seen = 0
    try:
        last_id = int(queue.connection.get(sweep_cursor_key(queue)) or 0) if resumes else 0
        while limit is None or seen < limit:
            page = SWEEP_BATCH if limit is None else min(SWEEP_BATCH, limit - seen)
            ids = [
                row.id
                for row in EventLog.select(EventLog.id)
                .where((EventLog.status == PENDING) & (EventLog.received_at <= grace_expired) & (EventLog.id > last_id))
                .order_by(EventLog.id)
                .limit(page)
            ]
            seen += len(ids)
            if queue is None:
                if ids:
                    process_events(state, ids)
                state.metrics.requeued(len(ids))
                swept += len(ids)
            elif ids:
                added = push_pending(queue, ids)
                state.metrics.requeued(added)
                swept += added
            if len(ids) < page:
                last_id = 0
                break
            last_id = ids[-1]
        if resumes:
            queue.connection.set(sweep_cursor_key(queue), last_id)
    except redis.RedisError as exc:
        log.warning("the sweeper stops, Redis is unreachable: %s", exc)
    return swept


@dataclass(frozen=True)
class Backlog:
    """The events waiting to be processed: how many (up to a cap) and since when."""

    count: int
    capped: bool
    oldest_received_at: datetime | None


def backlog(cap: int | None = BACKLOG_COUNT_CAP) -> Backlog:
    """Count the pending events (at most ``cap``, ``None``: all) and find the oldest; index-backed."""
    pending = EventLog.select(EventLog.id).where(EventLog.status == PENDING)
    # Peewee counts a limited query as a subquery, so the index scan stops at the cap.
    count = (pending if cap is None else pending.limit(cap + 1)).count()
    # Ids grow with time: the lowest pending id is the oldest, found on the (status, id) index.
    oldest = EventLog.select(EventLog.received_at).where(EventLog.status == PENDING).order_by(EventLog.id).first()
    capped = cap is not None and count > cap
    return Backlog(cap if capped else count, capped, oldest.received_at if oldest is not None else None)


def ids_waiting(queue: Queue) -> int:
    """How many event ids wait in ``queue``'s pending set."""
    return queue.connection.zcard(pending_key(queue))


def workers_alive(queue: Queue) -> int:
    """How many workers of ``queue`` are alive: in RQ's worker registry, their key not yet expired.

    Read with plain commands rather than ``Worker.all``, which builds worker
    objects that retune the connection's socket timeout for blocking pops.
    """
    keys = worker_registration.get_keys(queue=queue)
    if not keys:
        return 0
    pipe = queue.connection.pipeline(transaction=False)
    for key in keys:
        pipe.exists(key)
    return sum(pipe.execute())

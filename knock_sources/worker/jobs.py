"""The queue, draining it, the sweeper and the worker.

Jobs take IDs only (RQ's own advice); everything else is looked up in the
database. The RQ entry point itself is in ``tasks.py``. Without ``REDIS_URL`` there
is no queue: jobs run in-process right after the event is committed, through
the same ``process_event`` function.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING

import redis
from peewee import InterfaceError, OperationalError
from rq import Queue, Retry, SimpleWorker

from knock_sources import store
from knock_sources.control import replay
from knock_sources.store import PENDING, utcnow
from knock_sources.store.control import EventLog
from knock_sources.worker import processing

if TYPE_CHECKING:
    from knock_sources.state import KnockSources

log = logging.getLogger(__name__)

# The RQ job that drains the pending list, by dotted path: RQ imports it in the worker.
DRAIN_JOB = "knock_sources.worker.tasks.drain_pending"

# Retries cover infrastructure failures (database restarting); action
# failures are recorded on the event, not retried.
RETRY = Retry(max=3, interval=[5, 30, 120])
SWEEP_BATCH = 500
DRAIN_BATCH = 100
DRAIN_MAX_SECONDS = 30
# Longer than a drain job normally waits in the queue; if it expires while
# the job still waits, the next event merely schedules a second drain.
DRAIN_FLAG_SECONDS = 60


def make_queue(config, name: str | None = None, connection: redis.Redis | None = None) -> Queue:
    """Return the RQ queue ``name`` (default ``QUEUE_NAME``); Redis errors surface fast, not after minutes."""
    if connection is None:
        connection = redis.Redis.from_url(
            config["REDIS_URL"], socket_connect_timeout=2, socket_timeout=5, health_check_interval=30
        )
    return Queue(name or config["QUEUE_NAME"], connection=connection, default_timeout=config["JOB_TIMEOUT_SECONDS"])


def pending_key(queue: Queue) -> str:
    """The Redis list of event ids waiting for a drain job."""
    return f"knock_sources:{queue.name}:pending"


def drain_flag_key(queue: Queue) -> str:
    """Set while a drain job is scheduled and has not started yet."""
    return f"knock_sources:{queue.name}:drain-scheduled"


def submit_event(state: KnockSources, event_log_id: int) -> None:
    """Get a committed event processed.

    In embedded mode it is processed right here. Otherwise the id goes to
    this process's dispatcher, which pushes ids onto a Redis list in batches;
    ``drain_pending`` jobs process that list, so RQ's job bookkeeping is paid
    per batch, not per event. The event is committed as ``pending``, so
    nothing is lost if Redis is down: the sweeper picks it up.
    """
    if state.dispatcher is not None:
        state.dispatcher.submit(event_log_id)
        return
    try:
        process_event(state, event_log_id)
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
        sweep(state)
    except (OperationalError, InterfaceError) as exc:
        log.warning("the sweeper could not run: %s", exc)


def push_pending(queue: Queue, ids: list) -> None:
    """Append ``ids`` to the pending list and schedule a drain if none is; one round trip."""
    pipe = queue.connection.pipeline(transaction=False)
    pipe.rpush(pending_key(queue), *ids)
    pipe.set(drain_flag_key(queue), 1, nx=True, ex=DRAIN_FLAG_SECONDS)
    _, drain_needed = pipe.execute()
    if drain_needed:
        schedule_drain(queue)


def schedule_drain(queue: Queue) -> None:
    """Enqueue a ``drain_pending`` job."""
    queue.enqueue_call(DRAIN_JOB, result_ttl=0, failure_ttl=7 * 86400, retry=RETRY)


def drain(state: KnockSources) -> int:
    """Process the event ids waiting in the pending list, in batches; return how many.

    Clears the drain flag first, so that an id pushed while this job runs
    schedules another drain (which another worker can take). Stops after
    ``DRAIN_MAX_SECONDS`` and hands the rest to a fresh job, so that a busy
    queue never runs one job into its timeout.
    """
    queue = state.queue
    connection = queue.connection
    connection.delete(drain_flag_key(queue))
    deadline = time.monotonic() + DRAIN_MAX_SECONDS
    drained = 0
    while True:
        ids = connection.lpop(pending_key(queue), DRAIN_BATCH)
        if not ids:
            return drained
        for event_log_id in ids:
            try:
                process_event(state, int(event_log_id))
            except (OperationalError, InterfaceError) as exc:
                # Rolled back and still pending: the sweeper retries it, and
                # one bad event (a deadlock, say) must not drop the batch.
                log.warning("event %s stays pending: %s", event_log_id, exc)
        drained += len(ids)
        if time.monotonic() > deadline:
            schedule_drain(queue)
            return drained


def process_event(state: KnockSources, event_log_id: int, *, ignore_idempotency: bool = False) -> str | None:
    """Process one logged event: resolve, deduplicate, run its actions; return its final status."""
    run = partial(
        processing.process,
        event_log_id,
        state.registry,
        state.config,
        state.metrics,
        ignore_idempotency=ignore_idempotency,
    )
    if store.db.is_closed():
        with store.db.connection_context():
            return run()
    return run()


def sweep(state: KnockSources) -> int:
    """Resume stalled replays; re-enqueue events still pending after the grace period, return how many.

    (A worker that dies mid-event leaves it ``pending``: each event is
    processed in one transaction.) Stops at the first Redis failure; the
    next sweep carries on.
    """
    resumed = replay.resume_stale(state)
    if resumed:
        log.info("resumed %s stalled replays", resumed)
    config = state.config
    now = utcnow()
    grace_expired = now - timedelta(seconds=config["SWEEP_GRACE_SECONDS"])
    queue = state.queue
    swept = 0
    last_id = 0
    while True:
        ids = [
            row.id
            for row in EventLog.select(EventLog.id)
            .where((EventLog.status == PENDING) & (EventLog.received_at <= grace_expired) & (EventLog.id > last_id))
            .order_by(EventLog.id)
            .limit(SWEEP_BATCH)
        ]
        if not ids:
            return swept
        if queue is None:
            for event_log_id in ids:
                process_event(state, event_log_id)
        else:
            try:
                push_pending(queue, ids)
            except redis.RedisError as exc:
                log.warning("the sweeper stops, Redis is unreachable: %s", exc)
                return swept
        state.metrics.requeued(len(ids))
        swept += len(ids)
        last_id = ids[-1]


class SweepingWorker(SimpleWorker):
    """An RQ worker that runs jobs in-process and sweeps between them.

    In-process (no fork per job) because forking costs milliseconds per job
    and would share the parent's database sockets with the child.
    """

    sweep_interval = 30
    #: Not ``state``: RQ workers already have a ``state`` (busy, idle...).
    app_state: KnockSources

    @property
    def dequeue_timeout(self) -> int:
        """Wake up at least once per sweep interval even when idle."""
        return max(1, min(super().dequeue_timeout, self.sweep_interval))

    def run_maintenance_tasks(self):
        """Run RQ's maintenance, then the sweeper unless another worker just did."""
        super().run_maintenance_tasks()
        lock = f"knock_sources:sweep-lock:{self.queues[0].name}"
        if self.connection.set(lock, self.name, nx=True, ex=max(1, self.sweep_interval - 1)):
            try:
                with store.db.connection_context():
                    swept = sweep(self.app_state)
                if swept:
                    log.info("re-enqueued %s pending events", swept)
            except Exception:
                log.exception("the sweeper failed; it will run again")


def make_worker(state: KnockSources) -> SweepingWorker:
    """Return a worker for the state's queues, sweeping every ``SWEEP_INTERVAL_SECONDS``.

    RQ takes a job from the replay queue only when the event queue is empty,
    so live events go first.
    """
    queue = state.queue
    worker = SweepingWorker(
        [queue, state.replay_queue],
        connection=queue.connection,
        maintenance_interval=state.config["SWEEP_INTERVAL_SECONDS"],
    )
    worker.sweep_interval = state.config["SWEEP_INTERVAL_SECONDS"]
    worker.app_state = state
    return worker

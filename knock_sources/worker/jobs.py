"""RQ jobs, the queue, the sweeper and the worker.

Job functions live at module level and take IDs only (RQ's own advice);
everything else is looked up in the database. Without ``REDIS_URL`` there
is no queue: jobs run in-process right after the event is committed, through
the same ``process_event`` function.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta
from functools import partial

import redis
from flask import current_app
from peewee import InterfaceError, OperationalError
from rq import Queue, Retry, SimpleWorker

from knock_sources import store
from knock_sources.plugins import get_registry
from knock_sources.store import PENDING, utcnow
from knock_sources.store.control import EventLog
from knock_sources.worker import processing
from knock_sources.worker.dispatch import Dispatcher

log = logging.getLogger(__name__)

QUEUE_EXTENSION = "knock_sources.queue"
DISPATCHER_EXTENSION = "knock_sources.dispatcher"
SWEEP_STATE_EXTENSION = "knock_sources.sweep_state"
# Retries cover infrastructure failures (database restarting); action
# failures are recorded on the event, not retried.
RETRY = Retry(max=3, interval=[5, 30, 120])
SWEEP_BATCH = 500
DRAIN_BATCH = 100
DRAIN_MAX_SECONDS = 30
# Longer than a drain job normally waits in the queue; if it expires while
# the job still waits, the next event merely schedules a second drain.
DRAIN_FLAG_SECONDS = 60


def init_app(app):
    """Create the app's queue and dispatcher, or ``None`` for embedded in-process jobs."""
    queue = make_queue(app.config) if app.config["REDIS_URL"] else None
    app.extensions[QUEUE_EXTENSION] = queue
    app.extensions[DISPATCHER_EXTENSION] = Dispatcher(partial(push_pending, queue)) if queue else None
    app.extensions[SWEEP_STATE_EXTENSION] = {"lock": threading.Lock(), "last": time.monotonic()}


def make_queue(config) -> Queue:
    """Return the RQ queue for ``config``; Redis errors surface fast, not after minutes."""
    connection = redis.Redis.from_url(
        config["REDIS_URL"], socket_connect_timeout=2, socket_timeout=5, health_check_interval=30
    )
    return Queue(config["QUEUE_NAME"], connection=connection, default_timeout=config["JOB_TIMEOUT_SECONDS"])


def get_queue() -> Queue | None:
    """Return the current app's queue (``None`` in embedded mode)."""
    return current_app.extensions[QUEUE_EXTENSION]


def pending_key(queue: Queue) -> str:
    """The Redis list of event ids waiting for a drain job."""
    return f"knock_sources:{queue.name}:pending"


def drain_flag_key(queue: Queue) -> str:
    """Set while a drain job is scheduled and has not started yet."""
    return f"knock_sources:{queue.name}:drain-scheduled"


def hand_over(event_log_id: int) -> None:
    """Get a committed event processed.

    In embedded mode it is processed right here. Otherwise the id goes to
    this process's dispatcher, which pushes ids onto a Redis list in batches;
    ``drain_pending`` jobs process that list, so RQ's job bookkeeping is paid
    per batch, not per event (DESIGN.md section 7). The event is committed
    as ``pending``, so nothing is lost if Redis is down: the sweeper picks it up.
    """
    if get_queue() is not None:
        current_app.extensions[DISPATCHER_EXTENSION].submit(event_log_id)
        return
    try:
        process_event(event_log_id)
    except (OperationalError, InterfaceError) as exc:
        # Committed and still pending: the sender gets its 2xx all the same.
        log.warning("event %s stays pending: %s", event_log_id, exc)
    _sweep_if_due()


def _sweep_if_due() -> None:
    """Embedded mode has no worker, so the web process sweeps, once per interval."""
    state = current_app.extensions[SWEEP_STATE_EXTENSION]
    now = time.monotonic()
    with state["lock"]:
        if now - state["last"] < current_app.config["SWEEP_INTERVAL_SECONDS"]:
            return
        state["last"] = now
    try:
        sweep()
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
    queue.enqueue_call(drain_pending, result_ttl=0, failure_ttl=7 * 86400, retry=RETRY)


def drain_pending() -> int:
    """Process the event ids waiting in the pending list, in batches; return how many.

    Clears the drain flag first, so that an id pushed while this job runs
    schedules another drain (which another worker can take). Stops after
    ``DRAIN_MAX_SECONDS`` and hands the rest to a fresh job, so that a busy
    queue never runs one job into its timeout.
    """
    queue = get_queue()
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
                process_event(int(event_log_id))
            except (OperationalError, InterfaceError) as exc:
                # Rolled back and still pending: the sweeper retries it, and
                # one bad event (a deadlock, say) must not drop the batch.
                log.warning("event %s stays pending: %s", event_log_id, exc)
        drained += len(ids)
        if time.monotonic() > deadline:
            schedule_drain(queue)
            return drained


def process_event(event_log_id: int) -> None:
    """Process one logged event: resolve, deduplicate, run its actions."""
    if store.db.is_closed():
        with store.db.connection_context():
            processing.process(event_log_id, get_registry(), current_app.config)
    else:
        processing.process(event_log_id, get_registry(), current_app.config)


def sweep() -> int:
    """Re-enqueue events still pending after the grace period; return how many.

    (A worker that dies mid-event leaves it ``pending``: each event is
    processed in one transaction.) Stops at the first Redis failure; the
    next sweep carries on.
    """
    config = current_app.config
    now = utcnow()
    grace_expired = now - timedelta(seconds=config["SWEEP_GRACE_SECONDS"])
    queue = get_queue()
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
                process_event(event_log_id)
        else:
            try:
                push_pending(queue, ids)
            except redis.RedisError as exc:
                log.warning("the sweeper stops, Redis is unreachable: %s", exc)
                return swept
        swept += len(ids)
        last_id = ids[-1]


class SweepingWorker(SimpleWorker):
    """An RQ worker that runs jobs in-process and sweeps between them.

    In-process (no fork per job) because forking costs milliseconds per job
    and would share the parent's database sockets with the child.
    """

    sweep_interval = 30

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
                    swept = sweep()
                if swept:
                    log.info("re-enqueued %s pending events", swept)
            except Exception:
                log.exception("the sweeper failed; it will run again")


def make_worker(app) -> SweepingWorker:
    """Return a worker for the app's queue, sweeping every ``SWEEP_INTERVAL_SECONDS``."""
    queue = app.extensions[QUEUE_EXTENSION]
    worker = SweepingWorker(
        [queue], connection=queue.connection, maintenance_interval=app.config["SWEEP_INTERVAL_SECONDS"]
    )
    worker.sweep_interval = app.config["SWEEP_INTERVAL_SECONDS"]
    return worker

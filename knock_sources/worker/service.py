"""The ``flask worker`` process: an RQ worker that sweeps, and rides out Redis outages by itself.

RQ's own loop quits on most Redis errors (a job whose failure cannot be
recorded, a heartbeat that fails), and a worker that quits leaves every event
accepted from then on pending until someone restarts it. So the worker's
Redis connection never gives up: every command, RQ's and ours, waits for
Redis with a capped, jittered backoff (``PatientRetry``), which redis-py
applies to connecting and to each command. One line is logged when an outage
starts and one when it ends, not one per attempt. Only the worker's
connection is patient: the web process's stays quick to fail, because there
an event is already committed and the sweeper picks up whatever Redis missed.

A Redis that comes back empty has forgotten the worker, so after an outage
the worker registers itself again (``/healthz`` counts workers in RQ's
registry) and sweeps at once.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

import redis
from redis.backoff import EqualJitterBackoff
from redis.retry import Retry
from rq import SimpleWorker, worker_registration
from rq.exceptions import StopRequested

from knock_sources import store
from knock_sources.explain import EXPLAINED, explain
from knock_sources.worker import jobs

if TYPE_CHECKING:
    from knock_sources.state import KnockSources

log = logging.getLogger(__name__)

# Backoff between attempts while Redis is unreachable: from a quarter of a
# second, doubling, to at most this; jittered so that workers do not reconnect
# in lockstep.
MAX_BACKOFF_SECONDS = 5.0


class PatientRetry(Retry):
    """A redis-py retry policy that retries connection errors forever, logging once per outage.

    Shared by every connection of one client: redis-py deep-copies its retry
    object per connection, and an outage is the process's, not a
    connection's. ``give_up()`` makes the next failure raise (a worker that
    was asked to stop must not wait for Redis to say goodbye).
    """

    def __init__(self):
        super().__init__(EqualJitterBackoff(cap=MAX_BACKOFF_SECONDS, base=0.25), retries=-1)
        self._lock = threading.Lock()
        self._down_since: float | None = None
        #: Set by ``give_up()``: the next failure raises instead of waiting.
        self.giving_up = False
        #: How many outages have ended; a worker compares it to re-register after one.
        self.recoveries = 0

    def __deepcopy__(self, memo):
        return self

    def give_up(self) -> None:
        """From now on, fail instead of waiting for Redis."""
        self.giving_up = True

    def call_with_retry(self, do, fail, is_retryable=None, with_failure_count=False):
        """Call ``do`` until it succeeds; see redis-py's ``Retry.call_with_retry``."""

        def failed(error, *count):
            self._went_down(error)
            fail(error, *count)
            if self.giving_up:
                raise error

        result = super().call_with_retry(do, failed, is_retryable, with_failure_count)
        if self._down_since is not None:
            self._came_back()
        return result

    def _went_down(self, error) -> None:
        with self._lock:
            if self._down_since is not None:
                return
            self._down_since = time.monotonic()
        log.warning(
            "Redis is unreachable (%s); retrying until it is back (if it does not come back: start Redis or fix "
            "KNOCK_SOURCES_REDIS_URL)",
            error,
        )

    def _came_back(self) -> None:
        with self._lock:
            if self._down_since is None:
                return
            down_for, self._down_since = time.monotonic() - self._down_since, None
            self.recoveries += 1
        log.warning("Redis is reachable again after %.1f s; resuming", down_for)


class SweepingWorker(SimpleWorker):
    """An RQ worker that runs jobs in-process, sweeps between them, and survives Redis outages.

    In-process (no fork per job) because forking costs milliseconds per job
    and would share the parent's database sockets with the child.
    """

    sweep_interval = 30
    #: Not ``state``: RQ workers already have a ``state`` (busy, idle...).
    app_state: KnockSources
    retry: PatientRetry
    _registered_after = 0

    @property
    def dequeue_timeout(self) -> int:
        """Wake up at least once per sweep interval even when idle."""
        return max(1, min(super().dequeue_timeout, self.sweep_interval))

    def heartbeat(self, timeout=None, pipeline=None):
        """Send RQ's heartbeat; after an outage, register again first (Redis may have lost us)."""
        if self.retry.recoveries != self._registered_after:
            self._registered_after = self.retry.recoveries
            self._register_again()
        super().heartbeat(timeout, pipeline)

    def _register_again(self) -> None:
        with self.connection.pipeline() as pipe:
            pipe.hset(self.key, mapping=self.serialize())
            worker_registration.register(self, pipe)
            pipe.expire(self.key, self.worker_ttl + 60)
            pipe.execute()
        # Events accepted during the outage are waiting for a sweep: run it now.
        self.last_cleaned_at = None

    def handle_warm_shutdown_request(self):
        """Stop waiting for Redis once asked to stop: saying goodbye to a dead Redis must not hang."""
        self.retry.give_up()
        super().handle_warm_shutdown_request()

    def run_maintenance_tasks(self):
        """Run RQ's maintenance, then the sweeper unless another worker just did."""
        super().run_maintenance_tasks()
        lock = f"knock_sources:sweep-lock:{self.queues[0].name}"
        if self.connection.set(lock, self.name, nx=True, ex=max(1, self.sweep_interval - 1)):
            try:
                with store.db.connection_context():
                    swept = jobs.sweep(self.app_state, self.queues[0], jobs.SWEEP_BATCH)
                if swept:
                    log.info("re-enqueued %s pending events", swept)
            except StopRequested:
                # RQ's SIGTERM handler raises it wherever an idle worker is.
                raise
            except EXPLAINED as exc:
                log.warning("the sweeper could not run: %s", explain(exc, self.app_state.config))
            except Exception:
                log.exception("the sweeper failed; it will run again")


def make_worker(state: KnockSources) -> SweepingWorker:
    """Return a worker on a patient connection of its own, sweeping every ``SWEEP_INTERVAL_SECONDS``.

    It serves the event queue and the replay queue; RQ takes a job from the
    replay queue only when the event queue is empty, so live events go first.
    """
    config = state.config
    retry = PatientRetry()
    connection = jobs.make_connection(config, retry=retry)
    queues = [
        jobs.make_queue(config, connection=connection),
        jobs.make_queue(config, config["REPLAY_QUEUE_NAME"], connection),
    ]
    worker = SweepingWorker(queues, connection=connection, maintenance_interval=config["SWEEP_INTERVAL_SECONDS"])
    worker.sweep_interval = config["SWEEP_INTERVAL_SECONDS"]
    worker.app_state = state
    worker.retry = retry
    return worker


def run(state: KnockSources, burst: bool = False) -> None:
    """Run a worker until it is asked to stop (or, with ``burst``, until the queue is empty).

    RQ's loop still quits on errors its retries do not cover, such as a Redis
    that refuses writes (``MISCONF``, ``OOM``): a fresh worker takes over
    after a pause, so the process keeps serving once Redis does.
    """
    pause = 0.25
    while True:
        worker = make_worker(state)
        try:
            worker.work(burst=burst)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            # Raised only once it gave up, that is, when asked to stop during an outage.
            log.warning("worker %s stopped while Redis is unreachable: %s", worker.name, exc)
        if burst or worker.retry.giving_up:
            return
        log.error("worker %s quit unexpectedly; starting a new one in %.1f s", worker.name, pause)
        time.sleep(pause)
        pause = min(2 * pause, MAX_BACKOFF_SECONDS)

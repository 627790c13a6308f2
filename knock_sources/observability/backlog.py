"""The gauges that need the database or Redis, sampled in the background and cached.

A scrape never queries: it serves the last sample, and the first scrape of a
process starts the thread that takes a sample every ``METRICS_SAMPLE_SECONDS``
(Convoy's scrape-time ``GROUP BY`` once blocked its start-up). Until the first
sample is taken these gauges are absent. The queries are index-backed: the
oldest pending event is the first row of the ``(status, id)`` index.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from importlib import metadata
from typing import Callable

from prometheus_client.core import GaugeMetricFamily

from knock_sources import store
from knock_sources.store import utcnow
from knock_sources.worker import jobs

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sample:
    """One reading of the backlog."""

    pending_events: int
    oldest_pending_age_seconds: float
    #: ``None`` in embedded mode (no RQ workers; events run in the web process).
    workers: int | None
    #: Queue name -> jobs or ids waiting in Redis.
    queue_depths: dict = field(default_factory=dict)
    replays: dict = field(default_factory=dict)


def take_sample(queues: Callable[[], list], replay_states: Callable[[], dict]) -> Sample:
    """Query the database (and Redis) once; needs a connection context.

    The same readings as ``/healthz`` (``jobs.backlog``, ``jobs.workers_alive``), uncapped.
    """
    pending = jobs.backlog(cap=None)
    oldest = pending.oldest_received_at
    age = (utcnow() - oldest).total_seconds() if oldest else 0.0
    workers, depths = None, {}
    queue_list = queues()
    if queue_list:
        workers = jobs.workers_alive(queue_list[0])
        for queue in queue_list:
            depths[queue.name] = queue.count + jobs.ids_waiting(queue)
    return Sample(pending.count, max(age, 0.0), workers, depths, replay_states())


class Backlog:
    """A prometheus-client collector serving the cached ``Sample`` of this process."""

    def __init__(self, interval: float, queues: Callable[[], list], replay_states: Callable[[], dict]):
        self.interval = interval
        self._queues = queues
        self._replay_states = replay_states
        self._sample: Sample | None = None
        self._started_in: int | None = None
        self._start_lock = threading.Lock()
        self._stopped = threading.Event()
        self._version = _version()

    @property
    def sample(self) -> Sample | None:
        """The last sample, or ``None`` before the first."""
        return self._sample

    def refresh(self) -> None:
        """Take a sample now (the background thread's step)."""
        with store.db.connection_context():
            self._sample = take_sample(self._queues, self._replay_states)

    def _ensure_sampling(self) -> None:
        if self._started_in == os.getpid():
            return
        with self._start_lock:
            if self._started_in == os.getpid():
                return
            self._started_in = os.getpid()
            threading.Thread(target=self._run, name="knock-sources-backlog", daemon=True).start()

    def stop(self) -> None:
        """End the sampling thread (tests, shutdown)."""
        self._stopped.set()

    def _run(self) -> None:
        while not self._stopped.is_set():
            try:
                self.refresh()
            except Exception as exc:
                # The last sample stays; it is retried at the next interval.
                log.warning("could not sample the backlog: %s", exc)
            self._stopped.wait(self.interval)

    def collect(self):
        """Yield the gauges of the last sample; start sampling on this process's first scrape."""
        self._ensure_sampling()
        build = GaugeMetricFamily("knock_sources_build_info", "The running version.", labels=["version"])
        build.add_metric([self._version], 1)
        yield build
        sample = self._sample
        if sample is None:
            return
        yield GaugeMetricFamily(
            "knock_sources_pending_events", "Events logged and not yet processed.", value=sample.pending_events
        )
        yield GaugeMetricFamily(
            "knock_sources_oldest_pending_age_seconds",
            "How long the oldest pending event has waited (0 when none is pending).",
            value=sample.oldest_pending_age_seconds,
        )
        if sample.workers is not None:
            yield GaugeMetricFamily(
                "knock_sources_workers", "Live RQ workers on the event queue.", value=sample.workers
            )
            depth = GaugeMetricFamily("knock_sources_queue_depth", "Jobs and ids waiting in Redis.", labels=["queue"])
            for name, value in sample.queue_depths.items():
                depth.add_metric([name], value)
            yield depth
        replays = GaugeMetricFamily("knock_sources_replays", "Replays by state.", labels=["state"])
        for state, value in sample.replays.items():
            replays.add_metric([state], value)
        yield replays


def _version() -> str:
    try:
        return metadata.version("knock-sources")
    except metadata.PackageNotFoundError:
        return "unknown"

"""The pipeline's Prometheus counters and histograms, and the ``Recorder`` that updates them.

prometheus-client decides when it is first imported whether it runs in
multiprocess mode: with ``PROMETHEUS_MULTIPROC_DIR`` set (``gunicorn.conf.py``
sets it before any worker imports the app, wipes it when the server starts
and marks dead workers in ``child_exit``) every process writes its values to
files there and a scrape adds them up. ``flask worker`` runs without it and
serves its own values on its own port.

The metrics are process-wide, as prometheus-client's are. Each pipeline
stage calls its ``Recorder`` at the point where it already decides the
outcome (the rejection's code, the event's final status, the action log's
status), so no rule is written twice. The hot path pays a dict lookup for a
pre-bound label child and prometheus-client's own update, no lock of ours.
"""

from __future__ import annotations

import os

from prometheus_client import REGISTRY, Counter, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

#: Labels when a request matched no source environment.
NO_SOURCE = ""
ACCEPTED = "accepted"
IDEMPOTENT = "idempotent"

# Ingest answers in milliseconds; processing latency includes queueing.
_FAST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0)

INGEST_REQUESTS = Counter(
    "knock_sources_ingest_requests_total",
    "Requests to ingest URLs by outcome: accepted, idempotent, or the rejection's code.",
    ["source", "environment", "outcome"],
)
INGEST_DURATION = Histogram(
    "knock_sources_ingest_duration_seconds",
    "Time from an ingest request's arrival to its answer.",
    ["route"],
    buckets=_FAST_BUCKETS,
)
EVENTS_PROCESSED = Counter(
    "knock_sources_events_processed_total",
    "Events whose processing committed, by final status.",
    ["source", "environment", "status"],
)
EVENT_LATENCY = Histogram(
    "knock_sources_event_latency_seconds",
    "Time from an event's receipt to the commit of its processing.",
    buckets=_LATENCY_BUCKETS,
)
ACTIONS = Counter(
    "knock_sources_actions_total", "Actions run for committed events, by status.", ["action_type", "status"]
)
SCRIPT_RUNS = Counter(
    "knock_sources_script_runs_total", "Source scripts run on ingest, by outcome (ok or the error kind).", ["outcome"]
)
SCRIPT_DURATION = Histogram(
    "knock_sources_script_duration_seconds", "Time a source script took on ingest.", buckets=_FAST_BUCKETS
)
SWEEPER_REQUEUED = Counter(
    "knock_sources_sweeper_requeued_total", "Pending events the sweeper handed to the workers again."
)
REPLAY_EVENTS = Counter(
    "knock_sources_replay_events_total",
    "Events handled by replays, by outcome (the new event's status, or skipped).",
    ["outcome"],
)


class _Discard:
    """A label child that records nothing (metrics disabled)."""

    def inc(self, amount: float = 1) -> None:
        """Ignore ``amount``."""

    def observe(self, amount: float) -> None:
        """Ignore ``amount``."""


_DISCARD = _Discard()


class Recorder:
    """Updates the metrics above; each pipeline stage gets one from the app state.

    Label children are bound once per label set and kept in a plain dict:
    reading it needs no lock, and a race on first use merely binds the same
    child twice (prometheus-client returns the same object).
    """

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self._children: dict = {}

    def _child(self, metric, *labels):
        key = (metric, labels)
        child = self._children.get(key)
        if child is None:
            child = _DISCARD if not self.enabled else metric.labels(*labels) if labels else metric
            self._children[key] = child
        return child

    def ingest(self, source: str, environment: str, outcome: str, seconds: float, route: str = "receive") -> None:
        """Count one ingest request and how long it took."""
        self._child(INGEST_REQUESTS, source, environment, outcome).inc()
        self._child(INGEST_DURATION, route).observe(seconds)

    def event_processed(self, source: str, environment: str, status: str, latency: float | None) -> None:
        """Count an event whose processing committed with ``status``."""
        self._child(EVENTS_PROCESSED, source, environment, status).inc()
        if latency is not None:
            self._child(EVENT_LATENCY).observe(max(latency, 0.0))

    def action(self, action_type: str, status: str) -> None:
        """Count one committed action log."""
        self._child(ACTIONS, action_type, status).inc()

    def script_run(self, outcome: str, seconds: float) -> None:
        """Count one source script run on ingest."""
        self._child(SCRIPT_RUNS, outcome).inc()
        self._child(SCRIPT_DURATION).observe(seconds)

    def requeued(self, count: int) -> None:
        """Count events the sweeper handed over again."""
        if count:
            self._child(SWEEPER_REQUEUED).inc(count)

    def replayed(self, outcome: str) -> None:
        """Count one event handled by a replay."""
        self._child(REPLAY_EVENTS, outcome).inc()


def multiprocess_dir() -> str | None:
    """The multiprocess directory prometheus-client uses, if any (read at import, as it does)."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class _Scrape:
    """What one scrape collects: this process's (or every process's) metrics plus extra collectors."""

    def __init__(self, collectors):
        self.collectors = collectors

    def collect(self):
        """Yield every collector's metric families."""
        for collector in self.collectors:
            yield from collector.collect()


def render(*extra) -> bytes:
    """Return the Prometheus text exposition of the metrics and ``extra`` collectors.

    In multiprocess mode the values come from every process's files (the
    default registry would show only this process); otherwise from the
    default registry.
    """
    base = MultiProcessCollector(None) if multiprocess_dir() else REGISTRY
    return generate_latest(_Scrape([base, *extra]))

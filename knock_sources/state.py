"""The application state: one object holding what the pipeline needs, built once per app.

Flask's own extension guidance (and its celery example) keeps one object in
``app.extensions``; views, the CLI and the RQ job entry points fetch it with
``current_state()`` and hand it, or plain values from it, down to the
domain modules, which never import ``current_app``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from rq import Queue

from knock_sources.control import replay
from knock_sources.control.encryption import Keyring
from knock_sources.control.hour_counts import HourlyCounts
from knock_sources.ingest.cache import SourceCache
from knock_sources.observability.backlog import Backlog
from knock_sources.observability.metrics import Recorder
from knock_sources.plugins import Registry, build_registry
from knock_sources.scripting import ScriptRunner, shared_runner
from knock_sources.worker import jobs
from knock_sources.worker.dispatch import Dispatcher

EXTENSION = "knock_sources"


@dataclass
class SweepState:
    """When this process last swept (embedded mode sweeps from the web process)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    last: float = field(default_factory=time.monotonic)


@dataclass
class KnockSources:
    """Everything one app's pipeline shares: config, plugins, caches, the script runner, the queue."""

    config: dict[str, Any]
    registry: Registry
    #: ``SECRET_KEY`` and ``SECRET_KEY_FALLBACKS``: encrypts and decrypts secrets at rest.
    keyring: Keyring
    cache: SourceCache
    scripts: ScriptRunner
    metrics: Recorder
    #: The cached database- and Redis-backed gauges of ``GET /metrics``.
    backlog: Backlog
    #: ``None`` in embedded mode: events are processed in-process.
    queue: Queue | None = None
    #: Replays' queue, which workers take jobs from only when ``queue`` is empty.
    replay_queue: Queue | None = None
    #: Embedded mode's replay queue: a background thread of this process.
    replays_here: replay.InProcessQueue = field(default_factory=replay.InProcessQueue)
    dispatcher: Dispatcher | None = None
    sweep: SweepState = field(default_factory=SweepState)
    #: Events per hour, for the dashboard and ``GET /v1/sources/{key}/status``.
    hours: HourlyCounts = field(default_factory=HourlyCounts)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> KnockSources:
        """Build the state for ``config`` (an app's validated configuration)."""
        queue = jobs.make_queue(config) if config["REDIS_URL"] else None
        replay_queue = (
            jobs.make_queue(config, config["REPLAY_QUEUE_NAME"], queue.connection) if queue is not None else None
        )
        queues = [queue, replay_queue] if queue is not None else []
        keyring = Keyring.from_config(config)
        return cls(
            config=config,
            registry=build_registry(config),
            keyring=keyring,
            cache=SourceCache(config["SOURCE_CACHE_SECONDS"], keyring),
            # One runner per process and limits, not per app: each keeps a
            # script host process with its compiled scripts.
            scripts=shared_runner(config["SCRIPT_TIMEOUT_MS"], config["SCRIPT_MEMORY_MB"]),
            metrics=Recorder(bool(config["METRICS_ENABLED"])),
            backlog=Backlog(config["METRICS_SAMPLE_SECONDS"], lambda: queues, replay.count_by_state),
            queue=queue,
            replay_queue=replay_queue,
            dispatcher=Dispatcher(partial(jobs.push_pending, queue)) if queue is not None else None,
        )


def init_app(app) -> KnockSources:
    """Build the app's state into ``app.extensions``."""
    state = app.extensions[EXTENSION] = KnockSources.from_config(app.config)
    return state


def current_state() -> KnockSources:
    """Return the state of the current app (views, CLI commands and job entry points only)."""
    from flask import current_app

    return current_app.extensions[EXTENSION]

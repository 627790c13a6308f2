"""Handing committed event ids to Redis without making the request wait.

The request that received an event has already committed it as ``pending``:
that row is the durability point. Telling the workers about it is
best-effort, so it happens on a background thread that pushes whatever ids
have accumulated in one round trip, no request thread waiting on Redis.
redis-py's pipeline costs about as much CPU as the rest of an ingest request
(``bench/cpu.py``), so the thread lingers ``LINGER_SECONDS`` after the first
id of a batch for the ids of concurrent requests to join it: under load a
push carries several events, and an event reaches the workers at most that
much later. Under gunicorn (four gthread workers of four threads) a 10 ms
linger still meant a push every one or two requests per process, and this
thread's CPU was about 40 µs per request, plus Redis's 13; at 50 ms, still
short next to a worker's pickup, it is about 12 and 4. An id lost here,
because Redis is down or the process died before the push, is still
``pending`` in the database: the sweeper re-enqueues it after
``SWEEP_GRACE_SECONDS``.
"""

from __future__ import annotations

import atexit
import collections
import logging
import os
import threading
from time import sleep
from typing import Callable

log = logging.getLogger(__name__)

#: How long a batch waits for more ids after its first; short next to a worker's pickup.
LINGER_SECONDS = 0.05


class Dispatcher:
    """Calls ``push(ids)`` from one background thread per process, in batches."""

    def __init__(self, push: Callable[[list], object], linger_seconds: float = LINGER_SECONDS):
        self._push = push
        self._linger = linger_seconds
        self._reset()

    def _reset(self):
        # Also after a fork: the parent's thread, lock and ids do not carry over.
        self._pid = os.getpid()
        self._ids: collections.deque = collections.deque()
        self._condition = threading.Condition()
        self._in_flight = 0
        self._stopped = False
        self._thread = None

    def submit(self, event_log_id: int) -> None:
        """Queue ``event_log_id`` for the next push; never blocks on Redis."""
        if self._pid != os.getpid():
            self._reset()
        with self._condition:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="knock-sources-dispatch", daemon=True)
                self._thread.start()
                atexit.register(self.flush)
            self._ids.append(event_log_id)
            self._condition.notify()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every submitted id has been pushed (or failed); ``False`` on timeout."""
        with self._condition:
            return self._condition.wait_for(lambda: not self._ids and not self._in_flight, timeout)

    def stop(self) -> None:
        """Let the thread push what it has and exit (tests, shutdown)."""
        with self._condition:
            self._stopped = True
            self._condition.notify_all()

    def _run(self):
        while True:
            with self._condition:
                self._condition.wait_for(lambda: self._ids or self._stopped)
                if not self._ids:
                    return
                stopping = self._stopped
            if self._linger and not stopping:
                # Asleep, not waiting on the condition: a submit meanwhile wakes nothing.
                sleep(self._linger)
            with self._condition:
                batch = list(self._ids)
                self._ids.clear()
                self._in_flight = len(batch)
            try:
                self._push(batch)
            except Exception as exc:
                log.warning("%s events stay pending until the sweeper runs: %s", len(batch), exc)
            with self._condition:
                self._in_flight = 0
                self._condition.notify_all()

"""Replay: process stored events again, under the current mappings, as new events.

A replay selects a source environment's stored events by a filter
(statuses, event types, a received-at range, explicit ids) and, for each,
writes a new pending ``EventLog`` linked to it (``replay_of``) and puts it
through the normal processing: idempotency holds unless the replay ignores
it. A rejected request whose whole body was kept is verified again first
(``reverification``); one that fails again is logged as rejected again.

It walks the matching events page by page by id, never loading them all,
and only up to the newest id at its creation, so that the events it writes
are never its own input. Each step commits the new event together with the
replay's cursor, on the condition that the cursor has not moved: a replay
resumed after a crash starts after its last step, and two runners of one
replay cannot both replay an event. ``run`` is the whole walk; the RQ job
(``worker.tasks.run_replay``, on a lower-priority queue than live events),
the embedded mode and ``flask replay`` all call it.

Which events a filter selects, and the dry run, are ``replay_selection``'s.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Callable

from peewee import fn
from rq import Retry

from knock_sources.control import reverification
from knock_sources.control.replay_selection import count, matching
from knock_sources.errors import NotFound, SourcesError
from knock_sources.ingest import eventlog, verification
from knock_sources.ingest.cache import ReceivingEnvironment, snapshot
from knock_sources.observability import logs
from knock_sources.providers import Envelope
from knock_sources.store import FAILED, PENDING, REJECTED, db, utcnow
from knock_sources.store.control import (
    REPLAY_ACTIVE,
    REPLAY_CANCELLED,
    REPLAY_COMPLETED,
    REPLAY_RUNNING,
    REPLAY_STATES,
    EventLog,
    Replay,
    SourceEnvironment,
)
from knock_sources.worker import processing

if TYPE_CHECKING:
    from knock_sources.state import KnockSources

log = logging.getLogger(__name__)

PAGE_SIZE = 100
JOB = "knock_sources.worker.tasks.run_replay"
#: Database outages while a replay job runs: RQ retries it, and it resumes at its cursor.
RETRY = Retry(max=5, interval=[5, 30, 120, 300, 600])
SLICE_SECONDS = 30
SKIPPED = "skipped"


class Superseded(Exception):
    """The replay was cancelled, or another runner moved its cursor: this runner stops."""


def create(state: KnockSources, source_env: SourceEnvironment, filter_: dict, ignore_idempotency: bool) -> Replay:
    """Record a replay of the events ``filter_`` selects now (at most ``REPLAY_MAX_EVENTS``)."""
    total, _ = count(source_env.id, filter_, state.config["REPLAY_MAX_EVENTS"])
    last_id = EventLog.select(fn.MAX(EventLog.id)).scalar() or 0
    return Replay.create(
        source_environment=source_env.id,
        filter=filter_,
        ignore_idempotency=ignore_idempotency,
        total=total,
        last_id=last_id,
    )


def start(state: KnockSources, replay: Replay) -> Replay:
    """Hand ``replay`` to the replay queue and return it (queued)."""
    enqueue(state, replay.id)
    return replay


def enqueue(state: KnockSources, replay_id: int) -> None:
    """Queue ``replay_id`` on the RQ replay queue (retried on infrastructure failures), or in embedded mode here."""
    if state.replay_queue is None:
        state.replays_here.submit(state, replay_id)
        return
    state.replay_queue.enqueue_call(JOB, args=(replay_id,), result_ttl=0, failure_ttl=7 * 86400, retry=RETRY)


class InProcessQueue:
    """Embedded mode's replay queue: one background thread per process runs replays one at a time.

    A request only queues its replay, so no request waits for one. The
    thread is a daemon: a replay it leaves unfinished at exit is resumed by
    the sweeper (``resume_stale``).
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._jobs: queue.Queue | None = None
        self._thread: threading.Thread | None = None
        self._pid: int | None = None

    def submit(self, state: KnockSources, replay_id: int) -> None:
        """Queue ``replay_id`` for this process's replay thread."""
        with self._lock:
            if self._thread is None or self._pid != os.getpid():
                self._jobs, self._pid = queue.Queue(), os.getpid()
                self._thread = threading.Thread(target=self._work, args=(self._jobs,), daemon=True)
                self._thread.name = "knock-sources-replay"
                self._thread.start()
            self._jobs.put((state, replay_id))

    def stop(self, timeout: float = 60.0) -> None:
        """Let the thread finish what it has queued and end (tests, shutdown)."""
        with self._lock:
            thread, jobs, self._thread = self._thread, self._jobs, None
        if thread is not None:
            jobs.put(None)
            thread.join(timeout)

    @staticmethod
    def _work(jobs: queue.Queue) -> None:
        while (job := jobs.get()) is not None:
            state, replay_id = job
            logs.start(replay_id=replay_id)
            try:
                with db.connection_context():
                    run(state, replay_id)
            except NotFound:
                pass
            except Exception:
                # It stays running; the sweeper resumes it once it is stale.
                log.exception("replay %s stopped", replay_id)


def cancel(replay: Replay) -> Replay:
    """Stop ``replay`` after the event it is on; a finished replay stays as it is."""
    Replay.update(state=REPLAY_CANCELLED, finished_at=utcnow(), updated_at=utcnow()).where(
        (Replay.id == replay.id) & Replay.state.in_(REPLAY_ACTIVE)
    ).execute()
    return _reload(replay.id)


def _reload(replay_id: int) -> Replay:
    """Read a replay again; ``NotFound`` if its source was deleted meanwhile (replays go with it)."""
    found = Replay.get_or_none(Replay.id == replay_id)
    if found is None:
        raise NotFound(f"Replay {replay_id} does not exist.", code="replay_missing")
    return found


def run(
    state: KnockSources,
    replay_id: int,
    *,
    seconds: float | None = None,
    progress: Callable[[int], None] | None = None,
) -> Replay:
    """Run ``replay_id`` from its cursor: to the end, or for ``seconds`` and then queue the rest.

    ``progress(n)`` is told of every ``n`` events handled. Infrastructure
    failures propagate (the job is retried, and resumes here); a replay
    whose source was deleted meanwhile raises ``NotFound``.
    """
    now = utcnow()
    if (
        not Replay.update(state=REPLAY_RUNNING, updated_at=now)
        .where((Replay.id == replay_id) & Replay.state.in_(REPLAY_ACTIVE))
        .execute()
    ):
        return _reload(replay_id)
    replay = _reload(replay_id)
    deadline = None if seconds is None else time.monotonic() + seconds
    with logs.bound(replay_id=replay_id):
        source_env = SourceEnvironment.get_by_id(replay.source_environment_id)
        receiving = snapshot(source_env, state.keyring)
        _finish_orphan(state, replay)
        try:
            while replay.done + replay.skipped < replay.total:
                page = list(
                    matching(source_env.id, replay.filter)
                    .where((EventLog.id > replay.cursor) & (EventLog.id <= replay.last_id))
                    .order_by(EventLog.id)
                    .limit(min(PAGE_SIZE, replay.total - replay.done - replay.skipped))
                )
                if not page:
                    break
                for original in page:
                    _step(state, receiving, replay, original)
                    if progress is not None:
                        progress(1)
                if deadline is not None and time.monotonic() > deadline:
                    enqueue(state, replay_id)
                    return replay
        except Superseded:
            return _reload(replay_id)
        Replay.update(state=REPLAY_COMPLETED, finished_at=utcnow(), updated_at=utcnow()).where(
            (Replay.id == replay_id) & (Replay.state == REPLAY_RUNNING)
        ).execute()
        log.info(
            "replay %s completed: %s replayed, %s failed, %s skipped",
            replay_id,
            replay.done,
            replay.failed,
            replay.skipped,
        )
    return _reload(replay_id)


def _step(state: KnockSources, receiving: ReceivingEnvironment, replay: Replay, original: EventLog) -> None:
    """Replay one event: write its copy with the cursor moved, then process the copy."""
    with db.atomic():
        new_id, rejected = _write_copy(state, receiving, original)
        _advance(replay, original.id, skipped=new_id is None)
    if new_id is None:
        state.metrics.replayed(SKIPPED)
        return
    status = REJECTED if rejected else _process(state, replay, new_id)
    _settle(state, replay, status)


def _write_copy(state, receiving, original: EventLog) -> tuple[int | None, bool]:
    """Write the new event for ``original``: ``(id, rejected again)``, ``(None, False)`` if not replayable."""
    if original.status != REJECTED:
        envelope = Envelope(original.headers or {}, b"", original.body, original.remote_ip, utcnow())
        verdict = verification.Verdict(original.verification_status, original.preprocess_output)
        headers = original.headers or {}
        new_id = eventlog.persist(
            receiving, envelope, headers, verdict, normalized=original.normalized, replay_of=original.id
        )
        return new_id, False
    try:
        envelope, verdict, normalized = reverification.reverify(state, receiving, original)
    except reverification.NotReplayable:
        return None, False
    except SourcesError as exc:
        raw = original.raw_excerpt.encode("utf-8")
        headers = original.headers or {}
        return eventlog.log_rejection(receiving, exc, headers, raw, original.remote_ip, replay_of=original.id), True
    fresh = Envelope(envelope.headers, envelope.raw_body, envelope.body, envelope.remote_ip, utcnow())
    headers = original.headers or {}
    return eventlog.persist(receiving, fresh, headers, verdict, normalized=normalized, replay_of=original.id), False


def _advance(replay: Replay, original_id: int, *, skipped: bool) -> None:
    """Move the cursor past ``original_id`` if nobody else did; raise ``Superseded`` otherwise."""
    values = {Replay.cursor: original_id, Replay.updated_at: utcnow()}
    if skipped:
        values[Replay.skipped] = Replay.skipped + 1
    moved = (
        Replay.update(values)
        .where((Replay.id == replay.id) & (Replay.cursor == replay.cursor) & (Replay.state == REPLAY_RUNNING))
        .execute()
    )
    if not moved:
        raise Superseded()
    replay.cursor = original_id
    replay.skipped += int(skipped)


def _process(state: KnockSources, replay: Replay, event_log_id: int) -> str | None:
    """Put a replayed event through the normal processing; return its final status."""
    return processing.process(
        event_log_id, state.registry, state.config, state.metrics, ignore_idempotency=replay.ignore_idempotency
    )


def _settle(state: KnockSources, replay: Replay, status: str | None) -> None:
    """Count a replayed event's outcome once it is processed."""
    state.metrics.replayed(status or SKIPPED)
    failed = status in (FAILED, REJECTED)
    Replay.update(done=Replay.done + 1, failed=Replay.failed + int(failed), updated_at=utcnow()).where(
        Replay.id == replay.id
    ).execute()
    replay.done += 1
    replay.failed += int(failed)


def _finish_orphan(state: KnockSources, replay: Replay) -> None:
    """Process the copy a crashed runner wrote but did not process (at most one: the cursor's)."""
    if not replay.cursor:
        return
    orphan = EventLog.get_or_none(
        (EventLog.replay_of == replay.cursor) & (EventLog.status == PENDING) & (EventLog.id > replay.last_id)
    )
    if orphan is not None:
        _settle(state, replay, _process(state, replay, orphan.id))


def resume_stale(state: KnockSources) -> int:
    """Resume replays that stopped moving (their runner died); return how many.

    Each is touched first, so that only one sweeper resumes it, and goes back
    to the replay queue.
    """
    stale_before = utcnow() - timedelta(seconds=state.config["REPLAY_STALE_SECONDS"])
    resumed = 0
    for replay in Replay.select(Replay.id).where(Replay.state.in_(REPLAY_ACTIVE) & (Replay.updated_at < stale_before)):
        if (
            not Replay.update(updated_at=utcnow())
            .where((Replay.id == replay.id) & (Replay.updated_at < stale_before))
            .execute()
        ):
            continue
        log.info("resuming replay %s", replay.id)
        enqueue(state, replay.id)
        resumed += 1
    return resumed


def count_by_state() -> dict:
    """Return the number of replays in each state (for the metrics)."""
    counts = dict.fromkeys(REPLAY_STATES, 0)
    for row in Replay.select(Replay.state, fn.COUNT(Replay.id).alias("n")).group_by(Replay.state).namedtuples():
        counts[row.state] = row.n
    return counts

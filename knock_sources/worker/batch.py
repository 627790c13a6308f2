"""One batch of events in one transaction: claim, resolve, deduplicate, run the mappings, write the outcomes.

``Batch`` is the unit ``processing.process_batch`` runs, with or without a
savepoint per event and per action; the rules it applies to each event
(scope, type, timestamp, mappings) are ``rules``'. Its own writes are few
and multi-row: one claim, one statement per few hundred idempotency keys,
the action logs, the actions' pending rows and the final statuses; the
known-event counters (``known_events``) and the metrics come after the commit.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from datetime import timedelta

from peewee import InterfaceError, OperationalError, ValuesList, chunked

from knock_sources.actions.base import ActionContext, insert_rows
from knock_sources.actions.runner import prefetch, prepare_all, run_prepared, save_action_logs
from knock_sources.observability import logs
from knock_sources.observability.metrics import NO_SOURCE, Recorder
from knock_sources.providers import Provider
from knock_sources.store import (
    FAILED,
    IDEMPOTENT,
    PENDING,
    PROCESSED,
    PROCESSING,
    SUCCESS,
    NeedsSavepoints,
    db,
    undone_if_unwritten,
    utcnow,
)
from knock_sources.store.control import Environment, EventLog, Mapping, Source, SourceEnvironment
from knock_sources.worker import idempotency, known_events
from knock_sources.worker.rules import identify_event, provider_for, resolve_timestamp, scope_of, select_mappings

log = logging.getLogger(__name__)


def mark_failed(event_log_id: int, exc: Exception) -> None:
    """Record an internal error on an event, nothing else of what processing it did."""
    EventLog.update(status=FAILED, error=_internal_error(exc), processed_at=utcnow()).where(
        EventLog.id == event_log_id
    ).execute()


def _internal_error(exc: Exception) -> str:
    return f"internal error: {type(exc).__name__}"


@dataclass
class _Event:
    """One event of a batch, and what processing it produced."""

    log: EventLog
    provider: Provider
    settings: dict
    scope: dict = field(default_factory=dict)
    #: Why its type could not be identified (it then runs nothing).
    problem: str | None = None
    #: ``(source environment id, event type, key)`` when its idempotency key is enforced.
    key: tuple | None = None
    #: Whether the batch already tried to claim its key (it is the first with that key).
    claim_tried: bool = False
    action_logs: list = field(default_factory=list)
    on_commit: list = field(default_factory=list)
    failed_internally: bool = False
    #: Where its rows start in the batch's ``inserts``, once it runs its mappings.
    inserts_from: int | None = None
    #: Its mappings, prepared (``runner.prepare_all``) before the batch's events run.
    prepared: list | None = None

    @property
    def source_env(self) -> SourceEnvironment:
        return self.log.source_environment

    def bound(self):
        """Bind the event to the lines logged while it is processed."""
        return logs.bound(
            event_log_id=self.log.id, source=self.source_env.source.key, environment=self.source_env.environment.slug
        )


class Batch:
    """The events of one transaction, processed in id order."""

    def __init__(self, registry, config, ignore_idempotency: bool, savepoints: bool):
        self.registry = registry
        self.ignore_idempotency = ignore_idempotency
        #: Whether each event and action runs in a savepoint (``_attempt``).
        self.savepoints = savepoints
        #: Without savepoints, the rows the events' actions left to the batch (``ActionContext.inserts``).
        self.inserts: list | None = None if savepoints else []
        self.window = timedelta(seconds=config["IDEMPOTENCY_WINDOW_SECONDS"])
        self.now = utcnow()
        self.events: list[_Event] = []
        #: Idempotency key -> the id of the event of this batch holding its claim.
        self.holders: dict[tuple, int] = {}
        #: The ids of the events whose claim is to be recorded as a success.
        self.succeeded: list[int] = []
        self.stored_mappings: dict[tuple[int, str], list] = {}
        #: What the batch's actions looked up (``ActionContext.lookups``).
        self.lookups: dict = {}

    def run(self, event_log_ids: list[int]) -> None:
        """Claim, resolve, deduplicate and run the batch's events, and write their outcomes."""
        if not self._claim(event_log_ids):
            return
        for event in self.events:
            with event.bound():
                self._guarded(event, self._resolve)
        identified = [event for event in self.events if not event.failed_internally and not event.problem]
        self.stored_mappings = Mapping.active_for_each(
            sorted({(event.source_env.id, event.log.event_type) for event in identified})
        )
        self._claim_keys(identified)
        self._prefetch(identified)
        for event in self.events:
            if not event.failed_internally:
                with event.bound():
                    self._guarded(event, self._execute)
        self._write()

    def _claim(self, event_log_ids: list[int]) -> bool:
        """Claim the batch's pending events and load them; ``False`` if none was pending.

        On PostgreSQL the claim is a row lock (``FOR UPDATE SKIP LOCKED``):
        another worker's events (a sweep queued them twice) are skipped, not
        waited for, and nothing is written, since the final status is written
        in this same transaction and an intermediate one would never be seen
        by anyone else; writing it would give every index of the log a new
        entry per event. On SQLite, where the first write takes the whole
        database, moving the events to ``processing`` is the claim.
        """
        query = (
            EventLog.select(EventLog, SourceEnvironment, Source, Environment)
            .join(SourceEnvironment)
            .join(Source)
            .switch(SourceEnvironment)
            .join(Environment)
            .order_by(EventLog.id)
        )
        if db.for_update:
            query = query.where(EventLog.id.in_(event_log_ids) & (EventLog.status == PENDING)).for_update(
                of=EventLog, skip_locked=True
            )
        else:
            pending = EventLog.id.in_(event_log_ids) & (EventLog.status == PENDING)
            if not EventLog.update(status=PROCESSING).where(pending).execute():
                return False
            query = query.where(EventLog.id.in_(event_log_ids) & (EventLog.status == PROCESSING))
        for event_log in query:
            settings = event_log.source_environment.settings or {}
            provider = provider_for(self.registry, event_log.source_environment.source.provider)
            self.events.append(_Event(event_log, provider, settings))
        return bool(self.events)

    def _guarded(self, event: _Event, step) -> None:
        """Run ``step(event)``; an internal error fails the event alone, with nothing of what it did.

        What the event wrote is in the savepoint ``_execute`` opened, which
        is rolled back by then; an idempotency claim made for it is let go,
        and only the error is written, as when an event was its own transaction.
        """
        try:
            step(event)
        except (OperationalError, InterfaceError, NeedsSavepoints):
            raise
        except Exception as exc:
            log.exception("processing event %s failed", event.log.id)
            event.failed_internally = True
            event.action_logs, event.on_commit = [], []
            # Its changes to the rows the batch looked up were undone.
            self.lookups.clear()
            if self.inserts is not None and event.inserts_from is not None:
                del self.inserts[event.inserts_from :]
            self._release(event)
            mark_failed(event.log.id, exc)
            event.log.status = FAILED
            event.log.error = _internal_error(exc)

    def _resolve(self, event: _Event) -> None:
        """Identify the event's type, time and idempotency key (no statement)."""
        event_log, settings = event.log, event.settings
        event.scope = scope_of(event_log)
        event_log.event_type, event.problem = identify_event(event.provider, settings, event.scope)
        event_log.occurred_at = resolve_timestamp(settings.get("timestamp_path"), event.scope, event_log.received_at)
        if event.problem:
            return
        key, dropped = idempotency.key_for(settings, event.scope)
        event_log.idempotency_key = key
        if dropped:
            _note(event_log, dropped)
        if key is not None and not self.ignore_idempotency:
            event.key = (event.source_env.id, event_log.event_type, key)

    def _claim_keys(self, events: list[_Event]) -> None:
        """Claim the key of the first event of the batch with each key, all before any action runs.

        Claimed up front, in key order, rather than event by event: a
        worker that waits for another's key then holds no lock the other
        may be waiting for.
        """
        first: dict[tuple, _Event] = {}
        for event in events:
            if event.key is not None and event.key not in first:
                first[event.key] = event
                event.claim_tried = True
        claims = [(*key, event.log.id) for key, event in first.items()]
        taken = idempotency.claim_each(claims, now=self.now, window=self.window) if claims else set()
        self.holders = {key: event.log.id for key, event in first.items() if event.log.id in taken}

    def _mappings(self, event: _Event) -> list:
        """The mappings the event runs (``select_mappings``)."""
        source_env, event_type = event.source_env, event.log.event_type
        stored = self.stored_mappings.get((source_env.id, event_type), [])
        return select_mappings(event.provider, source_env.id, event.settings, event_type, stored)

    def _prefetch(self, events: list[_Event]) -> None:
        """Prepare the mappings of the events sure to run, and let their actions look up what they read, at once.

        Preparing resolves and validates parameters, which reads nothing,
        so the events run what was prepared here. An event that fails to
        prepare is left to fail again when it runs, in turn, where its
        failure is handled; events that may turn out duplicates are not
        prepared (a duplicate runs nothing, and cannot fail).
        """
        by_environment: dict[int, tuple] = {}
        for event in events:
            if event.key is not None and self.holders.get(event.key) != event.log.id:
                continue
            try:
                event.prepared = prepare_all(self.registry, self._mappings(event), event.scope)
            except Exception:
                # It fails again, and is handled, when it runs.
                continue
            environment = event.source_env.environment
            by_environment.setdefault(environment.id, (environment, []))[1].extend(event.prepared)
        for environment, prepared in by_environment.values():
            prefetch(self.registry, environment, prepared, self.lookups)

    def _execute(self, event: _Event) -> None:
        """Run the event's mappings unless it is a duplicate, and set its final status.

        The mappings run in a savepoint, so that an internal error undoes
        them (and nothing of the other events), unless the batch runs
        without savepoints; an event that runs none writes nothing and
        needs none.
        """
        event_log = event.log
        if event.problem:
            # Logged for debugging, but an unidentified event runs nothing.
            _note(event_log, event.problem)
            _finish(event_log, PROCESSED)
            return
        if event.key is not None and not self._holds_key(event):
            _finish(event_log, IDEMPOTENT)
            return
        source_env = event.source_env
        prepared = event.prepared
        if prepared is None:
            prepared = prepare_all(self.registry, self._mappings(event), event.scope)
        context = ActionContext(
            environment=source_env.environment,
            event_log=event_log,
            registry=self.registry,
            on_commit=event.on_commit,
            lookups=self.lookups,
            savepoints=self.savepoints,
            inserts=self.inserts,
        )
        if self.inserts is not None:
            event.inserts_from = len(self.inserts)
        if not prepared:
            undone = contextlib.nullcontext()
        else:
            undone = db.atomic() if self.savepoints else undone_if_unwritten()
        with undone:
            event.action_logs = run_prepared(self.registry, prepared, context)
            failures = [entry for entry in event.action_logs if entry.status != SUCCESS]
            if failures:
                self._release(event)
                _note(event_log, f"{len(failures)} of {len(event.action_logs)} actions did not succeed")
                _finish(event_log, FAILED)
            else:
                if event.key is not None:
                    self.succeeded.append(event_log.id)
                _finish(event_log, PROCESSED)

    def _holds_key(self, event: _Event) -> bool:
        """Whether the event holds its key's claim, claiming it now if an earlier event of the batch let it go."""
        holder = self.holders.get(event.key)
        if holder is not None:
            return holder == event.log.id
        if event.claim_tried:
            return False
        # An earlier duplicate in this batch failed and released the key: this one may run, as a redelivery.
        event.claim_tried = True
        if not idempotency.claim(*event.key, event.log.id, now=self.now, window=self.window):
            return False
        self.holders[event.key] = event.log.id
        return True

    def _release(self, event: _Event) -> None:
        """Let the event's key go (it did not succeed), so that a later duplicate runs."""
        if event.key is not None and self.holders.get(event.key) == event.log.id:
            idempotency.release(event.log.id)
            del self.holders[event.key]

    def _write(self) -> None:
        """Write the batch's action logs, final statuses and successful claims: a few statements in all."""
        save_action_logs([entry for event in self.events for entry in event.action_logs])
        if self.inserts:
            insert_rows(self.inserts)
        finished = [event.log for event in self.events if not event.failed_internally]
        for chunk in chunked(finished, EVENTS_PER_STATEMENT):
            values = ValuesList(
                [
                    tuple(column.db_value(getattr(event_log, column.name)) for column in _FINISHED)
                    for event_log in chunk
                ],
                alias="finished",
            )
            # VALUES columns are named column1, column2... on PostgreSQL and SQLite alike.
            update = {column: getattr(values.c, f"column{index + 2}") for index, column in enumerate(_FINISHED[1:])}
            EventLog.update(update).from_(values).where(EventLog.id == values.c.column1).execute()
        idempotency.record_success(self.succeeded, now=utcnow(), window=self.window)

    def after_commit(self, metrics: Recorder) -> dict[int, str]:
        """Count the committed outcomes, update the known events, run the actions' after-commit steps."""
        for event in self.events:
            count_outcome(metrics, event.log, event.log.status, event.action_logs)
        known_events.remember(
            [event.log for event in self.events if not event.failed_internally and not event.problem], self.now
        )
        for event in self.events:
            for step in event.on_commit:
                step()
        return {event.log.id: event.log.status for event in self.events}


#: The columns processing sets on an event, its id first.
_FINISHED = (
    EventLog.id,
    EventLog.status,
    EventLog.error,
    EventLog.event_type,
    EventLog.occurred_at,
    EventLog.processed_at,
    EventLog.idempotency_key,
)
#: Rows per multi-row UPDATE: well under SQLite's and PostgreSQL's limits on bound parameters.
EVENTS_PER_STATEMENT = 200


def count_outcome(metrics: Recorder, event_log, status: str, action_logs: list) -> None:
    """Count a committed outcome: the event's status, its latency and its actions."""
    if event_log is None:
        metrics.event_processed(NO_SOURCE, NO_SOURCE, status, None)
        return
    source_env = event_log.source_environment
    latency = (utcnow() - event_log.received_at).total_seconds()
    metrics.event_processed(source_env.source.key, source_env.environment.slug, status, latency)
    for action_log in action_logs:
        metrics.action(action_log.action_type, action_log.status)


def _note(event_log, text: str) -> None:
    """Add ``text`` to the event's error, after what ingestion recorded there (a script's error, a note)."""
    event_log.error = f"{event_log.error}; {text}" if event_log.error else text


def _finish(event_log, status: str) -> None:
    """Set the event's final status; the batch writes it with the others'."""
    event_log.status = status
    event_log.processed_at = utcnow()

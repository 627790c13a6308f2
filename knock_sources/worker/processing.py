"""The worker-side pipeline (docs/architecture.md section 1, steps 7-12).

``process_batch(event_log_ids)`` claims the pending events among the ids,
resolves each one's type, timestamp and idempotency key, runs its active
mappings in Knock's order and records the outcomes, the whole batch in one
transaction of a few statements plus each action's own; ``process`` is a
batch of one. Failures are written to the events, never raised into the
job, except database outages, which leave the events pending for a retry.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from peewee import EXCLUDED, InterfaceError, OperationalError, ValuesList, chunked

from knock_sources.actions.base import ActionContext, insert_rows
from knock_sources.actions.runner import prefetch, prepare_all, run_prepared, save_action_logs
from knock_sources.observability import logs
from knock_sources.observability.metrics import NO_SOURCE, Recorder
from knock_sources.paths import MISSING, resolve
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
    unstorable,
    utcnow,
)
from knock_sources.store.control import Environment, EventLog, KnownEvent, Mapping, Source, SourceEnvironment
from knock_sources.worker import idempotency

log = logging.getLogger(__name__)

UNKNOWN_EVENT_TYPE = "unknown"
MAX_EVENT_TYPE_LENGTH = 255
# Unix timestamps above this are taken as milliseconds (year 5138 in seconds).
MILLISECONDS_THRESHOLD = 10**11


def process(event_log_id: int, registry, config, metrics: Recorder, *, ignore_idempotency: bool = False) -> str | None:
    """Process one event if it is still pending; return its final status (``None``: not pending).

    A batch of one (``process_batch``): a replay's events and embedded mode's.
    """
    return process_batch([event_log_id], registry, config, metrics, ignore_idempotency=ignore_idempotency).get(
        event_log_id
    )


def process_batch(
    event_log_ids: list[int], registry, config, metrics: Recorder, *, ignore_idempotency: bool = False
) -> dict[int, str]:
    """Process the events among ``event_log_ids`` that are still pending; return their final statuses by id.

    The batch is one transaction and one durable commit: a worker that dies
    half-way leaves every event of it pending rather than half-applied. An
    internal error undoes that event alone, which is marked failed: the
    batch runs first without savepoints (a subtransaction per event and per
    action would cost round trips, and PostgreSQL's per-backend cache of
    subtransaction ids overflows past 64), and if an event or an action
    fails after writing, it is rolled back and run again with a savepoint
    per event and per action (``_attempt``). The claim (``pending`` to ``processing``)
    skips events another worker holds, and idempotency claims hold their
    locks until the commit, so a concurrent duplicate waits, then finds its
    key taken. A deadlock or serialization failure between two workers'
    batches rolls this one back and processes its events one by one, as
    does any failure of the batch's own writes. Outcomes are counted, and
    after-commit steps run, once committed. ``ignore_idempotency`` (a replay
    that asks for it) runs the events even if their keys were seen.
    """
    try:
        return _attempt(event_log_ids, registry, config, metrics, ignore_idempotency, savepoints=False)
    except NeedsSavepoints as exc:
        # Rolled back: nothing of the first attempt is kept.
        log.info("a batch of %s events is run again with savepoints: an event failed (%s)", len(event_log_ids), exc)
        return _attempt(event_log_ids, registry, config, metrics, ignore_idempotency, savepoints=True)


def _attempt(
    event_log_ids: list[int], registry, config, metrics: Recorder, ignore_idempotency: bool, *, savepoints: bool
) -> dict[int, str]:
    """Process the batch in one transaction, with a savepoint per event and per action or without any.

    Without savepoints nothing can be undone alone: an event that fails
    after writing raises ``NeedsSavepoints`` out of the transaction, which
    rolls it back, for the caller to run the batch again with them, as does
    any other failure but the database's (the batch's own writes failing,
    say), which is then handled as it always was. Events and actions that
    fail before writing are finished as they would be with savepoints, as
    there is nothing to undo.
    """
    batch = _Batch(registry, config, ignore_idempotency, savepoints)
    try:
        with db.atomic():
            batch.run(event_log_ids)
    except NeedsSavepoints:
        raise
    except (OperationalError, InterfaceError) as exc:
        if len(event_log_ids) > 1 and _is_conflict(exc):
            log.warning(
                "a batch of %s events conflicted with another (%s); processing them one by one", len(event_log_ids), exc
            )
            return _one_by_one(event_log_ids, registry, config, metrics, ignore_idempotency)
        # Rolled back, so the events are pending again; the caller says so.
        raise
    except Exception as exc:
        if not savepoints:
            # Whatever failed (the batch's own writes, say) is handled as it always was, with savepoints.
            raise NeedsSavepoints(f"{type(exc).__name__} in the batch") from exc
        if len(event_log_ids) > 1:
            log.exception("a batch of %s events failed; processing them one by one", len(event_log_ids))
            return _one_by_one(event_log_ids, registry, config, metrics, ignore_idempotency)
        [event_log_id] = event_log_ids
        log.exception("processing event %s failed", event_log_id)
        _mark_failed(event_log_id, exc)
        _count(metrics, batch.events[0].log if batch.events else None, FAILED, [])
        return {event_log_id: FAILED}
    return batch.after_commit(metrics)


def _one_by_one(event_log_ids, registry, config, metrics: Recorder, ignore_idempotency: bool) -> dict[int, str]:
    """Process each event as a batch of its own; one that the database fails stays pending, the others go on."""
    statuses: dict[int, str] = {}
    for event_log_id in event_log_ids:
        try:
            statuses.update(
                process_batch([event_log_id], registry, config, metrics, ignore_idempotency=ignore_idempotency)
            )
        except (OperationalError, InterfaceError) as exc:
            # Rolled back and still pending: the sweeper hands it over again.
            log.warning("event %s stays pending: %s", event_log_id, exc)
    return statuses


#: SQLSTATEs of a transaction PostgreSQL aborted to resolve a conflict with another one.
CONFLICT_SQLSTATES = frozenset({"40P01", "40001"})


def _is_conflict(exc: Exception) -> bool:
    """Whether ``exc`` is a deadlock or a serialization failure (the batch may succeed event by event)."""
    return getattr(getattr(exc, "orig", None), "pgcode", None) in CONFLICT_SQLSTATES


def _mark_failed(event_log_id: int, exc: Exception) -> None:
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


class _Batch:
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
        """Move the batch's pending events to ``processing`` and load them; ``False`` if none was pending."""
        pending = EventLog.select(EventLog.id).where(EventLog.id.in_(event_log_ids) & (EventLog.status == PENDING))
        if db.for_update:
            # Another worker's events (a sweep queued them twice) are skipped, not waited for.
            pending = pending.order_by(EventLog.id).for_update(skip_locked=True)
        if not EventLog.update(status=PROCESSING).where(EventLog.id.in_(pending)).execute():
            return False
        # Only this transaction has events in ``processing``: the final status is written in the same one.
        query = (
            EventLog.select(EventLog, SourceEnvironment, Source, Environment)
            .join(SourceEnvironment)
            .join(Source)
            .switch(SourceEnvironment)
            .join(Environment)
            .where(EventLog.id.in_(event_log_ids) & (EventLog.status == PROCESSING))
            .order_by(EventLog.id)
        )
        for event_log in query:
            settings = event_log.source_environment.settings or {}
            provider = provider_for(self.registry, event_log.source_environment.source.provider)
            self.events.append(_Event(event_log, provider, settings))
        return True

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
            _mark_failed(event.log.id, exc)
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
            event.action_logs = run_prepared(self.registry, prepared, event.scope, context)
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
            _count(metrics, event.log, event.log.status, event.action_logs)
        _remember_event_types(
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


def _count(metrics: Recorder, event_log, status: str, action_logs: list) -> None:
    """Count a committed outcome: the event's status, its latency and its actions."""
    if event_log is None:
        metrics.event_processed(NO_SOURCE, NO_SOURCE, status, None)
        return
    source_env = event_log.source_environment
    latency = (utcnow() - event_log.received_at).total_seconds()
    metrics.event_processed(source_env.source.key, source_env.environment.slug, status, latency)
    for action_log in action_logs:
        metrics.action(action_log.action_type, action_log.status)


def scope_of(event_log) -> dict:
    """Return the ``{body, headers, preprocess}`` scope that paths resolve against."""
    return make_scope(event_log.body, event_log.headers, event_log.preprocess_output, event_log.normalized)


def make_scope(
    body: dict | None, headers: dict | None, preprocess: dict | None, normalized: dict | None = None
) -> dict:
    """Return the scope paths resolve against: ``body``, ``headers`` (lower-cased) and ``preprocess``.

    A Segment-style event's normalized form (``event``, ``user_id``,
    ``data``) overlays its body, so that Knock's legacy paths
    (``data.<key>`` for ``properties.<key>``) and raw paths
    (``properties.<key>``, ``userId``) both resolve.
    """
    body = body or {}
    if normalized:
        body = {**body, **normalized}
    return {"body": body, "headers": headers or {}, "preprocess": preprocess or {}}


def select_mappings(provider, source_environment_id: int, settings: dict, event_type: str, stored=None) -> list:
    """Return the mappings an event runs: the active stored ones, then the provider's implicit ones.

    Implicit mappings (a CDP source's "handle identifies") are unsaved
    ``Mapping`` rows: they run and are logged like the others, with no
    mapping id. Processing and rehearsal both select through here;
    ``stored`` is the active stored mappings when the caller loaded them
    already (a batch loads all of its events' at once).
    """
    implicit = [
        Mapping(
            source_environment=source_environment_id,
            event_type=event_type,
            action_type=default.action_type,
            action_parameters=default.action_parameters,
        )
        for default in provider.implicit_mappings(settings, event_type)
    ]
    if stored is None:
        pair = (source_environment_id, event_type)
        stored = Mapping.active_for_each([pair])[pair]
    return [*stored, *implicit]


#: Stands in for a provider whose plugin is gone: its settings still name
#: the paths, and its events must still finish rather than fail internally.
_PLAIN_PROVIDER = Provider()


def provider_for(registry, slug: str) -> Provider:
    """Return the installed provider ``slug``, or a plain ``Provider`` when it is not installed."""
    return registry.providers.get(slug) or _PLAIN_PROVIDER


def identify_event(provider, settings: dict, scope: dict) -> tuple[str, str | None]:
    """Return ``(event type, None)``, or ``("unknown", why)`` when the event cannot be identified.

    The event type path must resolve to a string (a number is taken as its
    text) of at most 255 characters that a database can store: a NUL or a
    lone surrogate from a payload is named, not stored.
    """
    path = settings.get("event_type_path")
    if path:
        value = resolve(path, scope)
    else:
        value = provider.event_type(lambda p: resolve(p, scope) if p else MISSING)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value:
        return UNKNOWN_EVENT_TYPE, "the event type path did not resolve to a string"
    if len(value) > MAX_EVENT_TYPE_LENGTH:
        return UNKNOWN_EVENT_TYPE, f"the event type is longer than {MAX_EVENT_TYPE_LENGTH} characters"
    problem = unstorable(value)
    if problem:
        return UNKNOWN_EVENT_TYPE, f"the event type holds {problem}, which cannot be stored"
    return value, None


def resolve_timestamp(path: str | None, scope: dict, default: datetime) -> datetime:
    """Return the event time from ISO-8601 or unix seconds; ``default`` when unusable."""
    if not path:
        return default
    value = resolve(path, scope)
    try:
        if isinstance(value, str):
            if value.strip().lstrip("-").replace(".", "", 1).isdigit():
                value = float(value)
            else:
                parsed = datetime.fromisoformat(value.strip())
                if parsed.tzinfo is not None:
                    parsed = parsed.astimezone(timezone.utc).replace(tzinfo=None)
                return parsed
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if abs(value) >= MILLISECONDS_THRESHOLD:
                value = value / 1000
            return datetime.fromtimestamp(value, timezone.utc).replace(tzinfo=None)
    except (ValueError, OverflowError, OSError):
        pass
    return default


def _note(event_log, text: str) -> None:
    """Add ``text`` to the event's error, after what ingestion recorded there (a script's error, a note)."""
    event_log.error = f"{event_log.error}; {text}" if event_log.error else text


def _finish(event_log, status: str) -> None:
    """Set the event's final status; the batch writes it with the others'."""
    event_log.status = status
    event_log.processed_at = utcnow()


def _remember_event_types(event_logs: list, now: datetime) -> None:
    """Count the batch's events per known event type and keep each type's last sample, in one statement.

    After the commit, so that concurrent workers do not queue on a counter
    row for a whole batch; in type order, so that two workers' upserts
    take those rows' locks in the same order.
    """
    latest: dict[tuple[int, str], tuple[int, dict]] = {}
    for event_log in event_logs:
        pair = (event_log.source_environment_id, event_log.event_type)
        count = latest.get(pair, (0, None))[0]
        latest[pair] = (count + 1, {"body": event_log.body, "headers": event_log.headers})
    if not latest:
        return
    rows = [
        {
            "source_environment": source_env_id,
            "event_type": event_type,
            "count": count,
            "first_received_at": now,
            "last_received_at": now,
            "sample_payload": sample,
        }
        for (source_env_id, event_type), (count, sample) in sorted(latest.items(), key=lambda item: item[0])
    ]
    try:
        KnownEvent.insert_many(rows).on_conflict(
            conflict_target=[KnownEvent.source_environment, KnownEvent.event_type],
            update={
                KnownEvent.count: KnownEvent.count + EXCLUDED.count,
                KnownEvent.last_received_at: EXCLUDED.last_received_at,
                KnownEvent.sample_payload: EXCLUDED.sample_payload,
            },
        ).as_rowcount().execute()
    except (OperationalError, InterfaceError) as exc:
        # The events are committed: only the counters of the event types page miss them.
        log.warning("the known event types of %s events were not counted: %s", len(event_logs), exc)

"""The worker-side pipeline (docs/architecture.md section 1, steps 7-12).

``process(event_log_id)`` claims a pending event, resolves its type,
timestamp and idempotency key, runs the active mappings in Knock's order and
records the outcome. Failures are written to the event, never raised into
the job, except database outages, which RQ retries.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from functools import partial

from peewee import InterfaceError, OperationalError

from knock_sources.actions.base import ActionContext
from knock_sources.actions.runner import run_mappings
from knock_sources.observability import logs
from knock_sources.observability.metrics import NO_SOURCE, Recorder
from knock_sources.paths import MISSING, resolve
from knock_sources.providers import Provider
from knock_sources.store import FAILED, IDEMPOTENT, PENDING, PROCESSED, PROCESSING, SUCCESS, db, unstorable, utcnow
from knock_sources.store.control import Environment, EventLog, KnownEvent, Mapping, Source, SourceEnvironment
from knock_sources.worker import idempotency

log = logging.getLogger(__name__)

UNKNOWN_EVENT_TYPE = "unknown"
MAX_EVENT_TYPE_LENGTH = 255
# Unix timestamps above this are taken as milliseconds (year 5138 in seconds).
MILLISECONDS_THRESHOLD = 10**11


def process(event_log_id: int, registry, config, metrics: Recorder, *, ignore_idempotency: bool = False) -> str | None:
    """Process the event if it is still pending; return its final status (``None``: not pending).

    The whole event is one transaction: one durable commit instead of one
    per statement, and a worker that dies half-way leaves the event pending
    rather than half-applied. The claim (``pending`` to ``processing``) and
    an idempotency claim hold their locks until the commit, so a concurrent
    worker handling the same event or a duplicate waits, then finds it done.
    ``ignore_idempotency`` (a replay that asks for it) runs the event even if
    its key was seen. Outcomes are counted once committed.
    """
    now = utcnow()
    on_commit: list = []
    event_log = None
    action_logs: list = []
    try:
        with db.atomic():
            claimed = (
                EventLog.update(status=PROCESSING)
                .where((EventLog.id == event_log_id) & (EventLog.status == PENDING))
                .execute()
            )
            if not claimed:
                return None
            event_log = (
                EventLog.select(EventLog, SourceEnvironment, Source, Environment)
                .join(SourceEnvironment)
                .join(Source)
                .switch(SourceEnvironment)
                .join(Environment)
                .where(EventLog.id == event_log_id)
                .get()
            )
            source_env = event_log.source_environment
            with logs.bound(
                event_log_id=event_log_id, source=source_env.source.key, environment=source_env.environment.slug
            ):
                action_logs = _process(event_log, registry, config, now, on_commit, ignore_idempotency)
    except (OperationalError, InterfaceError):
        # Rolled back, so the event is pending again; the job is retried.
        raise
    except Exception as exc:
        log.exception("processing event %s failed", event_log_id)
        EventLog.update(status=FAILED, error=f"internal error: {type(exc).__name__}", processed_at=utcnow()).where(
            EventLog.id == event_log_id
        ).execute()
        _count(metrics, event_log, FAILED, [])
        return FAILED
    _count(metrics, event_log, event_log.status, action_logs)
    for step in on_commit:
        step()
    return event_log.status


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


def select_mappings(provider, source_environment_id: int, settings: dict, event_type: str) -> list:
    """Return the mappings an event runs: the active stored ones, then the provider's implicit ones.

    Implicit mappings (a CDP source's "handle identifies") are unsaved
    ``Mapping`` rows: they run and are logged like the others, with no
    mapping id. Processing and rehearsal both select through here.
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
    return [*Mapping.active_for(source_environment_id, event_type), *implicit]


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


def _process(event_log, registry, config, now: datetime, on_commit: list, ignore_idempotency: bool) -> list:
    """Run the event's mappings and set its final status; return its action logs."""
    source_env = event_log.source_environment
    settings = source_env.settings or {}
    provider = provider_for(registry, source_env.source.provider)
    scope = scope_of(event_log)
    event_log.event_type, problem = identify_event(provider, settings, scope)
    event_log.occurred_at = resolve_timestamp(settings.get("timestamp_path"), scope, event_log.received_at)
    if problem:
        # Logged for debugging, but an unidentified event runs nothing.
        _note(event_log, problem)
        _finish(event_log, PROCESSED)
        return []
    # A counter every event of this type updates: after the commit, so that
    # concurrent workers do not queue on its row lock for a whole event.
    on_commit.append(partial(_remember_event_type, source_env, event_log, now))

    key, dropped = idempotency.key_for(settings, scope)
    event_log.idempotency_key = key
    if dropped:
        _note(event_log, dropped)
    if ignore_idempotency:
        key = None
    window = timedelta(seconds=config["IDEMPOTENCY_WINDOW_SECONDS"])
    if key is not None and not idempotency.claim(
        source_env.id,
        event_log.event_type,
        key,
        event_log.id,
        now=now,
        window=window,
    ):
        _finish(event_log, IDEMPOTENT)
        return []

    mappings = select_mappings(provider, source_env.id, settings, event_log.event_type)
    context = ActionContext(
        environment=source_env.environment, event_log=event_log, registry=registry, on_commit=on_commit
    )
    action_logs = run_mappings(registry, mappings, scope, context)
    failures = [entry for entry in action_logs if entry.status != SUCCESS]
    if failures:
        idempotency.release(event_log.id)
        _note(event_log, f"{len(failures)} of {len(action_logs)} actions did not succeed")
        _finish(event_log, FAILED)
    else:
        if key is not None:
            idempotency.record_success(event_log.id, now=utcnow(), window=window)
        _finish(event_log, PROCESSED)
    return action_logs


def _note(event_log, text: str) -> None:
    """Add ``text`` to the event's error, after what ingestion recorded there (a script's error, a note)."""
    event_log.error = f"{event_log.error}; {text}" if event_log.error else text


def _finish(event_log, status: str) -> None:
    event_log.status = status
    event_log.processed_at = utcnow()
    # Only what processing set: rewriting the body and headers would cost
    # as much as the rest of the event.
    event_log.save(only=event_log.dirty_fields)


def _remember_event_type(source_env, event_log, now: datetime) -> None:
    sample = {"body": event_log.body, "headers": event_log.headers}
    KnownEvent.insert(
        source_environment=source_env.id,
        event_type=event_log.event_type,
        count=1,
        first_received_at=now,
        last_received_at=now,
        sample_payload=sample,
    ).on_conflict(
        conflict_target=[KnownEvent.source_environment, KnownEvent.event_type],
        update={
            KnownEvent.count: KnownEvent.count + 1,
            KnownEvent.last_received_at: now,
            KnownEvent.sample_payload: sample,
        },
    ).execute()

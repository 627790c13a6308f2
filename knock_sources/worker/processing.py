"""The worker-side pipeline (docs/architecture.md section 1, steps 7-12).

``process_batch(event_log_ids)`` claims the pending events among the ids,
resolves each one's type, timestamp and idempotency key, runs its active
mappings in Knock's order and records the outcomes, the whole batch in one
transaction of a few statements plus each action's own (``batch.Batch``,
under the rules of ``rules``); ``process`` is a batch of one. Here is what
happens when a batch fails: run again with savepoints, one event at a time,
or left pending. Failures are written to the events, never raised into the
job, except database outages, which leave the events pending for a retry.
"""

from __future__ import annotations

import logging

from peewee import InterfaceError, OperationalError

from knock_sources.observability.metrics import Recorder
from knock_sources.store import FAILED, NeedsSavepoints, db
from knock_sources.worker.batch import Batch, count_outcome, mark_failed

log = logging.getLogger(__name__)


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
    per event and per action (``_attempt``). The claim (``Batch._claim``: a
    row lock on PostgreSQL, ``pending`` to ``processing`` on SQLite) skips
    events another worker holds, and idempotency claims hold their
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
    batch = Batch(registry, config, ignore_idempotency, savepoints)
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
        mark_failed(event_log_id, exc)
        count_outcome(metrics, batch.events[0].log if batch.events else None, FAILED, [])
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

"""Which stored events a replay takes, and the dry run that shows what replaying them would do now.

A filter (``ReplayFilterSchema``) names statuses, event types, a
received-at range or explicit ids; ``normalise_filter`` stores it with its
defaults, ``matching`` is its query and ``count`` its capped size. The dry
run counts the matching events and, for a page of them, reports what a
replay would do now, from the pieces a real run uses
(``reverification.reverify`` and ``rehearsal.plan_event``), so that the two
cannot disagree. The replay itself is ``control.replay``'s.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from knock_sources.control import rehearsal, reverification
from knock_sources.errors import SourcesError
from knock_sources.ingest.cache import ReceivingEnvironment, snapshot
from knock_sources.store import FAILED, REJECTED, REPLAYABLE_STATUSES, to_utc_naive
from knock_sources.store.control import EventLog, SourceEnvironment
from knock_sources.worker import rules

if TYPE_CHECKING:
    from knock_sources.state import KnockSources


def normalise_filter(loaded: dict) -> dict:
    """Return a validated filter (``ReplayFilterSchema``) as stored: JSON values, defaults applied.

    Without statuses a replay takes failed events, the dead letter; with
    explicit ids, any replayable status.
    """
    ids = sorted(set(loaded.get("ids") or ()))
    stored = {"statuses": list(loaded.get("statuses") or (REPLAYABLE_STATUSES if ids else (FAILED,)))}
    if loaded.get("events"):
        stored["events"] = list(loaded["events"])
    for name in ("starting_at", "ending_at"):
        if loaded.get(name) is not None:
            stored[name] = to_utc_naive(loaded[name]).isoformat()
    if ids:
        stored["ids"] = ids
    return stored


def matching(source_env_id: int, filter_: dict):
    """The query of the events ``filter_`` selects in a source environment (unordered)."""
    query = EventLog.select().where(
        (EventLog.source_environment == source_env_id) & EventLog.status.in_(filter_["statuses"])
    )
    if filter_.get("events"):
        query = query.where(EventLog.event_type.in_(filter_["events"]))
    if filter_.get("starting_at"):
        query = query.where(EventLog.received_at >= filter_["starting_at"])
    if filter_.get("ending_at"):
        query = query.where(EventLog.received_at <= filter_["ending_at"])
    if filter_.get("ids"):
        query = query.where(EventLog.id.in_(filter_["ids"]))
    return query


def count(source_env_id: int, filter_: dict, cap: int) -> tuple[int, bool]:
    """Return how many events match, counting no further than ``cap``, and whether there are more."""
    counted = matching(source_env_id, filter_).select(EventLog.id).limit(cap + 1).count()
    return min(counted, cap), counted > cap


def dry_run(state: KnockSources, source_env: SourceEnvironment, filter_: dict, ignore_idempotency: bool, limit: int):
    """Return the number of matching events and what replaying the first ``limit`` of them would do now."""
    total, capped = count(source_env.id, filter_, state.config["REPLAY_MAX_EVENTS"])
    receiving = snapshot(source_env, state.keyring)
    sample = matching(source_env.id, filter_).order_by(EventLog.id).limit(limit)
    return {
        "dry_run": True,
        "count": total,
        "capped": capped,
        "events": [_plan(state, receiving, original, ignore_idempotency) for original in sample],
    }


def _plan(state: KnockSources, receiving: ReceivingEnvironment, original: EventLog, ignore_idempotency: bool):
    entry = {"id": str(original.id), "event": original.event_type, "status": original.status}
    errors: list = []
    if original.status == REJECTED:
        try:
            checked = reverification.reverify(state, receiving, original)
        except reverification.NotReplayable as exc:
            return {**entry, "replayable": False, "rejected": exc.reason, "errors": [exc.problem]}
        except SourcesError as exc:
            problem = {"field": "verification", "message": exc.detail or exc.message}
            return {**entry, "replayable": True, "rejected": exc.code, "errors": [problem]}
        envelope, verdict, normalized = checked
        if verdict.error:
            errors.append({"field": "preprocess_script", "message": verdict.error})
        scope = rules.make_scope(envelope.body, dict(envelope.headers), verdict.preprocess_output, normalized)
    else:
        scope = rules.scope_of(original)
    plan = rehearsal.plan_event(
        state, receiving, receiving.id, scope, original.received_at, ignore_idempotency=ignore_idempotency
    )
    plan["errors"] = errors + plan["errors"]
    return {**entry, "replayable": True, "rejected": None, **plan}

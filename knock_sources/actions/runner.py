"""Run an event's mappings: resolve, validate, execute in order, log each.

A failing action never stops the others and never raises into the job:
every outcome becomes an ``ActionLog`` with status ``success``, ``skipped``
(a required value is missing) or ``error`` (bad type, or the action failed).
Only a failing database raises: the event is then retried as a whole.
"""

from __future__ import annotations

import logging
from functools import cache, partial

from marshmallow import EXCLUDE, Schema, ValidationError
from peewee import InterfaceError, OperationalError

from knock_sources.actions.base import insert_rows, order_key
from knock_sources.errors import ActionError
from knock_sources.paths import MISSING, json_type, resolve_parameter
from knock_sources.store import (
    ERROR,
    SKIPPED,
    SUCCESS,
    NeedsSavepoints,
    find_unstorable,
    undone_if_unwritten,
    undone_on_error,
)
from knock_sources.store.control import ActionLog

log = logging.getLogger(__name__)


def in_order(mappings) -> list:
    """Return ``mappings`` in Knock's fixed action order (then by id; unsaved implicit mappings first)."""
    return sorted(mappings, key=lambda mapping: (order_key(mapping.action_type), mapping.id or 0))


def run_prepared(registry, prepared: list, context) -> list[ActionLog]:
    """Run mappings as ``prepare_all`` prepared them, in Knock's order; return their action logs.

    Prepared first, all of them, so that a batch can ``prefetch`` what its
    events' actions read.
    """
    return [run_mapping(registry, mapping, checked, context) for mapping, checked in prepared]


def prepare_all(registry, mappings, scope: dict) -> list[tuple]:
    """Return ``(mapping, prepare's (status, payload, error))`` for each of ``mappings``, in Knock's order."""
    return [(mapping, prepare(registry, mapping, scope)) for mapping in in_order(mappings)]


def prefetch(registry, environment, prepared: list, lookups: dict) -> None:
    """Let the actions about to run ``prepared`` mappings look up at once what they will read (``Action.prefetch``)."""
    payloads: dict[str, list] = {}
    for mapping, (status, payload, _) in prepared:
        if status == SUCCESS:
            payloads.setdefault(mapping.action_type, []).append(payload)
    for action_type, of_type in payloads.items():
        registry.actions[action_type].prefetch(environment, of_type, lookups)


def prepare(registry, mapping, scope: dict) -> tuple[str, dict | None, str | None]:
    """Resolve and validate one mapping's parameters: ``(status, payload, error)`` before execution."""
    action = registry.actions.get(mapping.action_type)
    if action is None:
        return ERROR, None, f"unknown action type {mapping.action_type!r}"
    return check_parameters(action, mapping.action_parameters, scope)


def plan(registry, mappings, scope: dict) -> list[dict]:
    """Return what each mapping would do, in execution order, without executing anything.

    The dry run of ``run_prepared``: the same order and the same resolution
    and validation, so a rehearsal or a replay's dry run cannot disagree with
    a real run about which actions would run with which payloads.
    """
    planned = []
    for mapping in in_order(mappings):
        status, payload, error = prepare(registry, mapping, scope)
        planned.append(
            {
                "action_type": mapping.action_type,
                "action_parameters": mapping.action_parameters,
                "action_payload": payload,
                "action_status": status,
                "error": error,
            }
        )
    return planned


def resolve_parameters(action, configured: dict, scope: dict) -> tuple[dict, dict]:
    """Return ``(values, origins)`` for the configured parameters of ``action``."""
    values, origins = {}, {}
    for name, spec in (configured or {}).items():
        resolved = resolve_parameter(spec, scope, literal=name in action.literal_params)
        origins[name] = resolved.origin
        if resolved.value is not MISSING:
            values[name] = resolved.value
    return values, origins


def check_parameters(action, configured: dict, scope: dict) -> tuple[str, dict, str | None]:
    """Resolve and validate; return ``(status, payload, error)`` before execution.

    ``status`` is ``success`` when the action may run with ``payload``.
    """
    values, origins = resolve_parameters(action, configured, scope)
    schema = schema_for(action.params_schema)
    missing = [name for name, field in schema.fields.items() if field.required and values.get(name) is None]
    if missing:
        error = "; ".join(
            f"{name}: required value is missing ({origins.get(name, 'not configured')})" for name in missing
        )
        return SKIPPED, values, error
    unstorable = find_unstorable(values)
    if unstorable:
        # A payload may hold anything JSON can; the data plane stores only what a database can.
        (name, *inside), problem = unstorable
        where = name + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in inside)
        return ERROR, values, f"{where}: holds {problem}, which cannot be stored ({origins.get(name, 'value')})"
    try:
        return SUCCESS, schema.load(values, unknown=EXCLUDE), None
    except ValidationError as exc:
        problems = [
            f"{name}{where}: {message} ({origins.get(name, 'value')}, got {json_type(given)})"
            for name, where, message, given in _flatten(exc.messages, values)
        ]
        return ERROR, values, "; ".join(problems)


@cache
def schema_for(schema_class: type[Schema]) -> Schema:
    """Return the one instance of ``schema_class``: building one deep-copies its fields, loading changes none."""
    return schema_class()


def run_mapping(registry, mapping, prepared: tuple, context) -> ActionLog:
    """Run one mapping as ``prepare`` prepared it and return its ``ActionLog``, unsaved.

    ``save_action_logs`` writes a batch's at once.
    """
    action = registry.actions.get(mapping.action_type)
    result = None
    status, payload, error = prepared
    if status == SUCCESS:
        try:
            # Undone alone if it fails; kept for its event's savepoint to release if it succeeds.
            with undone_on_error() if context.savepoints else undone_if_unwritten():
                result = action.execute(context, payload)
        except ActionError as exc:
            _forget_lookups(context)
            status, error = ERROR, f"{exc.code}: {exc}"
        except (OperationalError, InterfaceError, NeedsSavepoints):
            # The database failed (it is down, or chose this transaction as a
            # deadlock's victim), not the action: the event is retried, not
            # failed; or the batch is run again with savepoints.
            raise
        except Exception as exc:
            log.exception("action %s of event %s failed", mapping.action_type, context.event_log.id)
            _forget_lookups(context)
            status, error = ERROR, f"internal error: {type(exc).__name__}"
        else:
            context.on_commit.append(partial(_after_commit, action, context, result))
    return ActionLog(
        event_log=context.event_log.id,
        mapping=mapping.id,
        action_type=mapping.action_type,
        action_parameters=mapping.action_parameters,
        action_payload=payload,
        action_result=result,
        status=status,
        error=error,
    )


def _forget_lookups(context) -> None:
    """Forget the rows the batch looked up: a failed action's changes were undone, or it left a row half-changed."""
    context.lookups.clear()


def save_action_logs(action_logs) -> None:
    """Insert the action logs ``run_mapping`` returned, a few hundred rows per statement."""
    insert_rows(action_logs)


def _after_commit(action, context, result) -> None:
    try:
        action.after_commit(context, result)
    except Exception:
        log.exception("after-commit step of %s for event %s failed", action.action_type, context.event_log.id)


def _flatten(messages, values):
    """Yield ``(field, "[index]" or "", message, offending value)`` from marshmallow errors."""
    for name, value in messages.items():
        given = values.get(name, MISSING)
        if isinstance(value, dict):
            for index, messages_at in value.items():
                item = given[index] if isinstance(given, list) and isinstance(index, int) else given
                for message in _as_list(messages_at):
                    yield name, f"[{index}]", message, item
        else:
            for message in _as_list(value):
                yield name, "", message, given


def _as_list(messages):
    return messages if isinstance(messages, list) else [messages]

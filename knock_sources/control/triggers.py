"""Workflow source-event triggers: ``workflows_trigger`` mappings, seen from the workflow's side.

As in Knock's Management API, a source-event trigger *is* a
``workflows_trigger`` mapping whose ``key`` is the workflow, so event logs,
action logs, idempotency, rehearsal and replay treat triggers and mappings
alike, and every such mapping (a provider's default one included) is a
trigger of its workflow. A trigger is identified by workflow x source x
event type. It is created in every environment of the source, enabled
(Knock: "Triggers are automatically enabled when you create them"); its
field mapping (``recipients``, ``actor``, ``tenant``, ``cancellation_key``,
``data``) is shared by the environments, while its active switch is per
environment: switching it off in one leaves the others running.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from knock_sources.control import mappings, sources
from knock_sources.errors import Conflict, NotFound, ValidationFailed
from knock_sources.store import db
from knock_sources.store.control import Environment, Mapping, Source, SourceEnvironment
from knock_sources.store.dataplane import Workflow

TRIGGER_ACTION = "workflows_trigger"
#: The trigger fields a source event is mapped onto, as Knock's trigger step shows them.
FIELDS = ("recipients", "actor", "tenant", "cancellation_key", "data")
#: Unless mapped otherwise, a trigger's data is the event's data: ``properties`` for Segment-style events.
DEFAULT_FIELDS = {"data": "data"}


@dataclass
class Trigger:
    """One trigger: its workflow, source and event type, and its mapping in each environment (by slug)."""

    workflow_key: str
    source: Source
    event_type: str
    mappings: dict[str, Mapping] = field(default_factory=dict)

    @property
    def fields(self) -> dict:
        """The field mapping, shared by the environments (taken from the oldest mapping)."""
        oldest = min(self.mappings.values(), key=lambda mapping: mapping.id)
        return {name: oldest.action_parameters.get(name) for name in FIELDS}


def get_workflow(environment: Environment, key: str) -> Workflow:
    """Return workflow ``key`` of ``environment`` or raise ``NotFound``."""
    workflow = Workflow.get_or_none(environment=environment, key=key)
    if workflow is None:
        raise NotFound(f"Workflow {key!r} does not exist.", code="workflow_missing")
    return workflow


def workflow_key_of(parameters: dict | None) -> str | None:
    """Return the workflow a ``workflows_trigger`` mapping's parameters name (a plain or ``{"value"}`` key)."""
    return mappings.configured_text((parameters or {}).get("key"))


def find_triggers(*, workflow_key: str | None = None, source=None, event_type: str | None = None) -> list[Trigger]:
    """Return the triggers matching the filters, across environments, oldest first.

    The workflow key lives inside the mapping's JSON parameters, so it is
    matched here rather than in SQL; trigger mappings are configuration,
    a few per source, not traffic.
    """
    query = (
        Mapping.select(Mapping, SourceEnvironment, Source, Environment)
        .join(SourceEnvironment)
        .join(Source)
        .switch(SourceEnvironment)
        .join(Environment)
        .where(Mapping.action_type == TRIGGER_ACTION)
    )
    if source is not None:
        query = query.where(SourceEnvironment.source == source)
    if event_type is not None:
        query = query.where(Mapping.event_type == event_type)
    triggers: dict[tuple, Trigger] = {}
    for mapping in query.order_by(Mapping.id):
        key = workflow_key_of(mapping.action_parameters)
        if key is None or (workflow_key is not None and key != workflow_key):
            continue
        source_env = mapping.source_environment
        identity = (key, source_env.source.id, mapping.event_type)
        trigger = triggers.setdefault(identity, Trigger(key, source_env.source, mapping.event_type))
        trigger.mappings.setdefault(source_env.environment.slug, mapping)
    return list(triggers.values())


def triggers_in(environment: Environment, **filters) -> list[Trigger]:
    """Return the triggers present in ``environment`` (see ``find_triggers`` for the filters)."""
    return [trigger for trigger in find_triggers(**filters) if environment.slug in trigger.mappings]


def get_trigger(workflow_key: str, environment: Environment, source_key: str, event_type: str) -> Trigger:
    """Return the trigger of workflow ``workflow_key`` for a source's event, present in ``environment``.

    The workflow itself need not exist there yet: a trigger can be switched
    off in an environment before its workflow is promoted to it.
    """
    source = sources.get_source(source_key)
    found = triggers_in(environment, workflow_key=workflow_key, source=source, event_type=event_type)
    if not found:
        raise NotFound(
            f"Workflow {workflow_key!r} has no trigger for {event_type!r} events of source {source_key!r}.",
            code="trigger_missing",
        )
    return found[0]


def workflow_triggers(environment: Environment, workflow_key: str) -> list[Trigger]:
    """Return the triggers of a workflow present in ``environment``; ``NotFound`` if it has neither."""
    found = triggers_in(environment, workflow_key=workflow_key)
    if not found:
        get_workflow(environment, workflow_key)
    return found


def _parameters(registry, workflow_key: str, mapping: dict) -> dict:
    """Return the mapping's action parameters, validated as any ``workflows_trigger`` mapping is."""
    parameters = {"key": workflow_key, **DEFAULT_FIELDS, **mapping}
    parameters = {name: spec for name, spec in parameters.items() if spec is not None}
    problems = mappings.problems(registry, {"action_type": TRIGGER_ACTION, "action_parameters": parameters})
    if problems:
        raise ValidationFailed({"trigger": {"mapping": problems["action_parameters"]}})
    return parameters


def create_trigger(registry, workflow: Workflow, body: dict) -> Trigger:
    """Create a trigger of ``workflow`` in every environment of the source, active; ``Conflict`` if it exists."""
    source = sources.get_source(body["source"])
    if find_triggers(workflow_key=workflow.key, source=source, event_type=body["event"]):
        raise Conflict(
            f"Workflow {workflow.key!r} already has a trigger for {body['event']!r} events of {source.key!r}.",
            code="trigger_exists",
        )
    parameters = _parameters(registry, workflow.key, body["mapping"])
    with db.atomic():
        for environment in Environment.select().order_by(Environment.id):
            mappings.create(
                registry,
                sources.get_source_environment(source, environment),
                {"event_type": body["event"], "action_type": TRIGGER_ACTION, "action_parameters": parameters},
            )
    return get_trigger(workflow.key, workflow.environment, source.key, body["event"])


def update_trigger(registry, trigger: Trigger, environment: Environment, body: dict) -> None:
    """Apply ``body``: ``mapping`` replaces the field mapping everywhere, ``active`` switches this environment."""
    with db.atomic():
        if "mapping" in body:
            parameters = _parameters(registry, trigger.workflow_key, body["mapping"])
            for mapping in trigger.mappings.values():
                mappings.update(registry, mapping, {"action_parameters": parameters})
        if "active" in body:
            mappings.update(registry, trigger.mappings[environment.slug], {"active": body["active"]})


def delete_trigger(trigger: Trigger) -> None:
    """Delete the trigger from every environment."""
    for mapping in trigger.mappings.values():
        mappings.delete(mapping)

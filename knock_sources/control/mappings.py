"""Event-action mappings one at a time: read, create, change, switch, delete, restore the provider's defaults.

Every write is validated first with ``sources.mapping_problems`` (the
action exists, its parameters are known, paths parse) plus the action's
required parameters, and refused with ``ValidationFailed`` whose field
paths are relative to the mapping (``action_parameters.<name>``).
"""

from __future__ import annotations

from knock_sources.control.sources import mapping_problems
from knock_sources.errors import NotFound, ValidationFailed
from knock_sources.store import db, utcnow
from knock_sources.store.control import Mapping, SourceEnvironment

#: The fields a client may set on a mapping.
FIELDS = ("event_type", "action_type", "action_parameters", "active")


def problems(registry, mapping: dict) -> dict:
    """Return the field errors of ``mapping``: unknown action or parameters, bad paths, required ones missing."""
    found = {}
    if not isinstance(mapping.get("event_type"), str) or not 0 < len(mapping["event_type"]) <= 255:
        found["event_type"] = ["Give the event type: 1 to 255 characters."]
    found.update(mapping_problems(registry, mapping))
    action = registry.actions.get(mapping["action_type"])
    if action is not None:
        parameters = mapping.get("action_parameters") or {}
        for name, field in action.params_schema().fields.items():
            if field.required and parameters.get(name) is None:
                found.setdefault("action_parameters", {})[name] = [
                    f"Required by {action.action_type}: give a path such as body.data.id, or a value."
                ]
    return found


def validate(registry, mapping: dict) -> None:
    """Raise ``ValidationFailed`` unless ``mapping`` would run."""
    found = problems(registry, mapping)
    if found:
        raise ValidationFailed(found)


def list_for(source_env: SourceEnvironment) -> list[Mapping]:
    """Return the environment's mappings, oldest first."""
    return list(Mapping.select().where(Mapping.source_environment == source_env).order_by(Mapping.id))


def get(source_env: SourceEnvironment, mapping_id: int) -> Mapping:
    """Return mapping ``mapping_id`` of ``source_env``; ``NotFound`` if it belongs elsewhere or is gone."""
    mapping = Mapping.get_or_none((Mapping.id == mapping_id) & (Mapping.source_environment == source_env))
    if mapping is None:
        raise NotFound(f"Mapping {mapping_id} does not exist in this environment.", code="mapping_missing")
    return mapping


def create(registry, source_env: SourceEnvironment, fields: dict) -> Mapping:
    """Create a mapping from ``fields`` (``event_type``, ``action_type``, ...), validated first."""
    mapping = {"action_parameters": {}, "active": True, **{name: fields[name] for name in FIELDS if name in fields}}
    validate(registry, mapping)
    return Mapping.create(source_environment=source_env, **mapping)


def update(registry, mapping: Mapping, changes: dict) -> Mapping:
    """Apply ``changes`` (any of ``FIELDS``) to ``mapping``, validating the result as a whole."""
    merged = {name: changes.get(name, getattr(mapping, name)) for name in FIELDS}
    validate(registry, merged)
    for name, value in merged.items():
        setattr(mapping, name, value)
    mapping.updated_at = utcnow()
    mapping.save()
    return mapping


def delete(mapping: Mapping) -> None:
    """Delete ``mapping``; its action logs keep their record of what ran."""
    mapping.delete_instance()


def _same(default, mapping) -> bool:
    return (default.event_type, default.action_type, default.action_parameters) == (
        mapping.event_type,
        mapping.action_type,
        mapping.action_parameters,
    )


def is_default(provider, mapping: Mapping) -> bool:
    """Return whether ``mapping`` is one of ``provider``'s default mappings (whatever its switch)."""
    return provider is not None and any(_same(default, mapping) for default in provider.default_mappings)


def restore_defaults(source_env: SourceEnvironment, provider) -> list[Mapping]:
    """Re-create the provider's default mappings that are gone and switch the others back on.

    Mappings of the user's own are left as they are. Returns every mapping of the environment.
    """
    with db.atomic():
        current = list_for(source_env)
        for default in provider.default_mappings if provider else ():
            same = [mapping for mapping in current if _same(default, mapping)]
            if not same:
                Mapping.create(
                    source_environment=source_env,
                    event_type=default.event_type,
                    action_type=default.action_type,
                    action_parameters=default.action_parameters,
                )
            for mapping in same:
                if not mapping.active:
                    mapping.active = True
                    mapping.updated_at = utcnow()
                    mapping.save()
    return list_for(source_env)

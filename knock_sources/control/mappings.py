"""Event-action mappings: the one home of every mapping write (API and pages alike).

A mapping is checked against its action when it is saved, not when an event
arrives: the action must exist, every parameter must be one the action
knows, every required one must be configured (a path, a literal
``{"value": ...}``, or for objects an object of paths), paths must parse and
literal values must be what the action's schema accepts. Problems are
raised as ``ValidationFailed`` with field paths relative to the mapping.
"""

from __future__ import annotations

from marshmallow import ValidationError

from knock_sources.errors import NotFound, ValidationFailed
from knock_sources.paths import is_literal, validate_parameter_spec
from knock_sources.store import db, utcnow
from knock_sources.store.control import Mapping, SourceEnvironment
from knock_sources.store.dataplane import Workflow

#: The fields a client may set on a mapping.
FIELDS = ("event_type", "action_type", "action_parameters", "active")
_LITERAL_HINT = 'a literal such as "order-paid" or {"value": "order-paid"}'
_SPEC_HINT = f'give a path such as "body.data.id" or {_LITERAL_HINT}'


def problems(registry, mapping: dict) -> dict:
    """Return the field errors of ``mapping`` (``event_type``, ``action_type``, ``action_parameters``)."""
    action = registry.actions.get(mapping["action_type"])
    if action is None:
        known = ", ".join(sorted(registry.actions))
        return {"action_type": [f"Unknown action type {mapping['action_type']!r}; use one of: {known}."]}
    schema_fields = action.params_schema().fields
    parameters = mapping.get("action_parameters") or {}
    found = {}
    for name, spec in parameters.items():
        if name not in schema_fields:
            found[name] = [f"Unknown parameter for {action.action_type}; it takes: {', '.join(schema_fields)}."]
            continue
        issues = _spec_problems(spec, schema_fields[name], literal=name in action.literal_params)
        if issues:
            found[name] = issues
    for name, field in schema_fields.items():
        if field.required and parameters.get(name) is None:
            found[name] = [f"Required by {action.action_type}: {_SPEC_HINT}."]
    return {"action_parameters": found} if found else {}


def _spec_problems(spec, field, *, literal: bool) -> list[str]:
    """Return what is wrong with one parameter's spec."""
    if spec is None:
        return []
    if literal:
        value = spec["value"] if is_literal(spec) else spec
        if isinstance(value, dict):
            return [f"This parameter is configured, not read from the event: give {_LITERAL_HINT}."]
        return _literal_problems(value, field)
    if is_literal(spec):
        return _literal_problems(spec["value"], field)
    if isinstance(spec, (str, dict)):
        # A path, or an object of paths (each a path, a literal or an object).
        return validate_parameter_spec(spec)
    # Any other JSON value is a literal, as the runner takes it.
    return _literal_problems(spec, field)


def _literal_problems(value, field) -> list[str]:
    """Check a literal with the action's own field, as the runner will when an event arrives."""
    if field is None:
        return []
    try:
        field.deserialize(value)
    except ValidationError as exc:
        messages = exc.messages if isinstance(exc.messages, list) else [str(exc.messages)]
        return [f"Invalid literal: {message}" for message in messages]
    return []


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
    mapping = _complete(fields, {"action_parameters": {}, "active": True})
    validate(registry, mapping)
    return Mapping.create(source_environment=source_env, **mapping)


def update(registry, mapping: Mapping, changes: dict) -> Mapping:
    """Apply ``changes`` (any of ``FIELDS``) to ``mapping``, validating the result as a whole."""
    merged = _complete(changes, {name: getattr(mapping, name) for name in FIELDS})
    validate(registry, merged)
    _write(mapping, merged)
    return mapping


def _complete(fields: dict, base: dict) -> dict:
    """Return ``base`` overridden by the ``FIELDS`` present in ``fields``; no parameters means ``{}``."""
    merged = {**base, **{name: fields[name] for name in FIELDS if name in fields}}
    merged["action_parameters"] = merged["action_parameters"] or {}
    return merged


def _write(mapping: Mapping, fields: dict) -> None:
    for name, value in fields.items():
        setattr(mapping, name, value)
    mapping.updated_at = utcnow()
    mapping.save()


def delete(mapping: Mapping) -> None:
    """Delete ``mapping``; its action logs keep their record of what ran."""
    mapping.delete_instance()


def replace_all(registry, source_env: SourceEnvironment, mappings: list[dict]) -> None:
    """Make ``mappings`` the environment's mappings (Knock's ``PUT`` semantics).

    An entry carrying the ``id`` of one of the environment's mappings updates
    it in place, so a GET body put back keeps its ids; ``is_deleted`` entries
    and mappings left out are deleted. Nothing changes unless every entry is valid.
    """
    wanted = [(index, mapping) for index, mapping in enumerate(mappings) if not mapping.get("is_deleted")]
    errors = {}
    for index, mapping in wanted:
        found = problems(registry, _complete(mapping, {"action_parameters": {}}))
        if found:
            errors[index] = found
    if errors:
        raise ValidationFailed({"mappings": errors})
    existing = {mapping.id: mapping for mapping in list_for(source_env)}
    with db.atomic():
        for _, mapping in wanted:
            row = existing.pop(mapping.get("id"), None)
            if row is not None:
                _write(row, _complete(mapping, {name: getattr(row, name) for name in FIELDS}))
            else:
                Mapping.create(
                    source_environment=source_env, **_complete(mapping, {"action_parameters": {}, "active": True})
                )
        if existing:
            Mapping.delete().where(Mapping.id.in_(list(existing))).execute()


def _same(default, mapping) -> bool:
    return (default.event_type, default.action_type, default.action_parameters) == (
        mapping.event_type,
        mapping.action_type,
        mapping.action_parameters,
    )


def _create_default(source_env: SourceEnvironment, default, active: bool = True) -> Mapping:
    return Mapping.create(
        source_environment=source_env,
        event_type=default.event_type,
        action_type=default.action_type,
        action_parameters=default.action_parameters,
        active=active,
    )


def create_defaults(source_env: SourceEnvironment, provider, inactive=()) -> None:
    """Create the provider's default mappings in a new source environment, those at positions ``inactive`` off."""
    for index, default in enumerate(provider.default_mappings):
        _create_default(source_env, default, active=index not in inactive)


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
                _create_default(source_env, default)
            for mapping in same:
                if not mapping.active:
                    _write(mapping, {"active": True})
    return list_for(source_env)


def configured_text(spec) -> str | None:
    """Return the text a literal parameter is configured with (a plain string or ``{"value": "..."}``), if any."""
    value = spec["value"] if is_literal(spec) else spec
    return value if isinstance(value, str) and value else None


def missing_workflows(registry, source_env: SourceEnvironment) -> list[str]:
    """Return the workflow keys that active mappings trigger or cancel but that do not exist here."""
    keys = set()
    for mapping in list_for(source_env):
        action = registry.actions.get(mapping.action_type)
        if not mapping.active or action is None or action.workflow_param is None:
            continue
        key = configured_text((mapping.action_parameters or {}).get(action.workflow_param))
        if key:
            keys.add(key)
    if not keys:
        return []
    existing = {
        workflow.key
        for workflow in Workflow.select(Workflow.key).where(
            (Workflow.environment == source_env.environment_id) & Workflow.key.in_(list(keys))
        )
    }
    return sorted(keys - existing)

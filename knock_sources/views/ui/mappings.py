"""A source environment's mappings: grouped by event type, switched on and off at once, edited, restored.

The editor shows one row per parameter of the chosen action with a mark
saying what the path resolves to in the last sample of the event type
(checked again as you type, through ``check``); saving shows the service's
422 errors beside the fields.
"""

from __future__ import annotations

import json
from itertools import groupby

from flask import Blueprint, flash, jsonify, redirect, render_template, request, url_for

from knock_sources.control import mappings, rehearsal
from knock_sources.errors import ValidationFailed
from knock_sources.state import current_state
from knock_sources.store.control import KnownEvent
from knock_sources.views.api.common import row_id
from knock_sources.views.ui.common import field_errors, source_environment
from knock_sources.views.ui.forms import ActionForm, MappingForm, SwitchForm, spec_from_text, text_of_spec

bp = Blueprint("mappings", __name__)

#: How much of a resolved value the mark beside a path shows.
SHOWN_VALUE_CHARACTERS = 80


def mark(spec, sample, literal: bool) -> dict:
    """The mark beside a parameter: ``{"state", "message"}`` for the template and for ``check``."""
    checked = rehearsal.check_parameter(spec, sample, literal=literal)
    state, value = checked["state"], checked["value"]
    if state == "resolves":
        shown = json.dumps(value, ensure_ascii=False)
        if len(shown) > SHOWN_VALUE_CHARACTERS:
            shown = shown[: SHOWN_VALUE_CHARACTERS - 1] + "…"
        message = f"✓ resolves to {shown}"
    elif state == "missing":
        message = "✗ not found in the sample"
    elif state == "invalid":
        message = f"✗ {value}"
    elif state == "literal":
        message = "a configured value"
    elif state == "no_sample":
        message = "no sample of this event yet"
    else:
        message = ""
    return {"state": state, "message": message}


def _sample(source_env, event_type: str | None) -> dict | None:
    if not event_type:
        return None
    known = KnownEvent.get_or_none(source_environment=source_env, event_type=event_type)
    return known.sample_payload if known else None


@bp.get("/<env:env>/sources/<key>/mappings")
def index(key):
    """The mappings, grouped by event type, each with its switch; defaults marked."""
    source, source_env = source_environment(key)
    provider = current_state().registry.providers.get(source.provider)
    rows = sorted(mappings.list_for(source_env), key=lambda mapping: (mapping.event_type, mapping.id))
    groups = [(event_type, list(group)) for event_type, group in groupby(rows, key=lambda row: row.event_type)]
    return render_template(
        "mappings/index.html",
        source=source,
        source_env=source_env,
        groups=groups,
        provider=provider,
        defaults={mapping.id for mapping in rows if mappings.is_default(provider, mapping)},
        action_form=ActionForm(formdata=None),
        missing_workflows=mappings.missing_workflows(current_state().registry, source_env),
    )


@bp.post("/<env:env>/sources/<key>/mappings/<mapping_id>/active")
def switch(key, mapping_id):
    """Switch a mapping on or off; it takes effect for the next event."""
    source, source_env = source_environment(key)
    form = SwitchForm()
    mapping = mappings.get(source_env, row_id(mapping_id))
    mappings.update(current_state().registry, mapping, {"active": bool(form.enabled.data)})
    state = "on" if mapping.active else "off"
    flash(f"{mapping.event_type} → {mapping.action_type} is {state}.", "success")
    return redirect(url_for("ui.mappings.index", key=key, _anchor=f"mapping-{mapping.id}"))


@bp.post("/<env:env>/sources/<key>/mappings/restore-defaults")
def restore_defaults(key):
    """Re-create the provider's default mappings that are gone and switch the others back on."""
    source, source_env = source_environment(key)
    mappings.restore_defaults(source_env, current_state().registry.providers.get(source.provider))
    flash("The default mappings are restored.", "success")
    return redirect(url_for("ui.mappings.index", key=key))


@bp.post("/<env:env>/sources/<key>/mappings/<mapping_id>/delete")
def delete(key, mapping_id):
    """Delete a mapping."""
    _, source_env = source_environment(key)
    mapping = mappings.get(source_env, row_id(mapping_id))
    mappings.delete(mapping)
    flash(f"The {mapping.event_type} → {mapping.action_type} mapping was deleted.", "success")
    return redirect(url_for("ui.mappings.index", key=key))


@bp.post("/<env:env>/sources/<key>/mappings/check")
def check(key):
    """Check one path as it is typed: what it resolves to in the last sample of the event type (JSON)."""
    _, source_env = source_environment(key)
    body = request.get_json(silent=True) or {}
    text, literal = body.get("path"), body.get("literal") is True
    if not isinstance(text, str) or len(text) > 4096:
        return jsonify({"state": "invalid", "message": "✗ not a path"})
    try:
        spec = spec_from_text(text)
    except ValueError as exc:
        return jsonify({"state": "invalid", "message": f"✗ not valid JSON: {exc}"})
    event_type = body.get("event_type") if isinstance(body.get("event_type"), str) else None
    return jsonify(mark(spec, _sample(source_env, event_type), literal))


def _parameter_rows(action, parameters: dict, sample, texts: dict | None = None) -> list[dict]:
    rows = []
    for name, described in action.describe()["parameters"].items():
        text = texts.get(name, "") if texts is not None else text_of_spec(parameters.get(name))
        try:
            spec = spec_from_text(text)
        except ValueError:
            spec = text
        rows.append({"name": name, **described, "text": text, "mark": mark(spec, sample, described["literal"])})
    return rows


@bp.route("/<env:env>/sources/<key>/mappings/new", methods=["GET", "POST"], defaults={"mapping_id": None})
@bp.route("/<env:env>/sources/<key>/mappings/<mapping_id>/edit", methods=["GET", "POST"])
def edit(key, mapping_id):
    """Create or edit a mapping: event type, action (chosen first), one row per parameter, the sample beside."""
    source, source_env = source_environment(key)
    registry = current_state().registry
    mapping = mappings.get(source_env, row_id(mapping_id)) if mapping_id is not None else None
    form = MappingForm()
    action_type = request.values.get("action") or request.form.get("action_type")
    if mapping is not None and not action_type:
        action_type = mapping.action_type
    action = registry.actions.get(action_type or "workflows_trigger") or registry.actions["workflows_trigger"]
    if request.method == "GET":
        form.event_type.data = request.args.get("event") or (mapping.event_type if mapping else "")
    form.action_type.data = action.action_type
    errors: dict = {}
    texts = None
    if request.method == "POST":
        texts = {name: request.form.get(f"param-{name}", "") for name in action.params_schema().fields}
        if form.validate_on_submit():
            try:
                fields = _fields(form, texts)
                if mapping is None:
                    mapping = mappings.create(registry, source_env, fields)
                else:
                    mappings.update(registry, mapping, fields)
            except ValidationFailed as exc:
                errors = field_errors(exc)
            else:
                flash(f"The {mapping.event_type} → {action.name} mapping was saved.", "success")
                return redirect(url_for("ui.mappings.index", key=key, _anchor=f"mapping-{mapping.id}"))
    event_type = form.event_type.data
    sample = _sample(source_env, event_type)
    parameters = mapping.action_parameters if mapping is not None and mapping.action_type == action.action_type else {}
    known = KnownEvent.select(KnownEvent.event_type).where(KnownEvent.source_environment == source_env)
    page = render_template(
        "mappings/edit.html",
        source=source,
        source_env=source_env,
        mapping=mapping,
        form=form,
        action=action,
        actions=sorted(registry.actions.values(), key=lambda each: each.name),
        rows=_parameter_rows(action, parameters, sample, texts),
        sample=sample,
        known_types=sorted(row.event_type for row in known),
        errors=errors,
        tab="Mappings",
    )
    return page, 422 if errors or form.errors else 200


def _fields(form, texts: dict) -> dict:
    """The mapping's fields from the form; ``ValidationFailed`` for a parameter that is not valid JSON."""
    parameters, problems = {}, {}
    for name, text in texts.items():
        try:
            spec = spec_from_text(text)
        except ValueError as exc:
            problems[name] = [f"Not valid JSON: {exc}"]
            continue
        if spec is not None:
            parameters[name] = spec
    if problems:
        raise ValidationFailed({"action_parameters": problems})
    return {
        "event_type": form.event_type.data.strip(),
        "action_type": form.action_type.data,
        "action_parameters": parameters,
    }

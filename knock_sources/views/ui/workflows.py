"""Workflows: the list with an active switch per environment, and a workflow's runs."""

from __future__ import annotations

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from peewee import fn
from wtforms import SelectChoice

from knock_sources.control import triggers, workflows
from knock_sources.errors import ValidationFailed
from knock_sources.state import current_state
from knock_sources.store.control import Environment, Source
from knock_sources.store.dataplane import RUN_STATUSES, Workflow, WorkflowRun
from knock_sources.views.api.common import paginate
from knock_sources.views.ui.common import field_errors, safe_next
from knock_sources.views.ui.forms import ActionForm, SwitchForm, TriggerForm, spec_from_text, text_of_spec

bp = Blueprint("workflows", __name__)


@bp.get("/<env:env>/workflows")
def index():
    """The environment's workflows, each with its active switch and run count."""
    listed = list(Workflow.select().where(Workflow.environment == g.environment).order_by(Workflow.key))
    counts = dict(
        WorkflowRun.select(WorkflowRun.workflow, fn.COUNT(WorkflowRun.id))
        .where(WorkflowRun.workflow.in_([workflow.id for workflow in listed]))
        .group_by(WorkflowRun.workflow)
        .tuples()
    )
    return render_template("workflows/index.html", workflows=listed, counts=counts)


@bp.post("/<env:env>/workflows/<key>/active")
def set_active(key):
    """Switch a workflow on or off in this environment."""
    form = SwitchForm()
    workflow = workflows.set_active(g.environment, key, bool(form.enabled.data))
    flash(
        f"Workflow {workflow.key} is {'active' if workflow.active else 'inactive'} in {g.environment.slug}.", "success"
    )
    return redirect(safe_next(request.form.get("next")) or url_for("ui.workflows.index"))


def _field_mapping(form_data) -> dict:
    """The trigger's field mapping from its ``field-<name>`` inputs; ``ValidationFailed`` for bad JSON."""
    mapping, problems = {}, {}
    for name in triggers.FIELDS:
        try:
            mapping[name] = spec_from_text(form_data.get(f"field-{name}"))
        except ValueError as exc:
            problems[name] = [f"Not valid JSON: {exc}"]
    if problems:
        raise ValidationFailed({"trigger": {"mapping": problems}})
    return mapping


def _trigger_form() -> TriggerForm:
    form = TriggerForm()
    form.source.choices = [SelectChoice(source.key, source.name) for source in Source.select().order_by(Source.name)]
    return form


def _detail(workflow, status_code=200, **extra):
    query = WorkflowRun.select().where(WorkflowRun.workflow == workflow)
    recipient = request.args.get("recipient", "").strip()
    status = request.args.get("status", "")
    if recipient:
        query = query.where(WorkflowRun.recipient_id == recipient)
    if status in RUN_STATUSES:
        query = query.where(WorkflowRun.status == status)
    page = paginate(query, WorkflowRun.id, lambda run: run)
    args = {name: value for name, value in request.args.items() if name not in ("after", "before")}
    page_html = render_template(
        "workflows/detail.html",
        workflow=workflow,
        page=page,
        runs=page["entries"],
        statuses=RUN_STATUSES,
        recipient=recipient,
        status=status,
        args=args,
        triggers=triggers.triggers_in(g.environment, workflow_key=workflow.key),
        fields=triggers.FIELDS,
        text_of_spec=text_of_spec,
        trigger_form=extra.pop("trigger_form", None) or _trigger_form(),
        action_form=ActionForm(formdata=None),
        errors=extra.pop("errors", {}),
        **extra,
    )
    return page_html, status_code


@bp.get("/<env:env>/workflows/<key>")
def detail(key):
    """A workflow: its source-event triggers, and its runs, newest first, filtered by recipient and status."""
    return _detail(workflows.get(g.environment, key))


@bp.post("/<env:env>/workflows/<key>/triggers")
def add_trigger(key):
    """Add a source-event trigger: created in every environment of the source, active."""
    workflow = workflows.get(g.environment, key)
    form = _trigger_form()
    if not form.validate_on_submit():
        return _detail(workflow, 422, trigger_form=form)
    try:
        body = {"source": form.source.data, "event": form.event.data.strip(), "mapping": _field_mapping(request.form)}
        triggers.create_trigger(current_state().registry, workflow, body)
    except ValidationFailed as exc:
        return _detail(workflow, 422, trigger_form=form, errors=field_errors(exc))
    flash(f"Workflow {key} now starts on {body['event']} events of {body['source']}.", "success")
    return redirect(url_for("ui.workflows.detail", key=key))


def _posted_trigger(key):
    return triggers.get_trigger(key, g.environment, request.form.get("source", ""), request.form.get("event", ""))


@bp.post("/<env:env>/workflows/<key>/triggers/active")
def switch_trigger(key):
    """Switch a trigger on or off in one environment (the one named by the form); the others keep theirs."""
    form = SwitchForm()
    trigger = _posted_trigger(key)
    slug = request.form.get("environment", g.environment.slug)
    environment = Environment.get_or_none(Environment.slug == slug)
    if environment is None or slug not in trigger.mappings:
        raise ValidationFailed({"environment": [f"The trigger does not exist in {slug!r}."]})
    triggers.update_trigger(current_state().registry, trigger, environment, {"active": bool(form.enabled.data)})
    state = "active" if form.enabled.data else "inactive"
    flash(f"The {trigger.event_type} trigger is {state} in {slug}.", "success")
    return redirect(url_for("ui.workflows.detail", key=key))


@bp.post("/<env:env>/workflows/<key>/triggers/mapping")
def update_trigger_mapping(key):
    """Replace a trigger's field mapping (shared by every environment)."""
    workflow = workflows.get(g.environment, key)
    trigger = _posted_trigger(key)
    try:
        triggers.update_trigger(
            current_state().registry, trigger, g.environment, {"mapping": _field_mapping(request.form)}
        )
    except ValidationFailed as exc:
        return _detail(workflow, 422, errors=field_errors(exc), editing=(trigger.source.key, trigger.event_type))
    flash(f"The {trigger.event_type} trigger's field mapping was saved.", "success")
    return redirect(url_for("ui.workflows.detail", key=key))


@bp.post("/<env:env>/workflows/<key>/triggers/delete")
def delete_trigger(key):
    """Delete a trigger from every environment."""
    trigger = _posted_trigger(key)
    triggers.delete_trigger(trigger)
    flash(f"The {trigger.event_type} trigger was deleted.", "success")
    return redirect(url_for("ui.workflows.detail", key=key))

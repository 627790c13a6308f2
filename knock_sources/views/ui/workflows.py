"""Workflows: the list with an active switch per environment, and a workflow's runs."""

from __future__ import annotations

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from peewee import fn

from knock_sources.actions.workflows import RUN_STATUSES
from knock_sources.control import workflows
from knock_sources.store.dataplane import Workflow, WorkflowRun
from knock_sources.views.api.common import paginate
from knock_sources.views.ui.common import safe_next
from knock_sources.views.ui.forms import SwitchForm

bp = Blueprint("workflows", __name__)


@bp.get("/<env>/workflows")
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


@bp.post("/<env>/workflows/<key>/active")
def set_active(key):
    """Switch a workflow on or off in this environment."""
    form = SwitchForm()
    workflow = workflows.set_active(g.environment, key, bool(form.enabled.data))
    flash(
        f"Workflow {workflow.key} is {'active' if workflow.active else 'inactive'} in {g.environment.slug}.", "success"
    )
    return redirect(safe_next(request.form.get("next")) or url_for("ui.workflows.index"))


@bp.get("/<env>/workflows/<key>")
def detail(key):
    """A workflow's runs, newest first, filtered by recipient and status."""
    workflow = workflows.get(g.environment, key)
    query = WorkflowRun.select().where(WorkflowRun.workflow == workflow)
    recipient = request.args.get("recipient", "").strip()
    status = request.args.get("status", "")
    if recipient:
        query = query.where(WorkflowRun.recipient_id == recipient)
    if status in RUN_STATUSES:
        query = query.where(WorkflowRun.status == status)
    page = paginate(query, WorkflowRun.id, lambda run: run)
    args = {name: value for name, value in request.args.items() if name not in ("after", "before")}
    return render_template(
        "workflows/detail.html",
        workflow=workflow,
        page=page,
        runs=page["entries"],
        statuses=RUN_STATUSES,
        recipient=recipient,
        status=status,
        args=args,
    )

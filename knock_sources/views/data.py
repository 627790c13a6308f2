"""``/v1`` data-plane endpoints: workflows, their runs, and users."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from knock_sources.actions.users import serialize_user
from knock_sources.errors import NotFound
from knock_sources.models import User, Workflow, WorkflowRun, isoformat, utcnow
from knock_sources.schemas import WorkflowBodySchema, envelope_schema
from knock_sources.views.api import current_environment, json_body, paginate

bp = Blueprint("data", __name__)

workflow_body_schema = envelope_schema("workflow", WorkflowBodySchema)
RUN_FILTERS = {
    "recipient": WorkflowRun.recipient_id,
    "status": WorkflowRun.status,
    "cancellation_key": WorkflowRun.cancellation_key,
}


def serialize_workflow(workflow: Workflow) -> dict:
    """Return a workflow."""
    return {
        "key": workflow.key,
        "name": workflow.name,
        "active": workflow.active,
        "created_at": isoformat(workflow.created_at),
        "updated_at": isoformat(workflow.updated_at),
    }


def serialize_run(run: WorkflowRun) -> dict:
    """Return a workflow run."""
    return {
        "id": run.run_id,
        "workflow": run.workflow.key,
        "recipient": {"collection": run.recipient_collection, "id": run.recipient_id},
        "actor": run.actor,
        "tenant": run.tenant,
        "data": run.data,
        "cancellation_key": run.cancellation_key,
        "status": run.status,
        "source_log_id": str(run.event_log_id) if run.event_log_id else None,
        "inserted_at": isoformat(run.created_at),
        "updated_at": isoformat(run.updated_at),
    }


def _workflow(key) -> Workflow:
    workflow = Workflow.get_or_none(environment=current_environment(), key=key)
    if workflow is None:
        raise NotFound(f"Workflow {key!r} does not exist.", code="workflow_missing")
    return workflow


@bp.get("/workflows")
def list_workflows():
    """List the environment's workflows."""
    query = Workflow.select().where(Workflow.environment == current_environment())
    return jsonify(paginate(query, Workflow.id, serialize_workflow))


@bp.put("/workflows/<key>")
def put_workflow(key):
    """Create or update a workflow (name, active)."""
    body = json_body(workflow_body_schema)["workflow"]
    workflow = Workflow.get_or_create_row(environment=current_environment(), key=key)
    workflow.name = body["name"]
    workflow.active = body["active"]
    workflow.updated_at = utcnow()
    workflow.save()
    return jsonify(serialize_workflow(workflow))


@bp.get("/workflows/<key>/runs")
def list_runs(key):
    """List a workflow's runs; filter by recipient, status or cancellation key."""
    workflow = _workflow(key)
    query = WorkflowRun.select().where(WorkflowRun.workflow == workflow)
    for name, column in RUN_FILTERS.items():
        if name in request.args:
            query = query.where(column == request.args[name])
    return jsonify(paginate(query, WorkflowRun.id, serialize_run))


@bp.get("/users/<user_id>")
def get_user(user_id):
    """Return one user."""
    user = User.get_or_none(environment=current_environment(), external_id=user_id)
    if user is None:
        raise NotFound(f"User {user_id!r} does not exist.", code="user_missing")
    return jsonify(serialize_user(user))

"""``/v1`` data-plane endpoints: workflows and their runs, and the records actions write.

Every read is scoped to ``?environment=`` and answers 404 with a JSON error
(``user_missing``, ``object_missing``, ...) for what does not exist there.
"""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from knock_sources.actions.objects import find_object
from knock_sources.actions.users import find_user
from knock_sources.control.triggers import get_workflow
from knock_sources.errors import NotFound
from knock_sources.store import utcnow
from knock_sources.store.dataplane import Audience, AudienceMember, Object, Subscription, Tenant, Workflow, WorkflowRun
from knock_sources.store.keys import WORKFLOW_KEY
from knock_sources.views.api.common import current_environment, json_body, paginate, path_key, query_args
from knock_sources.views.api.schemas import RunQuerySchema, WorkflowBodySchema, envelope_schema
from knock_sources.views.api.shapes import (
    serialize_members,
    serialize_object,
    serialize_run,
    serialize_subscription,
    serialize_tenant,
    serialize_user,
    serialize_workflow,
)

bp = Blueprint("data", __name__)

workflow_body_schema = envelope_schema("workflow", WorkflowBodySchema)
run_query_schema = RunQuerySchema()
RUN_FILTERS = {
    "recipient": WorkflowRun.recipient_id,
    "recipient_collection": WorkflowRun.recipient_collection,
    "status": WorkflowRun.status,
    "cancellation_key": WorkflowRun.cancellation_key,
}


def _workflow(key) -> Workflow:
    return get_workflow(current_environment(), path_key(WORKFLOW_KEY, key))


@bp.get("/workflows")
def list_workflows():
    """List the environment's workflows."""
    query = Workflow.select().where(Workflow.environment == current_environment())
    return jsonify(paginate(query, Workflow.id, serialize_workflow))


@bp.put("/workflows/<key>")
def put_workflow(key):
    """Create or update a workflow (name, active)."""
    path_key(WORKFLOW_KEY, key)
    body = json_body(workflow_body_schema)["workflow"]
    workflow, _ = Workflow.get_or_create_row(environment=current_environment(), key=key)
    workflow.name = body["name"]
    workflow.active = body["active"]
    workflow.updated_at = utcnow()
    workflow.save()
    return jsonify(serialize_workflow(workflow))


@bp.get("/workflows/<key>/runs")
def list_runs(key):
    """List a workflow's runs, newest first; filter by recipient, status or cancellation key."""
    workflow = _workflow(key)
    filters = query_args(run_query_schema)
    query = WorkflowRun.select(WorkflowRun, Workflow).join(Workflow).where(WorkflowRun.workflow == workflow)
    for name, column in RUN_FILTERS.items():
        if name in filters:
            query = query.where(column == filters[name])
    return jsonify(paginate(query, WorkflowRun.id, serialize_run))


@bp.get("/users/<user_id>")
def get_user(user_id):
    """Return one user."""
    user = find_user(current_environment(), user_id)
    if user is None:
        raise NotFound(f"User {user_id!r} does not exist.", code="user_missing")
    return jsonify(serialize_user(user))


def _object(collection, object_id):
    obj = find_object(current_environment(), collection, object_id)
    if obj is None:
        raise NotFound(f"Object {object_id!r} does not exist in {collection!r}.", code="object_missing")
    return obj


@bp.get("/objects/<collection>/<object_id>")
def get_object(collection, object_id):
    """Return one object."""
    return jsonify(serialize_object(_object(collection, object_id)))


@bp.get("/objects/<collection>/<object_id>/subscriptions")
def list_subscriptions(collection, object_id):
    """List an object's subscribers, newest first."""
    obj = _object(collection, object_id)
    query = Subscription.select(Subscription, Object).join(Object).where(Subscription.object == obj)
    return jsonify(paginate(query, Subscription.id, serialize_subscription))


@bp.get("/tenants/<tenant_id>")
def get_tenant(tenant_id):
    """Return one tenant."""
    tenant = Tenant.get_or_none(environment=current_environment(), external_id=tenant_id)
    if tenant is None:
        raise NotFound(f"Tenant {tenant_id!r} does not exist.", code="tenant_missing")
    return jsonify(serialize_tenant(tenant))


@bp.get("/audiences/<key>/members")
def list_members(key):
    """List an audience's members, newest first; filter by ``tenant``."""
    environment = current_environment()
    audience = Audience.get_or_none(environment=environment, key=key)
    if audience is None:
        raise NotFound(f"Audience {key!r} does not exist.", code="audience_missing")
    query = AudienceMember.select().where(AudienceMember.audience == audience)
    if "tenant" in request.args:
        query = query.where(AudienceMember.tenant == request.args["tenant"])
    page = paginate(query, AudienceMember.id, lambda member: member)
    page["entries"] = serialize_members(page["entries"], environment)
    return jsonify(page)

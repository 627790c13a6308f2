"""Workflow actions: trigger, with Knock's ``POST /v1/workflows/{key}/trigger`` semantics.

Recipients and the actor may be user ids, inline users (identified first) or
objects (``{"id", "collection", ...}``, set first). A user id that was never
identified gets no run, and the action result names it, as Knock does.
"""

from __future__ import annotations

import json
import uuid

from marshmallow import Schema

from knock_sources.actions.base import Action
from knock_sources.actions.fields import JSONObject, Recipient, RecipientList, TenantRef, Text
from knock_sources.actions.recipients import ensure_recipient, reference
from knock_sources.actions.tenants import set_tenant
from knock_sources.errors import ActionError
from knock_sources.models import RUN_CANCELLED, RUN_TRIGGERED, Workflow, WorkflowRun, utcnow

MAX_RECIPIENTS = 1000
MAX_DATA_BYTES = 10 * 1024 * 1024


def find_workflow(environment, key: str) -> Workflow:
    """Return the active workflow ``key``; ``ActionError`` if missing or inactive."""
    workflow = Workflow.get_or_none(environment=environment, key=key)
    if workflow is None:
        raise ActionError(f"workflow {key!r} does not exist", code="workflow_missing")
    if not workflow.active:
        raise ActionError(f"workflow {key!r} is inactive", code="workflow_inactive")
    return workflow


class TriggerWorkflowSchema(Schema):
    """Parameters of ``workflows_trigger``."""

    key = Text(required=True)
    recipients = RecipientList(required=True, max_items=MAX_RECIPIENTS)
    actor = Recipient(allow_none=True)
    data = JSONObject(allow_none=True)
    tenant = TenantRef(allow_none=True)
    cancellation_key = Text(allow_none=True)


class TriggerWorkflow(Action):
    """Start a workflow run for each recipient."""

    action_type = "workflows_trigger"
    name = "Trigger workflow"
    params_schema = TriggerWorkflowSchema
    literal_params = frozenset({"key"})

    def execute(self, context, params):
        """Create one ``WorkflowRun`` per known or inline-identified recipient."""
        environment = context.environment
        workflow = find_workflow(environment, params["key"])
        data = params.get("data")
        if data is not None and len(json.dumps(data)) > MAX_DATA_BYTES:
            raise ActionError("workflow data is over the 10 MB limit", code="invalid_params")
        tenant = params.get("tenant")
        if isinstance(tenant, dict):
            tenant = set_tenant(environment, tenant["id"], tenant).external_id
        actor = params.get("actor")
        if actor is not None and not ensure_recipient(environment, actor):
            raise ActionError(f"actor {actor['id']!r} has not been identified", code="actor_missing")
        runs, skipped = [], []
        for recipient in params["recipients"]:
            if not ensure_recipient(environment, recipient):
                skipped.append({**reference(recipient), "reason": "not identified"})
                continue
            runs.append(
                WorkflowRun.create(
                    run_id=str(uuid.uuid4()),
                    environment=environment,
                    workflow=workflow,
                    recipient_collection=recipient["collection"],
                    recipient_id=recipient["id"],
                    actor=reference(actor) if actor else None,
                    tenant=tenant,
                    data=data,
                    cancellation_key=params.get("cancellation_key"),
                    event_log=context.event_log.id,
                )
            )
        return {
            "workflow_run_ids": [run.run_id for run in runs],
            "recipients": [reference(recipient) for recipient in params["recipients"]],
            "skipped_recipients": skipped,
        }


class CancelWorkflowSchema(Schema):
    """Parameters of ``workflows_cancel``."""

    key = Text(required=True)
    cancellation_key = Text(required=True)
    recipients = RecipientList(allow_none=True, max_items=MAX_RECIPIENTS)


class CancelWorkflow(Action):
    """Cancel the unfinished runs started with a cancellation key."""

    action_type = "workflows_cancel"
    name = "Cancel workflow"
    params_schema = CancelWorkflowSchema
    literal_params = frozenset({"key"})

    def execute(self, context, params):
        """Mark matching triggered runs as cancelled and report how many."""
        workflow = Workflow.get_or_none(environment=context.environment, key=params["key"])
        if workflow is None:
            raise ActionError(f"workflow {params['key']!r} does not exist", code="workflow_missing")
        condition = (
            (WorkflowRun.workflow == workflow)
            & (WorkflowRun.cancellation_key == params["cancellation_key"])
            & (WorkflowRun.status == RUN_TRIGGERED)
        )
        recipients = params.get("recipients")
        if recipients:
            matches_any = None
            for recipient in recipients:
                match = (WorkflowRun.recipient_collection == recipient["collection"]) & (
                    WorkflowRun.recipient_id == recipient["id"]
                )
                matches_any = match if matches_any is None else matches_any | match
            condition &= matches_any
        cancelled = WorkflowRun.update(status=RUN_CANCELLED, updated_at=utcnow()).where(condition).execute()
        return {"cancelled_runs": cancelled}

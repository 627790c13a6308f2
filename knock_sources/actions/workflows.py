"""Workflow actions: trigger and cancel, with Knock's ``/v1/workflows/{key}`` semantics.

Recipients and the actor may be user ids, inline users (identified first) or
objects (``{"id", "collection", ...}``, set first). A user id that was never
identified gets no run, and the action result names it, as Knock does.
Each new run is announced to plugins through ``workflow_run_created`` once
the trigger's transaction has committed.
"""

from __future__ import annotations

import json
import logging
import uuid

from marshmallow import Schema

from knock_sources.actions.base import Action, insert_rows
from knock_sources.actions.fields import (
    USERS_COLLECTION,
    JSONObject,
    LiteralKey,
    Recipient,
    RecipientList,
    TenantRef,
    Text,
)
from knock_sources.actions.recipients import ensure_recipient, reference
from knock_sources.actions.tenants import set_inline_tenant
from knock_sources.actions.users import look_up_users
from knock_sources.errors import ActionError
from knock_sources.store import utcnow
from knock_sources.store.dataplane import RUN_CANCELLED, RUN_TRIGGERED, Workflow, WorkflowRun
from knock_sources.store.keys import WORKFLOW_KEY

log = logging.getLogger(__name__)

MAX_RECIPIENTS = 1000
MAX_DATA_BYTES = 10 * 1024 * 1024
CANCELLATION_KEY_LENGTH = WorkflowRun.cancellation_key.max_length
# Bounds the ids per IN (...) clause when reloading runs: well under
# SQLite's and PostgreSQL's limits on bound parameters.
RELOAD_BATCH = 500


def find_workflow(environment, key: str, lookups: dict | None = None) -> Workflow:
    """Return the active workflow ``key``; ``ActionError`` if missing or inactive.

    ``lookups`` (an ``ActionContext``'s) keeps the row for the other events of the batch.
    """
    lookups = {} if lookups is None else lookups
    found = ("workflow", environment.id, key)
    if found not in lookups:
        lookups[found] = Workflow.get_or_none(environment=environment, key=key)
    workflow = lookups[found]
    if workflow is None:
        raise ActionError(f"workflow {key!r} does not exist", code="workflow_missing")
    if not workflow.active:
        raise ActionError(f"workflow {key!r} is inactive", code="workflow_inactive")
    return workflow


def announce_runs(pm, runs, event_log) -> None:
    """Call ``workflow_run_created`` for each run, each implementation on its own.

    One failing plugin is logged and neither stops the others nor undoes the
    run, which is already committed.
    """
    hook = pm.hook.workflow_run_created
    implementers = list(dict.fromkeys(impl.plugin for impl in hook.get_hookimpls()))
    callers = [
        (
            pm.get_name(plugin),
            pm.subset_hook_caller("workflow_run_created", [other for other in implementers if other is not plugin]),
        )
        for plugin in implementers
    ]
    for run in runs:
        for name, caller in callers:
            try:
                caller(run=run, event_log=event_log)
            except Exception:
                log.exception("plugin %s failed in workflow_run_created for run %s", name, run.run_id)


class TriggerWorkflowSchema(Schema):
    """Parameters of ``workflows_trigger``."""

    key = LiteralKey(required=True, rule=WORKFLOW_KEY)
    recipients = RecipientList(required=True, max_items=MAX_RECIPIENTS)
    actor = Recipient(allow_none=True)
    data = JSONObject(allow_none=True)
    tenant = TenantRef(allow_none=True)
    cancellation_key = Text(allow_none=True, max_length=CANCELLATION_KEY_LENGTH)


class TriggerWorkflow(Action):
    """Start a workflow run for each recipient."""

    action_type = "workflows_trigger"
    name = "Trigger workflow"
    params_schema = TriggerWorkflowSchema
    literal_params = frozenset({"key"})
    workflow_param = "key"

    def execute(self, context, params):
        """Create one ``WorkflowRun`` per known or inline-identified recipient."""
        environment = context.environment
        workflow = find_workflow(environment, params["key"], context.lookups)
        data = params.get("data")
        if data is not None and len(json.dumps(data).encode("utf-8")) > MAX_DATA_BYTES:
            raise ActionError("workflow data is over the 10 MB limit", code="invalid_params")
        tenant = params.get("tenant")
        if isinstance(tenant, dict):
            tenant = set_inline_tenant(environment, tenant).external_id
        actor = params.get("actor")
        if actor is not None and not ensure_recipient(environment, actor, context.lookups):
            raise ActionError(f"actor {actor['id']!r} has not been identified", code="actor_missing")
        runs, triggered, skipped = [], [], []
        for recipient in params["recipients"]:
            if not ensure_recipient(environment, recipient, context.lookups):
                skipped.append({**reference(recipient), "reason": "not identified"})
                continue
            triggered.append(reference(recipient))
            runs.append(
                WorkflowRun(
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
        if context.inserts is None:
            insert_rows(runs)
        else:
            context.inserts.extend(runs)
        return {
            "workflow_run_ids": [run.run_id for run in runs],
            "recipients": triggered,
            "skipped_recipients": skipped,
        }

    def prefetch(self, environment, payloads, lookups):
        """Look up the users among the recipients and actors."""
        recipients = [
            recipient
            for params in payloads
            for recipient in [*params["recipients"], *([params["actor"]] if params.get("actor") else [])]
        ]
        user_ids = [recipient["id"] for recipient in recipients if recipient["collection"] == USERS_COLLECTION]
        look_up_users(environment, user_ids, lookups)

    def after_commit(self, context, result):
        """Announce the committed runs to plugins."""
        run_ids = result["workflow_run_ids"]
        if not run_ids or not context.registry.pm.hook.workflow_run_created.get_hookimpls():
            return
        runs = []
        for start in range(0, len(run_ids), RELOAD_BATCH):
            batch = run_ids[start : start + RELOAD_BATCH]
            query = WorkflowRun.select(WorkflowRun, Workflow).join(Workflow).where(WorkflowRun.run_id.in_(batch))
            runs.extend(query.order_by(WorkflowRun.id))
        announce_runs(context.registry.pm, runs, context.event_log)


class CancelWorkflowSchema(Schema):
    """Parameters of ``workflows_cancel``."""

    key = LiteralKey(required=True, rule=WORKFLOW_KEY)
    cancellation_key = Text(required=True, max_length=CANCELLATION_KEY_LENGTH)
    recipients = RecipientList(allow_none=True, max_items=MAX_RECIPIENTS)


class CancelWorkflow(Action):
    """Cancel the unfinished runs started with a cancellation key."""

    action_type = "workflows_cancel"
    name = "Cancel workflow"
    params_schema = CancelWorkflowSchema
    literal_params = frozenset({"key"})
    workflow_param = "key"

    def execute(self, context, params):
        """Mark matching runs that have not finished as cancelled and report how many."""
        if context.inserts:
            # Runs triggered earlier in the batch are cancelled too.
            insert_rows(context.inserts)
            context.inserts.clear()
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
            # One IN (...) per collection: a chain of 1,000 ORs would exceed
            # SQLite's expression depth limit.
            by_collection: dict[str, list[str]] = {}
            for recipient in recipients:
                by_collection.setdefault(recipient["collection"], []).append(recipient["id"])
            matches = None
            for collection, ids in by_collection.items():
                match = (WorkflowRun.recipient_collection == collection) & WorkflowRun.recipient_id.in_(ids)
                matches = match if matches is None else matches | match
            condition &= matches
        cancelled = WorkflowRun.update(status=RUN_CANCELLED, updated_at=utcnow()).where(condition).execute()
        result = {"key": workflow.key, "cancellation_key": params["cancellation_key"], "cancelled_runs": cancelled}
        if not cancelled:
            result["note"] = "no unfinished runs matched"
        return result

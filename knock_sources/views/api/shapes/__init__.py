"""Every response shape of the JSON API, in one place.

The domain modules (``actions``, ``control``) implement Knock's semantics and
return models; this module turns models into the JSON the API (and the
``workflow_run_created`` hook) shows, in the shapes of Knock's Management API.
"""

from __future__ import annotations

from knock_sources.actions.users import RESERVED_USER_FIELDS, users_by_id
from knock_sources.control import mappings, sources, variables
from knock_sources.control.encryption import Keyring
from knock_sources.control.sources import endpoint_url, get_source_environment, tracking_host
from knock_sources.store import isoformat
from knock_sources.store.control import (
    ActionLog,
    Environment,
    EventLog,
    KnownEvent,
    Mapping,
    Replay,
    Source,
    SourceEnvironment,
    Variable,
)
from knock_sources.store.dataplane import AudienceMember, Object, Subscription, Tenant, User, Workflow, WorkflowRun


def serialize_variable(variable: Variable, keyring: Keyring) -> dict:
    """Return a variable for the API; a secret's values are never included.

    ``undecryptable`` flags a secret variable a stored value of which no
    configured key decrypts (scripts then do not get it).
    """
    overrides = {row.environment.slug: row.value for row in variable.values.join(Environment)}
    return {
        "key": variable.key,
        "secret": variable.secret,
        "description": variable.description,
        "value": None if variable.secret else variable.value,
        "environment_values": {slug: (None if variable.secret else value) for slug, value in overrides.items()},
        "has_value": variable.value is not None,
        "undecryptable": variables.is_undecryptable(keyring, variable),
        "created_at": isoformat(variable.created_at),
        "updated_at": isoformat(variable.updated_at),
    }


def serialize_mapping(mapping: Mapping, provider=None) -> dict:
    """Return a mapping in Knock's shape, with its id and whether it is one of ``provider``'s defaults."""
    return {
        "id": str(mapping.id),
        "event_type": mapping.event_type,
        "action_type": mapping.action_type,
        "action_parameters": mapping.action_parameters,
        "active": mapping.active,
        "is_default": mappings.is_default(provider, mapping),
        "is_deleted": False,
        "created_at": isoformat(mapping.created_at),
        "updated_at": isoformat(mapping.updated_at),
    }


def serialize_environment(state, source: Source, source_env: SourceEnvironment) -> dict:
    """Return one environment's settings (secrets summarised, never shown), mappings and verification summary."""
    provider = state.registry.providers.get(source.provider)
    expiries = [entry.get("expires_at") for entry in source_env.signing_secrets or ()]
    settings = {
        **(source_env.settings or {}),
        "endpoint": endpoint_url(state.config, source_env.token),
        # Secrets are write-only: only how many there are and when they expire.
        "signing_secrets_info": {"count": len(expiries), "expires_at": expiries},
    }
    if provider is not None and provider.tracking_api:
        # The write key is the endpoint's token: whoever has one has the other.
        settings.update(tracking_host=tracking_host(state.config), write_key=source_env.token)
    previous_expiry = sources.previous_token_expiry(source_env)
    return {
        "settings": settings,
        "active": source_env.active,
        "mappings": [serialize_mapping(mapping, provider) for mapping in mappings.list_for(source_env)],
        "missing_workflows": mappings.missing_workflows(state.registry, source_env),
        "verification": sources.verification_summary(state, source, source_env),
        "previous_endpoint": (
            {"url": endpoint_url(state.config, source_env.previous_token), "expires_at": isoformat(previous_expiry)}
            if previous_expiry
            else None
        ),
        "updated_at": isoformat(source_env.updated_at),
    }


def serialize_source(state, source: Source, environment: Environment) -> dict:
    """Return a source in Knock's shape with ``environment``'s settings."""
    source_env = get_source_environment(source, environment)
    return {
        "key": source.key,
        "name": source.name,
        "description": source.description,
        "provider": source.provider,
        "created_at": isoformat(source.created_at),
        "updated_at": isoformat(source.updated_at),
        "environment_settings": {environment.slug: serialize_environment(state, source, source_env)},
    }


def serialize_known_event(known: KnownEvent) -> dict:
    """Return a known event type with its count and last sample payload."""
    return {
        "event": known.event_type,
        "count": known.count,
        "first_received_at": isoformat(known.first_received_at),
        "last_received_at": isoformat(known.last_received_at),
        "sample_payload": known.sample_payload,
    }


def serialize_event_log(event_log: EventLog) -> dict:
    """Return an event log in Knock's ``SourceLog`` shape plus our debugging fields."""
    return {
        "id": str(event_log.id),
        "event": event_log.event_type,
        "status": event_log.status,
        "reason": event_log.reason,
        "error": event_log.error,
        "data": event_log.body,
        # Knock's normalized form of a Segment-style event (event, user_id, data).
        "normalized": event_log.normalized,
        "headers": event_log.headers,
        "raw_excerpt": event_log.raw_excerpt,
        "idempotency_key": event_log.idempotency_key,
        "idempotent": event_log.status == "idempotent",
        "verification_status": event_log.verification_status,
        "preprocess_output": event_log.preprocess_output,
        "source": None,
        "remote_ip": event_log.remote_ip,
        "inserted_at": isoformat(event_log.received_at),
        "occurred_at": isoformat(event_log.occurred_at),
        "processed_at": isoformat(event_log.processed_at),
        "replay_of": str(event_log.replay_of_id) if event_log.replay_of_id else None,
    }


def serialize_action_log(action_log: ActionLog) -> dict:
    """Return an action log in Knock's ``SourceLogAction`` shape."""
    return {
        "id": str(action_log.id),
        "action_type": action_log.action_type,
        "action_parameters": action_log.action_parameters,
        "action_payload": action_log.action_payload,
        "action_result": action_log.action_result,
        "action_status": action_log.status,
        "error": action_log.error,
        "inserted_at": isoformat(action_log.inserted_at),
    }


def serialize_tenant(tenant: Tenant) -> dict:
    """Return a tenant in Knock's API shape: custom properties at the top level."""
    return {
        **(tenant.properties or {}),
        "__typename": "Tenant",
        "id": tenant.external_id,
        "name": tenant.name,
        "settings": tenant.settings or {},
        "created_at": isoformat(tenant.created_at),
        "updated_at": isoformat(tenant.updated_at),
    }


def serialize_object(obj: Object) -> dict:
    """Return an object in Knock's API shape."""
    return {
        "__typename": "Object",
        "id": obj.external_id,
        "collection": obj.collection,
        "name": obj.name,
        "properties": obj.properties or {},
        "created_at": isoformat(obj.created_at),
        "updated_at": isoformat(obj.updated_at),
    }


def serialize_subscription(subscription: Subscription) -> dict:
    """Return a subscription in Knock's API shape (recipient as a reference)."""
    return {
        "__typename": "Subscription",
        "object": serialize_object(subscription.object),
        "recipient": {"collection": subscription.recipient_collection, "id": subscription.recipient_id},
        "properties": subscription.properties or {},
        "inserted_at": isoformat(subscription.created_at),
        "updated_at": isoformat(subscription.updated_at),
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
    """Return a workflow run: what a plugin delivering runs elsewhere would send."""
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


def serialize_user(user: User) -> dict:
    """Return a user in Knock's API shape: custom properties at the top level."""
    return {
        **(user.properties or {}),
        "__typename": "User",
        "id": user.external_id,
        **{field: getattr(user, field) for field in RESERVED_USER_FIELDS},
        "created_at": isoformat(user.created_at),
        "updated_at": isoformat(user.updated_at),
    }


def serialize_members(members: list[AudienceMember], environment) -> list[dict]:
    """Return audience members in Knock's API shape, each with its user when it exists (one query for all)."""
    users = users_by_id(environment, [member.user_id for member in members])
    return [
        {
            "__typename": "AudienceMember",
            "user_id": member.user_id,
            "user": serialize_user(users[member.user_id]) if member.user_id in users else None,
            "tenant": member.tenant or None,
            "added_at": isoformat(member.created_at),
        }
        for member in members
    ]


def serialize_replay(replay: Replay) -> dict:
    """Return a replay with its filter and progress."""
    source_env = replay.source_environment
    return {
        "id": str(replay.id),
        "source": source_env.source.key,
        "environment": source_env.environment.slug,
        "state": replay.state,
        "filter": replay.filter,
        "ignore_idempotency": replay.ignore_idempotency,
        "total": replay.total,
        "done": replay.done,
        "failed": replay.failed,
        "skipped": replay.skipped,
        "error": replay.error,
        "created_at": isoformat(replay.created_at),
        "updated_at": isoformat(replay.updated_at),
        "finished_at": isoformat(replay.finished_at),
    }


def serialize_tracking_outcome(outcome) -> dict:
    """Return the tracking API's answer: ``{"success": true}``, plus the rejected items when there are any."""
    if not outcome.rejected:
        return {"success": True}
    return {
        "success": True,
        "accepted": outcome.accepted,
        "rejected": [
            {"index": item.index, "messageId": item.message_id, "code": item.code, "message": item.message}
            for item in outcome.rejected
        ],
    }


def serialize_trigger(trigger, environment: Environment) -> dict:
    """Return a workflow's source-event trigger as seen from ``environment``, with every environment's switch."""
    mapping = trigger.mappings[environment.slug]
    return {
        "workflow": trigger.workflow_key,
        "type": "source_event",
        "source": trigger.source.key,
        "event": trigger.event_type,
        "mapping": trigger.fields,
        "active": mapping.active,
        "environments": {slug: {"active": row.active} for slug, row in sorted(trigger.mappings.items())},
        "mapping_id": str(mapping.id),
        "created_at": isoformat(mapping.created_at),
        "updated_at": isoformat(mapping.updated_at),
    }

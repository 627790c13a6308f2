"""The response shapes of ``shapes/__init__.py``, documented for ``/openapi.json``.

One marshmallow schema per serializer, named after it; the schemathesis run of
``make api-check`` holds every response to them. Objects allow keys that are
not listed (custom properties of users and tenants, settings of plugins).
"""

from __future__ import annotations

from functools import lru_cache

from marshmallow import INCLUDE, Schema, fields


class Shape(Schema):
    """A response shape: keys beyond those listed are allowed."""

    class Meta:
        unknown = INCLUDE


def _text(**kwargs):
    return fields.String(required=True, allow_none=kwargs.pop("null", False), **kwargs)


def _time(null=False):
    return fields.DateTime(required=True, allow_none=null)


def _any(null=True):
    return fields.Raw(required=True, allow_none=null)


def _object(null=False):
    return fields.Dict(required=True, allow_none=null)


class PageInfoShape(Shape):
    """Cursors of a list: pass ``after`` (older) or ``before`` (newer) back to page."""

    after = _text(null=True)
    before = _text(null=True)
    page_size = fields.Integer(required=True)


@lru_cache(maxsize=None)
def page_of(entry: type[Schema]) -> type[Schema]:
    """The ``{"entries", "page_info"}`` shape of a list of ``entry``."""
    name = entry.__name__.removesuffix("Shape") + "PageShape"
    return Shape.from_dict(
        {"entries": fields.List(fields.Nested(entry), required=True), "page_info": fields.Nested(PageInfoShape)},
        name=name,
    )


class ErrorShape(Shape):
    """Every error: a machine-readable ``code``, a ``message``, and per-field ``errors`` on 422."""

    code = _text()
    message = _text()
    errors = fields.Raw()


class VariableShape(Shape):
    """``serialize_variable``."""

    key = _text()
    secret = fields.Boolean(required=True)
    description = _text(null=True)
    value = _text(null=True)
    environment_values = fields.Dict(keys=fields.String(), values=fields.String(allow_none=True), required=True)
    has_value = fields.Boolean(required=True)
    created_at = _time()
    updated_at = _time()


class MappingShape(Shape):
    """``serialize_mapping``."""

    id = _text()
    is_default = fields.Boolean(required=True)
    event_type = _text()
    action_type = _text()
    action_parameters = _object()
    active = fields.Boolean(required=True)
    is_deleted = fields.Boolean(required=True)
    created_at = _time()
    updated_at = _time()


class SigningSecretsInfoShape(Shape):
    """How many signing secrets there are and when they expire; never the secrets."""

    count = fields.Integer(required=True)
    expires_at = fields.List(fields.String(allow_none=True), required=True)


class SettingsShape(Shape):
    """An environment's stored settings, plus its webhook URL and a summary of its secrets."""

    endpoint = _text()
    signing_secrets_info = fields.Nested(SigningSecretsInfoShape, required=True)


class ProblemCodeShape(Shape):
    """Why something cannot work: a code and a message."""

    code = _text()
    message = _text()


class SecretsSummaryShape(Shape):
    """A source environment's signing secrets, counted (never shown)."""

    count = fields.Integer(required=True)
    usable = fields.Integer(required=True)
    expired = fields.Integer(required=True)
    undecryptable = fields.Integer(required=True)
    expires_at = fields.List(fields.String(allow_none=True), required=True)


class VerificationShape(Shape):
    """``ingest.verification.summary``: how requests are verified, and whether any can pass."""

    method = _text()
    enforced = fields.Boolean(required=True)
    script = _object(null=True)
    secrets = fields.Nested(SecretsSummaryShape, required=True)
    accepts_requests = fields.Boolean(required=True)
    problem = fields.Nested(ProblemCodeShape, required=True, allow_none=True)


class PreviousEndpointShape(Shape):
    """A rotated token's URL, valid until ``expires_at``."""

    url = _text()
    expires_at = _time()


class EnvironmentShape(Shape):
    """``serialize_environment``."""

    settings = fields.Nested(SettingsShape, required=True)
    active = fields.Boolean(required=True)
    mappings = fields.List(fields.Nested(MappingShape), required=True)
    missing_workflows = fields.List(fields.String(), required=True)
    verification = fields.Nested(VerificationShape, required=True)
    previous_endpoint = fields.Nested(PreviousEndpointShape, required=True, allow_none=True)
    updated_at = _time()


class SourceShape(Shape):
    """``serialize_source``."""

    key = _text()
    name = _text()
    description = _text(null=True)
    provider = _text()
    created_at = _time()
    updated_at = _time()
    environment_settings = fields.Dict(keys=fields.String(), values=fields.Nested(EnvironmentShape), required=True)


class KnownEventShape(Shape):
    """``serialize_known_event``."""

    event = _text()
    count = fields.Integer(required=True)
    first_received_at = _time()
    last_received_at = _time()
    sample_payload = _any()


class ActionLogShape(Shape):
    """``serialize_action_log``."""

    id = _text()
    action_type = _text()
    action_parameters = _object()
    action_payload = _any()
    action_result = _any()
    action_status = _text()
    error = _text(null=True)
    inserted_at = _time()


class EventLogShape(Shape):
    """``serialize_event_log``; ``actions`` with ``include[]=actions`` and on one log."""

    id = _text()
    event = _text(null=True)
    status = _text()
    reason = _text(null=True)
    error = _text(null=True)
    data = _any()
    headers = _object()
    raw_excerpt = _text(null=True)
    idempotency_key = _text(null=True)
    idempotent = fields.Boolean(required=True)
    verification_status = _text(null=True)
    preprocess_output = _object(null=True)
    source = _any()
    remote_ip = _text(null=True)
    inserted_at = _time()
    occurred_at = _time(null=True)
    processed_at = _time(null=True)
    replay_of = _text(null=True)
    actions = fields.List(fields.Nested(ActionLogShape))


class SourceStatusShape(Shape):
    """``GET /v1/sources/{key}/status``."""

    events_count = fields.Integer(required=True)
    rejected_count = fields.Integer(required=True)
    last_event_received = _time(null=True)
    mappings_count = fields.Integer(required=True)
    mappings_requiring_commit = fields.List(fields.Raw(), required=True)


class TenantShape(Shape):
    """``serialize_tenant``; custom properties are top-level keys too."""

    __typename = _text()
    id = _text()
    name = _text(null=True)
    settings = _object()
    created_at = _time()
    updated_at = _time()


class ObjectShape(Shape):
    """``serialize_object``."""

    __typename = _text()
    id = _text()
    collection = _text()
    name = _text(null=True)
    properties = _object()
    created_at = _time()
    updated_at = _time()


class RecipientShape(Shape):
    """A reference to a recipient: a user (``$users``) or an object."""

    collection = _text()
    id = _text()


class SubscriptionShape(Shape):
    """``serialize_subscription``."""

    __typename = _text()
    object = fields.Nested(ObjectShape, required=True)
    recipient = fields.Nested(RecipientShape, required=True)
    properties = _object()
    inserted_at = _time()
    updated_at = _time()


class WorkflowShape(Shape):
    """``serialize_workflow``."""

    key = _text()
    name = _text(null=True)
    active = fields.Boolean(required=True)
    created_at = _time()
    updated_at = _time()


class WorkflowRunShape(Shape):
    """``serialize_run``."""

    id = _text()
    workflow = _text()
    recipient = fields.Nested(RecipientShape, required=True)
    actor = _any()
    tenant = _text(null=True)
    data = _any()
    cancellation_key = _text(null=True)
    status = _text()
    source_log_id = _text(null=True)
    inserted_at = _time()
    updated_at = _time()


class UserShape(Shape):
    """``serialize_user``; custom properties are top-level keys too."""

    __typename = _text()
    id = _text()
    name = _text(null=True)
    email = _text(null=True)
    phone_number = _text(null=True)
    avatar = _text(null=True)
    locale = _text(null=True)
    timezone = _text(null=True)
    created_at = _time()
    updated_at = _time()


class AudienceMemberShape(Shape):
    """``serialize_member``."""

    __typename = _text()
    user_id = _text()
    user = fields.Nested(UserShape, required=True, allow_none=True)
    tenant = _text(null=True)
    added_at = _time()


class ProviderShape(Shape):
    """``Provider.describe``: an installed provider plugin."""

    key = _text()
    version = _text(null=True)
    provider = _object()
    signed = fields.Boolean(required=True)
    verification = _object()
    default_settings = _object()
    default_action_mappings = fields.List(fields.Dict(), required=True)
    example_payloads = _object()


class PlannedActionShape(Shape):
    """``actions.runner.plan``: what one mapping would do."""

    action_type = _text()
    action_parameters = _object()
    action_payload = _any()
    action_status = _text()
    error = _text(null=True)


class ProblemShape(Shape):
    """A problem a dry run found, and where."""

    field = _text()
    message = _text()


class RehearsalShape(Shape):
    """``control.rehearsal.rehearse``."""

    log_id = _any()
    status = _text()
    event = _text()
    occurred_at = _time()
    idempotency_key = _text(null=True)
    idempotent = fields.Boolean(required=True)
    verification_status = _text(null=True)
    preprocess_output = _object(null=True)
    actions = fields.List(fields.Nested(PlannedActionShape), required=True)
    action_logs_count = fields.Integer(required=True)
    successful_action_logs_count = fields.Integer(required=True)
    failed_action_logs_count = fields.Integer(required=True)
    errors = fields.List(fields.Nested(ProblemShape), required=True, allow_none=True)


class ScriptErrorShape(Shape):
    """``ScriptError.to_dict``."""

    kind = _text()
    message = _text()
    line = fields.Integer(required=True, allow_none=True)
    column = fields.Integer(required=True, allow_none=True)


class ScriptTestShape(Shape):
    """``control.rehearsal.try_script``."""

    output = _object(null=True)
    verified = fields.Boolean(required=True)
    error = fields.Nested(ScriptErrorShape, required=True, allow_none=True)
    duration_ms = fields.Float(required=True)


class ReplayShape(Shape):
    """``serialize_replay``."""

    id = _text()
    source = _text()
    environment = _text()
    state = _text()
    filter = _object()
    ignore_idempotency = fields.Boolean(required=True)
    total = fields.Integer(required=True)
    done = fields.Integer(required=True)
    failed = fields.Integer(required=True)
    skipped = fields.Integer(required=True)
    error = _text(null=True)
    created_at = _time()
    updated_at = _time()
    finished_at = _time(null=True)


class ReplayPlanShape(Shape):
    """One event of a replay's dry run: ``control.replay._plan`` (the rehearsal's fields when replayable)."""

    id = _text()
    event = _text(null=True)
    status = _text()
    replayable = fields.Boolean(required=True)
    #: Why a replay would be rejected again or cannot run; ``None`` when it would be accepted.
    rejected = _text(null=True)
    errors = fields.List(fields.Nested(ProblemShape), required=True)
    occurred_at = fields.DateTime()
    idempotency_key = fields.String(allow_none=True)
    idempotent = fields.Boolean()
    actions = fields.List(fields.Nested(PlannedActionShape))
    action_logs_count = fields.Integer()
    successful_action_logs_count = fields.Integer()
    failed_action_logs_count = fields.Integer()


class ReplayDryRunShape(Shape):
    """``control.replay.dry_run``."""

    dry_run = fields.Boolean(required=True)
    count = fields.Integer(required=True)
    capped = fields.Boolean(required=True)
    events = fields.List(fields.Nested(ReplayPlanShape), required=True)


class HealthShape(Shape):
    """``GET /healthz``."""

    status = _text()
    checks = fields.Dict(keys=fields.String(), values=fields.String(), required=True)


class TriggerShape(Shape):
    """``serialize_trigger``: a workflow's source-event trigger."""

    workflow = _text()
    type = _text()
    source = _text()
    event = _text()
    mapping = _object()
    active = fields.Boolean(required=True)
    environments = fields.Dict(keys=fields.String(), values=fields.Dict(), required=True)
    mapping_id = _text()
    created_at = _time()
    updated_at = _time()


class RejectedItemShape(Shape):
    """One item of a tracking call that was not accepted."""

    index = fields.Integer(required=True)
    messageId = fields.String(required=True, allow_none=True)  # noqa: N815 - Segment's name
    code = _text()
    message = _text()


class TrackingOutcomeShape(Shape):
    """``serialize_tracking_outcome``: exactly ``{"success": true}`` unless some items were rejected."""

    success = fields.Boolean(required=True)
    accepted = fields.Integer()
    rejected = fields.List(fields.Nested(RejectedItemShape))

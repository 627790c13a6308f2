"""The control plane's response shapes (sources, logs, mappings, variables, replays), for ``/openapi.json``.

One marshmallow schema per serializer of ``shapes/__init__.py``, named after
it; the data plane's are in ``data_schemas.py``. The schemathesis run of
``make api-check`` holds every response to them. Objects allow keys that are
not listed (settings of plugins).
"""

from __future__ import annotations

from marshmallow import fields

from knock_sources.views.api.shapes.base import Shape, anything, dictionary, text, timestamp


class ErrorShape(Shape):
    """Every error: a machine-readable ``code``, a ``message``, and per-field ``errors`` on 422."""

    code = text()
    message = text()
    errors = fields.Raw()


class VariableShape(Shape):
    """``serialize_variable``."""

    key = text()
    secret = fields.Boolean(required=True)
    description = text(null=True)
    value = text(null=True)
    environment_values = fields.Dict(keys=fields.String(), values=fields.String(allow_none=True), required=True)
    has_value = fields.Boolean(required=True)
    created_at = timestamp()
    updated_at = timestamp()


class MappingShape(Shape):
    """``serialize_mapping``."""

    id = text()
    is_default = fields.Boolean(required=True)
    event_type = text()
    action_type = text()
    action_parameters = dictionary()
    active = fields.Boolean(required=True)
    is_deleted = fields.Boolean(required=True)
    created_at = timestamp()
    updated_at = timestamp()


class SigningSecretsInfoShape(Shape):
    """How many signing secrets there are and when they expire; never the secrets."""

    count = fields.Integer(required=True)
    expires_at = fields.List(fields.String(allow_none=True), required=True)


class SettingsShape(Shape):
    """An environment's stored settings, plus its webhook URL and a summary of its secrets."""

    endpoint = text()
    signing_secrets_info = fields.Nested(SigningSecretsInfoShape, required=True)


class ProblemCodeShape(Shape):
    """Why something cannot work: a code and a message."""

    code = text()
    message = text()


class SecretsSummaryShape(Shape):
    """A source environment's signing secrets, counted (never shown)."""

    count = fields.Integer(required=True)
    usable = fields.Integer(required=True)
    expired = fields.Integer(required=True)
    undecryptable = fields.Integer(required=True)
    expires_at = fields.List(fields.String(allow_none=True), required=True)


class VerificationShape(Shape):
    """``ingest.verification.summary``: how requests are verified, and whether any can pass."""

    method = text()
    enforced = fields.Boolean(required=True)
    script = dictionary(null=True)
    secrets = fields.Nested(SecretsSummaryShape, required=True)
    accepts_requests = fields.Boolean(required=True)
    problem = fields.Nested(ProblemCodeShape, required=True, allow_none=True)


class PreviousEndpointShape(Shape):
    """A rotated token's URL, valid until ``expires_at``."""

    url = text()
    expires_at = timestamp()


class EnvironmentShape(Shape):
    """``serialize_environment``."""

    settings = fields.Nested(SettingsShape, required=True)
    active = fields.Boolean(required=True)
    mappings = fields.List(fields.Nested(MappingShape), required=True)
    missing_workflows = fields.List(fields.String(), required=True)
    verification = fields.Nested(VerificationShape, required=True)
    previous_endpoint = fields.Nested(PreviousEndpointShape, required=True, allow_none=True)
    updated_at = timestamp()


class SourceShape(Shape):
    """``serialize_source``."""

    key = text()
    name = text()
    description = text(null=True)
    provider = text()
    created_at = timestamp()
    updated_at = timestamp()
    environment_settings = fields.Dict(keys=fields.String(), values=fields.Nested(EnvironmentShape), required=True)


class KnownEventShape(Shape):
    """``serialize_known_event``."""

    event = text()
    count = fields.Integer(required=True)
    first_received_at = timestamp()
    last_received_at = timestamp()
    sample_payload = anything()


class ActionLogShape(Shape):
    """``serialize_action_log``."""

    id = text()
    action_type = text()
    action_parameters = dictionary()
    action_payload = anything()
    action_result = anything()
    action_status = text()
    error = text(null=True)
    inserted_at = timestamp()


class EventLogShape(Shape):
    """``serialize_event_log``; ``actions`` with ``include[]=actions`` and on one log."""

    id = text()
    event = text(null=True)
    status = text()
    reason = text(null=True)
    error = text(null=True)
    data = anything()
    headers = dictionary()
    raw_excerpt = text(null=True)
    idempotency_key = text(null=True)
    idempotent = fields.Boolean(required=True)
    verification_status = text(null=True)
    preprocess_output = dictionary(null=True)
    source = anything()
    remote_ip = text(null=True)
    inserted_at = timestamp()
    occurred_at = timestamp(null=True)
    processed_at = timestamp(null=True)
    replay_of = text(null=True)
    actions = fields.List(fields.Nested(ActionLogShape))


class SourceStatusShape(Shape):
    """``GET /v1/sources/{key}/status``."""

    events_count = fields.Integer(required=True)
    rejected_count = fields.Integer(required=True)
    last_event_received = timestamp(null=True)
    mappings_count = fields.Integer(required=True)
    mappings_requiring_commit = fields.List(fields.Raw(), required=True)


class ProviderShape(Shape):
    """``Provider.describe``: an installed provider plugin."""

    key = text()
    version = text(null=True)
    provider = dictionary()
    signed = fields.Boolean(required=True)
    verification = dictionary()
    default_settings = dictionary()
    default_action_mappings = fields.List(fields.Dict(), required=True)
    example_payloads = dictionary()


class PlannedActionShape(Shape):
    """``actions.runner.plan``: what one mapping would do."""

    action_type = text()
    action_parameters = dictionary()
    action_payload = anything()
    action_status = text()
    error = text(null=True)


class ProblemShape(Shape):
    """A problem a dry run found, and where."""

    field = text()
    message = text()


class RehearsalShape(Shape):
    """``control.rehearsal.rehearse``."""

    log_id = anything()
    status = text()
    event = text()
    occurred_at = timestamp()
    idempotency_key = text(null=True)
    idempotent = fields.Boolean(required=True)
    verification_status = text(null=True)
    preprocess_output = dictionary(null=True)
    actions = fields.List(fields.Nested(PlannedActionShape), required=True)
    action_logs_count = fields.Integer(required=True)
    successful_action_logs_count = fields.Integer(required=True)
    failed_action_logs_count = fields.Integer(required=True)
    errors = fields.List(fields.Nested(ProblemShape), required=True, allow_none=True)


class ScriptErrorShape(Shape):
    """``ScriptError.to_dict``."""

    kind = text()
    message = text()
    line = fields.Integer(required=True, allow_none=True)
    column = fields.Integer(required=True, allow_none=True)


class ScriptTestShape(Shape):
    """``control.rehearsal.try_script``."""

    output = dictionary(null=True)
    verified = fields.Boolean(required=True)
    error = fields.Nested(ScriptErrorShape, required=True, allow_none=True)
    duration_ms = fields.Float(required=True)


class ReplayShape(Shape):
    """``serialize_replay``."""

    id = text()
    source = text()
    environment = text()
    state = text()
    filter = dictionary()
    ignore_idempotency = fields.Boolean(required=True)
    total = fields.Integer(required=True)
    done = fields.Integer(required=True)
    failed = fields.Integer(required=True)
    skipped = fields.Integer(required=True)
    error = text(null=True)
    created_at = timestamp()
    updated_at = timestamp()
    finished_at = timestamp(null=True)


class ReplayPlanShape(Shape):
    """One event of a replay's dry run: ``control.replay_selection._plan`` (the rehearsal's fields when replayable)."""

    id = text()
    event = text(null=True)
    status = text()
    replayable = fields.Boolean(required=True)
    #: Why a replay would be rejected again or cannot run; ``None`` when it would be accepted.
    rejected = text(null=True)
    errors = fields.List(fields.Nested(ProblemShape), required=True)
    occurred_at = fields.DateTime()
    idempotency_key = fields.String(allow_none=True)
    idempotent = fields.Boolean()
    actions = fields.List(fields.Nested(PlannedActionShape))
    action_logs_count = fields.Integer()
    successful_action_logs_count = fields.Integer()
    failed_action_logs_count = fields.Integer()


class ReplayDryRunShape(Shape):
    """``control.replay_selection.dry_run``."""

    dry_run = fields.Boolean(required=True)
    count = fields.Integer(required=True)
    capped = fields.Boolean(required=True)
    events = fields.List(fields.Nested(ReplayPlanShape), required=True)


class HealthShape(Shape):
    """``GET /healthz``."""

    status = text()
    checks = fields.Dict(keys=fields.String(), values=fields.String(), required=True)


class RejectedItemShape(Shape):
    """One item of a tracking call that was not accepted."""

    index = fields.Integer(required=True)
    messageId = fields.String(required=True, allow_none=True)  # noqa: N815 - Segment's name
    code = text()
    message = text()


class TrackingOutcomeShape(Shape):
    """``serialize_tracking_outcome``: exactly ``{"success": true}`` unless some items were rejected."""

    success = fields.Boolean(required=True)
    accepted = fields.Integer()
    rejected = fields.List(fields.Nested(RejectedItemShape))

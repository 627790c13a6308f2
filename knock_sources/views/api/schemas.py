"""marshmallow schemas for JSON API bodies.

Unknown keys are refused (422) rather than ignored, so that a typo such as
``idempotency_key_pth`` is reported instead of silently doing nothing.
"""

from __future__ import annotations

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from knock_sources.paths import InvalidPath, parse_path
from knock_sources.store import EVENT_STATUSES, MAX_ROW_ID, REPLAYABLE_STATUSES


class Path(fields.String):
    """A dot-path such as ``body.data.id``; syntax-checked on load."""

    def _deserialize(self, value, attr, data, **kwargs):
        value = super()._deserialize(value, attr, data, **kwargs)
        try:
            parse_path(value)
        except InvalidPath as exc:
            raise ValidationError(str(exc)) from None
        return value


class SigningSecretSchema(Schema):
    """One signing secret with an optional expiry (for rolling secrets)."""

    secret = fields.String(required=True, validate=validate.Length(min=1, max=1024))
    expires_at = fields.DateTime(load_default=None, allow_none=True)


class ScriptSchema(Schema):
    """A source environment's script: JavaScript defining ``main(ctx)``."""

    class Meta:
        unknown = RAISE

    language = fields.String(load_default="javascript", validate=validate.OneOf(["javascript"]))
    source = fields.String(required=True, validate=validate.Length(min=1, max=65536))


class SourceSettingsSchema(Schema):
    """``environment_settings.<env>.settings`` of ``PUT /v1/sources/{key}``."""

    class Meta:
        unknown = RAISE

    event_type_path = Path(allow_none=True)
    timestamp_path = Path(allow_none=True)
    idempotency_key_path = Path(allow_none=True)
    enforce_idempotency = fields.Boolean()
    enforce_verification = fields.Boolean()
    handle_identifies = fields.Boolean()
    secret_header = fields.String(allow_none=True, validate=validate.Length(min=1, max=128))
    tolerance_seconds = fields.Integer(allow_none=True, validate=validate.Range(min=1, max=86400))
    preprocess_script = fields.Nested(ScriptSchema, allow_none=True)
    signing_secret = fields.String(load_only=True, validate=validate.Length(min=1, max=1024))
    signing_secrets = fields.List(fields.Nested(SigningSecretSchema), load_only=True)
    # Read-only in responses; accepted and ignored so a GET body can be PUT back.
    endpoint = fields.String(load_only=True)
    signing_secrets_info = fields.Dict(load_only=True)
    write_key = fields.String(load_only=True)
    tracking_host = fields.String(load_only=True)


class MappingSchema(Schema):
    """One event-action mapping."""

    class Meta:
        unknown = RAISE

    event_type = fields.String(required=True, validate=validate.Length(min=1, max=255))
    action_type = fields.String(required=True)
    action_parameters = fields.Dict(keys=fields.String(), load_default=dict, allow_none=True)
    active = fields.Boolean(load_default=True)
    is_deleted = fields.Boolean(load_default=False)
    # Read-only in responses; accepted and ignored.
    created_at = fields.String(load_only=True)
    updated_at = fields.String(load_only=True)


class EnvironmentSettingsSchema(Schema):
    """The settings and mappings of a source in one environment."""

    class Meta:
        unknown = RAISE

    settings = fields.Nested(SourceSettingsSchema, load_default=dict)
    mappings = fields.List(fields.Nested(MappingSchema), load_default=None, allow_none=True)
    updated_at = fields.String(load_only=True)
    verified = fields.Boolean(load_only=True)


class SourceBodySchema(Schema):
    """``source`` in the body of ``PUT /v1/sources/{key}``."""

    class Meta:
        unknown = RAISE

    name = fields.String(required=True, validate=validate.Length(min=1, max=255))
    description = fields.String(allow_none=True, load_default=None)
    preconfigured_provider = fields.String(allow_none=True, load_default=None)
    environment_settings = fields.Dict(
        keys=fields.String(), values=fields.Nested(EnvironmentSettingsSchema), load_default=dict
    )
    # Read-only fields a client may send back from a GET.
    key = fields.String(load_only=True)
    provider = fields.String(load_only=True)
    verified = fields.Boolean(load_only=True)
    created_at = fields.String(load_only=True)
    updated_at = fields.String(load_only=True)


class WorkflowBodySchema(Schema):
    """``workflow`` in the body of ``PUT /v1/workflows/{key}``."""

    class Meta:
        unknown = RAISE

    name = fields.String(allow_none=True, load_default=None, validate=validate.Length(max=255))
    active = fields.Boolean(load_default=True)


class TriggerMappingSchema(Schema):
    """A trigger's field mapping: each field a path, a literal ``{"value": ...}`` or (``data``) an object of paths."""

    class Meta:
        unknown = RAISE

    recipients = fields.Raw(required=True)
    actor = fields.Raw(allow_none=True)
    tenant = fields.Raw(allow_none=True)
    cancellation_key = fields.Raw(allow_none=True)
    data = fields.Raw(allow_none=True)


class TriggerBodySchema(Schema):
    """``trigger`` in the body of ``POST /v1/workflows/{key}/triggers``."""

    class Meta:
        unknown = RAISE

    source = fields.String(required=True, validate=validate.Length(min=1, max=128))
    event = fields.String(required=True, validate=validate.Length(min=1, max=255))
    mapping = fields.Nested(TriggerMappingSchema, required=True)


class TriggerUpdateSchema(Schema):
    """``trigger`` in the body of ``PATCH /v1/workflows/{key}/triggers/{source}/{event}``."""

    class Meta:
        unknown = RAISE

    active = fields.Boolean()
    mapping = fields.Nested(TriggerMappingSchema)


def envelope_schema(name: str, inner: type[Schema]) -> Schema:
    """Return a schema for ``{name: <inner>}``, the shape Knock's API wraps bodies in."""
    # Named after the inner schema, so that the OpenAPI document tells them apart.
    envelope = Schema.from_dict(
        {name: fields.Nested(inner, required=True)}, name=f"{inner.__name__.removesuffix('Schema')}EnvelopeSchema"
    )
    return envelope(unknown=RAISE)


class LogQuerySchema(Schema):
    """Filters of ``GET /v1/sources/{key}/logs``; pagination is read separately."""

    event = fields.String()
    status = fields.String(validate=validate.OneOf(EVENT_STATUSES))
    starting_at = fields.DateTime()
    ending_at = fields.DateTime()


class VariableBodySchema(Schema):
    """``variable`` in the body of ``PUT /v1/variables/{key}``; absent fields are kept."""

    class Meta:
        unknown = RAISE

    value = fields.String(allow_none=True, validate=validate.Length(max=65536))
    secret = fields.Boolean()
    description = fields.String(allow_none=True, validate=validate.Length(max=1024))
    environment_values = fields.Dict(
        keys=fields.String(), values=fields.String(allow_none=True, validate=validate.Length(max=65536))
    )


class SamplePayloadSchema(Schema):
    """A sample request: ``{"body", "headers"}``, optionally the exact ``raw_body`` text."""

    class Meta:
        unknown = RAISE

    body = fields.Dict(load_default=dict)
    headers = fields.Dict(keys=fields.String(), values=fields.Raw(), load_default=dict)
    raw_body = fields.String(load_default=None, allow_none=True)


class RehearseBodySchema(Schema):
    """Body of ``POST /v1/sources/{key}/rehearse``."""

    class Meta:
        unknown = RAISE

    payload = fields.Nested(SamplePayloadSchema, required=True)


class ScriptTestBodySchema(Schema):
    """Body of ``POST /v1/sources/{key}/scripts/test``; without ``script`` the saved one runs."""

    class Meta:
        unknown = RAISE

    script = fields.Nested(ScriptSchema, load_default=None, allow_none=True)
    payload = fields.Nested(SamplePayloadSchema, load_default=dict)


class ReplayFilterSchema(Schema):
    """Which stored events a replay takes; without ``statuses``, failed ones (or any, given ``ids``)."""

    class Meta:
        unknown = RAISE

    statuses = fields.List(fields.String(validate=validate.OneOf(REPLAYABLE_STATUSES)), validate=validate.Length(min=1))
    events = fields.List(
        fields.String(validate=validate.Length(min=1, max=255)), validate=validate.Length(min=1, max=100)
    )
    starting_at = fields.DateTime()
    ending_at = fields.DateTime()
    ids = fields.List(
        fields.Integer(strict=True, validate=validate.Range(min=1, max=MAX_ROW_ID)),
        validate=validate.Length(min=1, max=1000),
    )


class ReplayBodySchema(Schema):
    """Body of ``POST /v1/sources/{key}/replay``."""

    class Meta:
        unknown = RAISE

    filter = fields.Nested(ReplayFilterSchema, load_default=dict)
    #: Count and plan instead of replaying.
    dry_run = fields.Boolean(load_default=False)
    #: Run events even if their idempotency key was seen.
    ignore_idempotency = fields.Boolean(load_default=False)
    #: How many events a dry run plans.
    limit = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))

"""marshmallow schemas for JSON API bodies and query strings.

Unknown keys are refused (422) rather than ignored, so that a typo such as
``idempotency_key_pth`` is reported instead of silently doing nothing.
Booleans, integers and keys are strict (``fields.py``): ``"yes"`` is not a
boolean and a source key follows the store's rule.
"""

from __future__ import annotations

from marshmallow import RAISE, Schema, fields, validate

from knock_sources.store import EVENT_STATUSES, REPLAYABLE_STATUSES
from knock_sources.store.dataplane import RUN_STATUSES
from knock_sources.store.keys import SOURCE_KEY
from knock_sources.views.api.fields import HeaderName, Key, Keyed, Path, StrictBoolean, StrictInteger

# Ids are 64-bit integers in every backend.
MAX_ROW_ID = 2**63 - 1
MAX_PAGE_SIZE = 100
#: The longest grace period a rotated token may be given: 30 days.
MAX_GRACE_SECONDS = 30 * 86400


class RowId(fields.Field):
    """A row id, written as a JSON string of digits (as the API shows ids) or an integer."""

    #: What it accepts, as the OpenAPI document states it (for bodies, queries and path segments).
    #: The pattern bounds the digits, not the value: ``maximum`` only applies to an integer.
    JSON_SCHEMA = {"type": ["string", "integer"], "pattern": "^[0-9]{1,19}$", "minimum": 0, "maximum": MAX_ROW_ID}

    default_error_messages = {"invalid": "Not a valid id."}

    def _deserialize(self, value, attr, data, **kwargs):
        text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
        if not isinstance(text, str) or not text.isascii() or not text.isdigit() or int(text) > MAX_ROW_ID:
            raise self.make_error("invalid")
        return int(text)


class SigningSecretSchema(Schema):
    """One signing secret with an optional expiry (for rolling secrets)."""

    class Meta:
        unknown = RAISE

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
    enforce_idempotency = StrictBoolean()
    enforce_verification = StrictBoolean()
    handle_identifies = StrictBoolean()
    # Stored stripped and lower-cased: the name verification reads and redaction hides.
    secret_header = HeaderName(allow_none=True)
    tolerance_seconds = StrictInteger(allow_none=True, validate=validate.Range(min=1, max=86400))
    preprocess_script = fields.Nested(ScriptSchema, allow_none=True)
    signing_secret = fields.String(load_only=True, validate=validate.Length(min=1, max=1024))
    signing_secrets = fields.List(fields.Nested(SigningSecretSchema), load_only=True)
    # Read-only in responses; accepted and ignored so a GET body can be PUT back.
    endpoint = fields.String(load_only=True)
    signing_secrets_info = fields.Dict(load_only=True)
    write_key = fields.String(load_only=True)
    tracking_host = fields.String(load_only=True)


class MappingFieldsSchema(Schema):
    """The fields of a mapping a client may set; all optional (``PATCH``)."""

    class Meta:
        unknown = RAISE

    event_type = fields.String(validate=validate.Length(min=1, max=255))
    action_type = fields.String(validate=validate.Length(min=1, max=64))
    action_parameters = fields.Dict(keys=fields.String(), allow_none=True)
    active = StrictBoolean()


class MappingSchema(MappingFieldsSchema):
    """One event-action mapping, as ``POST .../mappings`` creates it and a ``PUT`` list holds it."""

    event_type = fields.String(required=True, validate=validate.Length(min=1, max=255))
    action_type = fields.String(required=True, validate=validate.Length(min=1, max=64))
    action_parameters = fields.Dict(keys=fields.String(), load_default=dict, allow_none=True)
    active = StrictBoolean(load_default=True)
    is_deleted = StrictBoolean(load_default=False)
    #: In a ``PUT`` list: the mapping to update in place (a GET body put back keeps its ids).
    id = RowId()
    # Read-only in responses; accepted and ignored.
    is_default = fields.Boolean(load_only=True)
    created_at = fields.String(load_only=True)
    updated_at = fields.String(load_only=True)


class EnvironmentSettingsSchema(Schema):
    """The settings, mappings and switch of a source in one environment."""

    class Meta:
        unknown = RAISE

    settings = fields.Nested(SourceSettingsSchema)
    mappings = fields.List(fields.Nested(MappingSchema), allow_none=True)
    #: ``false`` disables the environment: its URL answers 404 until it is switched back on.
    active = StrictBoolean()
    # Read-only in responses; accepted and ignored.
    updated_at = fields.String(load_only=True)
    verification = fields.Dict(load_only=True)
    missing_workflows = fields.List(fields.String(), load_only=True)
    previous_endpoint = fields.Raw(load_only=True, allow_none=True)


class SourceBodySchema(Schema):
    """``source`` in the body of ``PUT /v1/sources/{key}``."""

    class Meta:
        unknown = RAISE

    name = fields.String(required=True, validate=validate.Length(min=1, max=255))
    description = fields.String(allow_none=True)
    preconfigured_provider = fields.String(allow_none=True)
    environment_settings = Keyed(keys=fields.String(), values=fields.Nested(EnvironmentSettingsSchema))
    # Read-only fields a client may send back from a GET.
    key = fields.String(load_only=True)
    provider = fields.String(load_only=True)
    created_at = fields.String(load_only=True)
    updated_at = fields.String(load_only=True)


class SourcePatchSchema(SourceBodySchema):
    """``source`` in the body of ``PATCH /v1/sources/{key}``: only what is given changes."""

    name = fields.String(validate=validate.Length(min=1, max=255))


class RotateTokenSchema(Schema):
    """Body of ``POST /v1/sources/{key}/rotate_token`` (optional)."""

    class Meta:
        unknown = RAISE

    #: How long the replaced token keeps working; ``TOKEN_GRACE_SECONDS`` when left out, 0 to end it now.
    grace_period_seconds = StrictInteger(validate=validate.Range(min=0, max=MAX_GRACE_SECONDS))


class WorkflowBodySchema(Schema):
    """``workflow`` in the body of ``PUT /v1/workflows/{key}``."""

    class Meta:
        unknown = RAISE

    name = fields.String(allow_none=True, load_default=None, validate=validate.Length(max=255))
    active = StrictBoolean(load_default=True)


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

    source = Key(SOURCE_KEY, required=True)
    event = fields.String(required=True, validate=validate.Length(min=1, max=255))
    mapping = fields.Nested(TriggerMappingSchema, required=True)


class TriggerUpdateSchema(Schema):
    """``trigger`` in the body of ``PATCH /v1/workflows/{key}/triggers/{source}/{event}``."""

    class Meta:
        unknown = RAISE

    active = StrictBoolean()
    mapping = fields.Nested(TriggerMappingSchema)


def envelope_schema(name: str, inner: type[Schema]) -> Schema:
    """Return a schema for ``{name: <inner>}``, the shape Knock's API wraps bodies in."""
    # Named after the inner schema, so that the OpenAPI document tells them apart.
    envelope = Schema.from_dict(
        {name: fields.Nested(inner, required=True)}, name=f"{inner.__name__.removesuffix('Schema')}EnvelopeSchema"
    )
    return envelope(unknown=RAISE)


class PageQuerySchema(Schema):
    """Pagination of every list: ``limit`` (1 to 100, default 25) and the ``after``/``before`` cursors."""

    limit = fields.Integer(load_default=25, validate=validate.Range(min=1, max=MAX_PAGE_SIZE))
    after = RowId(load_default=None)
    before = RowId(load_default=None)


class LogQuerySchema(Schema):
    """Filters of ``GET /v1/sources/{key}/logs``."""

    event = fields.String(validate=validate.Length(max=255))
    status = fields.String(validate=validate.OneOf(EVENT_STATUSES))
    starting_at = fields.DateTime()
    ending_at = fields.DateTime()


class RunQuerySchema(Schema):
    """Filters of ``GET /v1/workflows/{key}/runs``."""

    recipient = fields.String()
    recipient_collection = fields.String()
    status = fields.String(validate=validate.OneOf(RUN_STATUSES))
    cancellation_key = fields.String()


class VariableBodySchema(Schema):
    """``variable`` in the body of ``PUT /v1/variables/{key}``; absent fields are kept."""

    class Meta:
        unknown = RAISE

    value = fields.String(allow_none=True, validate=validate.Length(max=65536))
    secret = StrictBoolean()
    description = fields.String(allow_none=True, validate=validate.Length(max=1024))
    environment_values = Keyed(
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
    ids = fields.List(RowId(), validate=validate.Length(min=1, max=1000))


class ReplayBodySchema(Schema):
    """Body of ``POST /v1/sources/{key}/replay``."""

    class Meta:
        unknown = RAISE

    filter = fields.Nested(ReplayFilterSchema, load_default=dict)
    #: Count and plan instead of replaying.
    dry_run = StrictBoolean(load_default=False)
    #: Run events even if their idempotency key was seen.
    ignore_idempotency = StrictBoolean(load_default=False)
    #: How many events a dry run plans.
    limit = StrictInteger(load_default=20, validate=validate.Range(min=1, max=100))

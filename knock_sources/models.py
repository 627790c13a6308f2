"""Peewee models of the control plane: sources, mappings, logs, keys, variables.

The data plane (users, objects, tenants, audiences, workflows and their
runs) is in ``dataplane.py``.

``db`` is a ``DatabaseProxy`` initialised by ``init_app`` from
``DATABASE_URL``: SQLite under ``instance/`` by default, a pooled PostgreSQL
connection in production. Every data-plane row is scoped to an
``Environment``, as in Knock.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone

from peewee import (
    AutoField,
    BooleanField,
    CharField,
    DatabaseProxy,
    DateTimeField,
    ForeignKeyField,
    IntegerField,
    IntegrityError,
    Model,
    TextField,
)

db = DatabaseProxy()


def utcnow() -> datetime:
    """Return the current time as a naive UTC datetime (how rows store it)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def to_utc_naive(value: datetime | None) -> datetime | None:
    """Return ``value`` as naive UTC, the way rows store times."""
    if value is not None and value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value


def isoformat(value: datetime | None) -> str | None:
    """Format a stored (naive UTC) time as ISO-8601 with a ``Z``."""
    return None if value is None else value.isoformat() + "Z"


class JSONField(TextField):
    """JSON stored as text on every backend.

    Text rather than PostgreSQL's jsonb because hostile payloads may hold
    ``\\u0000`` or lone surrogates, which jsonb refuses; ``json.dumps``
    escapes both, so any body that parsed can be logged. NaN and Infinity are
    refused at parse time and here.
    """

    def db_value(self, value):
        """Serialise ``value`` compactly."""
        if value is None:
            return None
        return json.dumps(value, allow_nan=False, separators=(",", ":"))

    def python_value(self, value):
        """Parse the stored text."""
        return None if value is None else json.loads(value)


def table_name(model_class) -> str:
    """Name tables ``ks_<snake_case>``: no clash with reserved words or other apps."""
    return "ks_" + re.sub(r"(?<!^)(?=[A-Z])", "_", model_class.__name__).lower()


class BaseModel(Model):
    """Binds every model to the deferred database."""

    class Meta:
        database = db
        table_function = table_name

    @classmethod
    def get_or_create_row(cls, **keys):
        """Return ``(row, created)`` for ``keys``, creating the row; safe against a concurrent creator."""
        row = cls.get_or_none(**keys)
        if row is not None:
            return row, False
        try:
            with db.atomic():
                return cls.create(**keys), True
        except IntegrityError:
            return cls.get(**keys), False


# Event statuses: the closed set of states an EventLog moves through.
PENDING = "pending"
PROCESSING = "processing"
PROCESSED = "processed"
FAILED = "failed"
IDEMPOTENT = "idempotent"
REJECTED = "rejected"
EVENT_STATUSES = (PENDING, PROCESSING, PROCESSED, FAILED, IDEMPOTENT, REJECTED)

# Action statuses.
SUCCESS = "success"
ERROR = "error"
SKIPPED = "skipped"


class SchemaVersion(BaseModel):
    """The last migration applied by ``flask init-db``."""

    version = IntegerField()


class Environment(BaseModel):
    """A Knock environment such as ``development`` or ``production``."""

    slug = CharField(max_length=64, unique=True)
    created_at = DateTimeField(default=utcnow)


class Source(BaseModel):
    """A source, created at account level; configured per environment."""

    key = CharField(max_length=128, unique=True)
    name = CharField(max_length=255)
    description = TextField(null=True)
    provider = CharField(max_length=64, default="custom_http")
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)


class SourceEnvironment(BaseModel):
    """A source's configuration in one environment, reached through its token."""

    source = ForeignKeyField(Source, backref="environments", on_delete="CASCADE")
    environment = ForeignKeyField(Environment, on_delete="CASCADE")
    token = CharField(max_length=64, unique=True)
    settings = JSONField(default=dict)
    #: ``[{"secret": <encrypted>, "expires_at": iso or null}]``; write-only in the API.
    signing_secrets = JSONField(default=list)
    active = BooleanField(default=True)
    updated_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("source", "environment"), True),)


class Mapping(BaseModel):
    """An event-action mapping: run ``action_type`` for ``event_type`` events."""

    source_environment = ForeignKeyField(SourceEnvironment, backref="mappings", on_delete="CASCADE")
    event_type = CharField(max_length=255)
    action_type = CharField(max_length=64)
    action_parameters = JSONField(default=dict)
    active = BooleanField(default=True)
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("source_environment", "event_type"), False),)


class KnownEvent(BaseModel):
    """A distinct event type received by a source environment."""

    source_environment = ForeignKeyField(SourceEnvironment, on_delete="CASCADE")
    event_type = CharField(max_length=255)
    count = IntegerField(default=0)
    first_received_at = DateTimeField(default=utcnow)
    last_received_at = DateTimeField(default=utcnow)
    sample_payload = JSONField(null=True)

    class Meta:
        indexes = ((("source_environment", "event_type"), True),)


class EventLog(BaseModel):
    """One request received by a source environment, accepted or rejected.

    Like dj-stripe's ``WebhookEventTrigger`` the row is written before any
    processing, so nothing accepted is lost and rejections can be debugged.
    """

    id = AutoField()
    # No single-column index: ``(source_environment, id)`` below serves it.
    source_environment = ForeignKeyField(SourceEnvironment, on_delete="CASCADE", index=False)
    status = CharField(max_length=16, default=PENDING)
    #: Machine-readable rejection reason, e.g. ``verification_failed``.
    reason = CharField(max_length=64, null=True)
    event_type = CharField(max_length=255, null=True)
    idempotency_key = CharField(max_length=255, null=True)
    headers = JSONField(default=dict)
    body = JSONField(null=True)
    #: The first 4 KiB of a rejected body, for debugging.
    raw_excerpt = TextField(null=True)
    remote_ip = CharField(max_length=64, null=True)
    verification_status = CharField(max_length=32, null=True)
    preprocess_output = JSONField(null=True)
    error = TextField(null=True)
    occurred_at = DateTimeField(null=True)
    received_at = DateTimeField(default=utcnow)
    processed_at = DateTimeField(null=True)

    class Meta:
        # Every index costs each ingest insert; these two serve the log list
        # (newest first per source environment) and the sweeper (pending by id).
        indexes = (
            (("source_environment", "id"), False),
            (("status", "id"), False),
        )


class ActionLog(BaseModel):
    """What one mapping did for one event."""

    id = AutoField()
    event_log = ForeignKeyField(EventLog, backref="action_logs", on_delete="CASCADE")
    mapping = ForeignKeyField(Mapping, null=True, on_delete="SET NULL")
    action_type = CharField(max_length=64)
    action_parameters = JSONField(default=dict)
    action_payload = JSONField(null=True)
    action_result = JSONField(null=True)
    status = CharField(max_length=16)
    error = TextField(null=True)
    inserted_at = DateTimeField(default=utcnow)


class IdempotencyRecord(BaseModel):
    """A claimed or recorded idempotency key; the unique index makes claims atomic."""

    source_environment = ForeignKeyField(SourceEnvironment, on_delete="CASCADE")
    event_type = CharField(max_length=255)
    key = CharField(max_length=255)
    event_log = ForeignKeyField(EventLog, null=True, on_delete="SET NULL")
    succeeded = BooleanField(default=False)
    claimed_at = DateTimeField(default=utcnow)
    expires_at = DateTimeField(index=True)

    class Meta:
        indexes = ((("source_environment", "event_type", "key"), True),)


class Variable(BaseModel):
    """An account-level variable scripts read through ``vars``.

    ``value`` is the default; ``VariableValue`` rows override it per
    environment. Values of secret variables are encrypted at rest.
    """

    key = CharField(max_length=255, unique=True)
    secret = BooleanField(default=False)
    value = TextField(null=True)
    description = TextField(null=True)
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)


class VariableValue(BaseModel):
    """A variable's value in one environment, overriding its default."""

    variable = ForeignKeyField(Variable, backref="values", on_delete="CASCADE")
    environment = ForeignKeyField(Environment, on_delete="CASCADE")
    value = TextField()

    class Meta:
        indexes = ((("variable", "environment"), True),)


class ApiKey(BaseModel):
    """A JSON API key; only its SHA-256 digest is stored."""

    digest = CharField(max_length=64, unique=True)
    prefix = CharField(max_length=16)
    name = CharField(max_length=255, null=True)
    created_at = DateTimeField(default=utcnow)


CONTROL_MODELS = (
    SchemaVersion,
    Environment,
    Source,
    SourceEnvironment,
    Mapping,
    KnownEvent,
    EventLog,
    ActionLog,
    IdempotencyRecord,
    Variable,
    VariableValue,
    ApiKey,
)

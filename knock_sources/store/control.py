"""Peewee models of the control plane: sources, mappings, logs, keys, variables.

Every data-plane row is scoped to an ``Environment``, as in Knock; the data
plane itself is in ``dataplane.py``.
"""

from __future__ import annotations

from peewee import (
    AutoField,
    BooleanField,
    CharField,
    DateTimeField,
    ForeignKeyField,
    IntegerField,
    TextField,
)

from knock_sources.store import PENDING, BaseModel, JSONField, StorableTextField, utcnow


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
    #: The token replaced by the last rotation, still accepted until ``previous_token_expires_at``.
    previous_token = CharField(max_length=64, null=True, index=True)
    previous_token_expires_at = DateTimeField(null=True)
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

    @classmethod
    def active_for_each(cls, pairs) -> dict[tuple[int, str], list]:
        """The active mappings of each ``(source environment id, event type)`` in ``pairs``, oldest first.

        One query for all of them: a batch of events loads its mappings once.
        """
        found: dict[tuple[int, str], list] = {pair: [] for pair in pairs}
        if not found:
            return found
        query = (
            cls.select()
            .where(
                cls.source_environment.in_(sorted({source_env for source_env, _ in found}))
                & cls.event_type.in_(sorted({event_type for _, event_type in found}))
                & (cls.active == True)  # noqa: E712
            )
            .order_by(cls.id)
        )
        for mapping in query:
            matches = found.get((mapping.source_environment_id, mapping.event_type))
            if matches is not None:
                matches.append(mapping)
        return found


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
    raw_excerpt = StorableTextField(null=True)
    remote_ip = CharField(max_length=64, null=True)
    verification_status = CharField(max_length=32, null=True)
    preprocess_output = JSONField(null=True)
    #: Knock's normalized form of a Segment-style event (``event``, ``user_id``,
    #: ``data``), which overlays the body for paths; null for other sources.
    normalized = JSONField(null=True)
    error = StorableTextField(null=True)
    occurred_at = DateTimeField(null=True)
    received_at = DateTimeField(default=utcnow)
    processed_at = DateTimeField(null=True)
    #: The event this one replays (``control.replay``); ``None`` for a received event.
    replay_of = ForeignKeyField("self", null=True, on_delete="SET NULL", index=False, backref="replays")
    #: On a rejected request: whether ``raw_excerpt`` is the whole body, so that it can be replayed.
    raw_complete = BooleanField(null=True)

    class Meta:
        # Every index costs each ingest insert; these two serve the log list
        # (newest first per source environment) and the sweeper (pending by id).
        indexes = (
            (("source_environment", "id"), False),
            (("status", "id"), False),
        )


class EventHourCount(BaseModel):
    """The events one source environment received in one settled hour, by chart bucket (``control.hour_counts``).

    Written once per hour and source environment, zeros included: a
    missing row means the hour has not been rolled up yet.
    """

    source_environment = ForeignKeyField(SourceEnvironment, on_delete="CASCADE", index=False)
    #: The hour's start (UTC); ``flask purge`` deletes by it.
    hour = DateTimeField(index=True)
    accepted = IntegerField(default=0)
    rejected = IntegerField(default=0)
    failed = IntegerField(default=0)

    class Meta:
        # Readers look up their hours by it; the unique constraint makes a concurrent rollup store an hour once.
        indexes = ((("source_environment", "hour"), True),)


#: Partial, so that received events (replay_of NULL) cost it nothing; it serves
#: the foreign key's ON DELETE SET NULL when ``flask purge`` deletes originals.
#: Created by ``schema.migrate`` after the migration that adds the column.
REPLAY_OF_INDEX = EventLog.index(
    EventLog.replay_of, where=EventLog.replay_of.is_null(False), name="ks_event_log_replay_of"
)


# Replay states.
REPLAY_QUEUED = "queued"
REPLAY_RUNNING = "running"
REPLAY_COMPLETED = "completed"
REPLAY_CANCELLED = "cancelled"
REPLAY_FAILED = "failed"
REPLAY_STATES = (REPLAY_QUEUED, REPLAY_RUNNING, REPLAY_COMPLETED, REPLAY_CANCELLED, REPLAY_FAILED)
REPLAY_ACTIVE = (REPLAY_QUEUED, REPLAY_RUNNING)


class Replay(BaseModel):
    """A replay of a source environment's stored events: its filter, progress and resume point."""

    id = AutoField()
    source_environment = ForeignKeyField(SourceEnvironment, on_delete="CASCADE")
    #: The validated filter: ``statuses``, ``events``, ``starting_at``, ``ending_at``, ``ids``.
    filter = JSONField(default=dict)
    ignore_idempotency = BooleanField(default=False)
    state = CharField(max_length=16, default=REPLAY_QUEUED, index=True)
    #: Matching events when it was created (at most ``REPLAY_MAX_EVENTS``).
    total = IntegerField(default=0)
    done = IntegerField(default=0)
    failed = IntegerField(default=0)
    skipped = IntegerField(default=0)
    #: The id of the last original event handled: the walk resumes after it.
    cursor = IntegerField(default=0)
    #: The newest event id when it was created; its own new events are beyond it.
    last_id = IntegerField(default=0)
    error = TextField(null=True)
    created_at = DateTimeField(default=utcnow)
    #: Moves with each event: a running replay that stops moving is resumed by the sweeper.
    updated_at = DateTimeField(default=utcnow)
    finished_at = DateTimeField(null=True)


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
    error = StorableTextField(null=True)
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


class ReceivedMessage(BaseModel):
    """A ``messageId`` the tracking API received for a source environment.

    SDKs resend a batch with the same messageIds when they did not see a
    200, so a messageId seen before is a retry: its event is logged as
    idempotent and runs nothing, whatever the idempotency settings. The
    unique index makes the check atomic, as for ``IdempotencyRecord``.
    """

    source_environment = ForeignKeyField(SourceEnvironment, on_delete="CASCADE")
    message_id = CharField(max_length=255)
    event_log = ForeignKeyField(EventLog, null=True, on_delete="SET NULL")
    received_at = DateTimeField(default=utcnow)
    expires_at = DateTimeField(index=True)

    class Meta:
        indexes = ((("source_environment", "message_id"), True),)


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
    #: Updated at most once a minute (``control.api_keys.LAST_USED_RESOLUTION``), not on every request.
    last_used_at = DateTimeField(null=True)


class AdminUser(BaseModel):
    """Someone who may sign in to the dashboard; created with ``flask admin create``.

    Only a hash of the password is stored (Werkzeug's scrypt).
    """

    username = CharField(max_length=150, unique=True)
    password_hash = CharField(max_length=255)
    created_at = DateTimeField(default=utcnow)
    last_login_at = DateTimeField(null=True)


CONTROL_MODELS = (
    SchemaVersion,
    Environment,
    Source,
    SourceEnvironment,
    Mapping,
    KnownEvent,
    EventLog,
    EventHourCount,
    Replay,
    ActionLog,
    IdempotencyRecord,
    ReceivedMessage,
    Variable,
    VariableValue,
    ApiKey,
    AdminUser,
)

"""Peewee models of the data plane that actions write: every row belongs to an environment.

Users, objects (``collection``, ``id``) and their subscriptions, tenants,
audiences and their members, workflows and their runs, as in Knock.
"""

from __future__ import annotations

from peewee import AutoField, BooleanField, CharField, DateTimeField, ForeignKeyField, TextField

from knock_sources.store import BaseModel, JSONField, utcnow
from knock_sources.store.control import Environment, EventLog


class User(BaseModel):
    """A Knock user (recipient or actor)."""

    environment = ForeignKeyField(Environment, on_delete="CASCADE")
    external_id = CharField(max_length=255)
    name = CharField(max_length=255, null=True)
    email = CharField(max_length=255, null=True)
    phone_number = CharField(max_length=64, null=True)
    avatar = TextField(null=True)
    locale = CharField(max_length=32, null=True)
    timezone = CharField(max_length=64, null=True)
    properties = JSONField(default=dict)
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("environment", "external_id"), True),)


class Object(BaseModel):
    """A Knock object: ``(collection, id)`` with a name and custom properties."""

    environment = ForeignKeyField(Environment, on_delete="CASCADE")
    collection = CharField(max_length=255)
    external_id = CharField(max_length=255)
    name = CharField(max_length=255, null=True)
    properties = JSONField(default=dict)
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("environment", "collection", "external_id"), True),)


class Subscription(BaseModel):
    """A recipient subscribed to an object."""

    environment = ForeignKeyField(Environment, on_delete="CASCADE")
    object = ForeignKeyField(Object, backref="subscriptions", on_delete="CASCADE")
    recipient_collection = CharField(max_length=255, default="$users")
    recipient_id = CharField(max_length=255)
    properties = JSONField(default=dict)
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("object", "recipient_collection", "recipient_id"), True),)


class Tenant(BaseModel):
    """A tenant (customer organisation) with name, properties and settings."""

    environment = ForeignKeyField(Environment, on_delete="CASCADE")
    external_id = CharField(max_length=255)
    name = CharField(max_length=255, null=True)
    properties = JSONField(default=dict)
    settings = JSONField(default=dict)
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("environment", "external_id"), True),)


class Audience(BaseModel):
    """A static audience."""

    environment = ForeignKeyField(Environment, on_delete="CASCADE")
    key = CharField(max_length=255)
    created_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("environment", "key"), True),)


class AudienceMember(BaseModel):
    """A user in an audience, optionally within a tenant."""

    audience = ForeignKeyField(Audience, backref="members", on_delete="CASCADE")
    user_id = CharField(max_length=255)
    tenant = CharField(max_length=255, default="")
    created_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("audience", "user_id", "tenant"), True),)


class Workflow(BaseModel):
    """A workflow that triggers can start."""

    environment = ForeignKeyField(Environment, on_delete="CASCADE")
    key = CharField(max_length=255)
    name = CharField(max_length=255, null=True)
    active = BooleanField(default=True)
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("environment", "key"), True),)


# Workflow run statuses.
RUN_TRIGGERED = "triggered"
RUN_CANCELLED = "cancelled"
RUN_COMPLETED = "completed"
RUN_STATUSES = (RUN_TRIGGERED, RUN_CANCELLED, RUN_COMPLETED)


class WorkflowRun(BaseModel):
    """One workflow run for one recipient, started by an action."""

    id = AutoField()
    #: The public id (a UUID), as Knock's ``workflow_run_id``.
    run_id = CharField(max_length=36, unique=True)
    environment = ForeignKeyField(Environment, on_delete="CASCADE")
    workflow = ForeignKeyField(Workflow, backref="runs", on_delete="CASCADE")
    recipient_collection = CharField(max_length=255, default="$users")
    recipient_id = CharField(max_length=255)
    actor = JSONField(null=True)
    tenant = CharField(max_length=255, null=True)
    data = JSONField(null=True)
    cancellation_key = CharField(max_length=255, null=True, index=True)
    status = CharField(max_length=16, default=RUN_TRIGGERED)
    event_log = ForeignKeyField(EventLog, null=True, on_delete="SET NULL")
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)


DATA_MODELS = (User, Object, Subscription, Tenant, Audience, AudienceMember, Workflow, WorkflowRun)

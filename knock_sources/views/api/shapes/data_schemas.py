"""The data plane's response shapes (users, objects, tenants, subscriptions, workflows), for ``/openapi.json``.

One marshmallow schema per serializer of ``shapes/__init__.py``, named after
it. Users and tenants carry custom properties as top-level keys, which the
shapes allow.
"""

from __future__ import annotations

from marshmallow import fields

from knock_sources.views.api.shapes.base import Shape, anything, dictionary, text, timestamp


class TenantShape(Shape):
    """``serialize_tenant``; custom properties are top-level keys too."""

    __typename = text()
    id = text()
    name = text(null=True)
    settings = dictionary()
    created_at = timestamp()
    updated_at = timestamp()


class ObjectShape(Shape):
    """``serialize_object``."""

    __typename = text()
    id = text()
    collection = text()
    name = text(null=True)
    properties = dictionary()
    created_at = timestamp()
    updated_at = timestamp()


class RecipientShape(Shape):
    """A reference to a recipient: a user (``$users``) or an object."""

    collection = text()
    id = text()


class SubscriptionShape(Shape):
    """``serialize_subscription``."""

    __typename = text()
    object = fields.Nested(ObjectShape, required=True)
    recipient = fields.Nested(RecipientShape, required=True)
    properties = dictionary()
    inserted_at = timestamp()
    updated_at = timestamp()


class WorkflowShape(Shape):
    """``serialize_workflow``."""

    key = text()
    name = text(null=True)
    active = fields.Boolean(required=True)
    created_at = timestamp()
    updated_at = timestamp()


class WorkflowRunShape(Shape):
    """``serialize_run``."""

    id = text()
    workflow = text()
    recipient = fields.Nested(RecipientShape, required=True)
    actor = anything()
    tenant = text(null=True)
    data = anything()
    cancellation_key = text(null=True)
    status = text()
    source_log_id = text(null=True)
    inserted_at = timestamp()
    updated_at = timestamp()


class UserShape(Shape):
    """``serialize_user``; custom properties are top-level keys too."""

    __typename = text()
    id = text()
    name = text(null=True)
    email = text(null=True)
    phone_number = text(null=True)
    avatar = text(null=True)
    locale = text(null=True)
    timezone = text(null=True)
    created_at = timestamp()
    updated_at = timestamp()


class AudienceMemberShape(Shape):
    """``serialize_member``."""

    __typename = text()
    user_id = text()
    user = fields.Nested(UserShape, required=True, allow_none=True)
    tenant = text(null=True)
    added_at = timestamp()


class TriggerShape(Shape):
    """``serialize_trigger``: a workflow's source-event trigger."""

    workflow = text()
    type = text()
    source = text()
    event = text()
    mapping = dictionary()
    active = fields.Boolean(required=True)
    environments = fields.Dict(keys=fields.String(), values=fields.Dict(), required=True)
    mapping_id = text()
    created_at = timestamp()
    updated_at = timestamp()

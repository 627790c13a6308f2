"""User actions: identify (merge upsert, as Knock's ``PUT /v1/users/{id}``)."""

from __future__ import annotations

import json

from marshmallow import Schema

from knock_sources.actions.base import Action
from knock_sources.actions.fields import USERS_COLLECTION, Identifier, JSONObject, Text
from knock_sources.errors import ActionError
from knock_sources.models import Audience, AudienceMember, Subscription, User, isoformat, utcnow

RESERVED_USER_FIELDS = ("name", "email", "phone_number", "avatar", "locale", "timezone")
MAX_PROPERTIES_BYTES = 256 * 1024


def upsert_user(environment, user_id: str, attributes: dict) -> User:
    """Create or update a user, merging ``attributes`` into what is stored.

    Reserved keys (name, email, ...) set the user's fields; every other key is
    a custom property merged at the top level. ``None`` values are ignored.
    """
    user = User.get_or_create_row(environment=environment, external_id=user_id)
    properties = dict(user.properties or {})
    for key, value in attributes.items():
        if value is None or key in ("id", "collection"):
            continue
        if key in RESERVED_USER_FIELDS:
            setattr(user, key, value if isinstance(value, str) else str(value))
        else:
            properties[key] = value
    if len(json.dumps(properties)) > MAX_PROPERTIES_BYTES:
        raise ActionError(
            f"user {user_id!r}: custom properties would exceed {MAX_PROPERTIES_BYTES // 1024} KiB",
            code="invalid_params",
        )
    user.properties = properties
    user.updated_at = utcnow()
    user.save()
    return user


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


class IdentifyUserSchema(Schema):
    """Parameters of ``users_identify``."""

    id = Identifier(required=True)
    name = Text(allow_none=True)
    email = Text(allow_none=True)
    phone_number = Text(allow_none=True)
    avatar = Text(allow_none=True)
    locale = Text(allow_none=True)
    timezone = Text(allow_none=True)
    properties = JSONObject(allow_none=True)


class IdentifyUser(Action):
    """Create or update a user with properties from the event."""

    action_type = "users_identify"
    name = "Identify user"
    params_schema = IdentifyUserSchema

    def execute(self, context, params):
        """Merge the user's fields and custom properties."""
        attributes = {**(params.get("properties") or {})}
        attributes.update({key: params[key] for key in RESERVED_USER_FIELDS if params.get(key) is not None})
        user = upsert_user(context.environment, params["id"], attributes)
        return {"id": user.external_id}


class DeleteUserSchema(Schema):
    """Parameters of ``users_delete``."""

    id = Identifier(required=True)


class DeleteUser(Action):
    """Delete a user with their subscriptions and audience memberships."""

    action_type = "users_delete"
    name = "Delete user"
    params_schema = DeleteUserSchema

    def execute(self, context, params):
        """Delete the user; deleting a user that does not exist succeeds, as in Knock."""
        environment, user_id = context.environment, params["id"]
        deleted = User.delete().where((User.environment == environment) & (User.external_id == user_id)).execute()
        Subscription.delete().where(
            (Subscription.environment == environment)
            & (Subscription.recipient_collection == USERS_COLLECTION)
            & (Subscription.recipient_id == user_id)
        ).execute()
        audiences = Audience.select(Audience.id).where(Audience.environment == environment)
        AudienceMember.delete().where(
            (AudienceMember.audience.in_(audiences)) & (AudienceMember.user_id == user_id)
        ).execute()
        return {"id": user_id, "deleted": bool(deleted), **({} if deleted else {"note": "user did not exist"})}

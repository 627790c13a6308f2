"""User actions: identify (merge upsert, as Knock's ``PUT /v1/users/{id}``) and delete."""

from __future__ import annotations

import json

from marshmallow import Schema, ValidationError
from peewee import chunked

from knock_sources.actions.base import Action
from knock_sources.actions.fields import (
    USER_FIELD_LENGTHS,
    USERS_COLLECTION,
    Identifier,
    JSONObject,
    Text,
    to_text,
)
from knock_sources.errors import ActionError
from knock_sources.store import utcnow
from knock_sources.store.dataplane import Audience, AudienceMember, Subscription, User

RESERVED_USER_FIELDS = tuple(USER_FIELD_LENGTHS)
#: Ids per IN (...) clause: well under SQLite's and PostgreSQL's limits on bound parameters.
USERS_PER_QUERY = 500
MAX_PROPERTIES_BYTES = 256 * 1024


def properties_size(properties: dict) -> int:
    """Return the size of ``properties`` in bytes, as compact UTF-8 JSON."""
    return len(json.dumps(properties, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


def find_user(environment, user_id: str, lookups: dict | None = None) -> User | None:
    """Return the user or ``None``.

    ``lookups`` (an ``ActionContext``'s) keeps the row, or that there is
    none, for the other events of the batch; the user actions keep it
    current as they create, change and delete users.
    """
    if lookups is None:
        return User.get_or_none(environment=environment, external_id=user_id)
    found = _lookup_key(environment, user_id)
    if found not in lookups:
        lookups[found] = User.get_or_none(environment=environment, external_id=user_id)
    return lookups[found]


def _lookup_key(environment, user_id: str) -> tuple:
    return ("user", environment.id, user_id)


def users_by_id(environment, user_ids) -> dict[str, User]:
    """Return the users among ``user_ids`` that exist, by id, a query per few hundred ids."""
    found = {}
    for chunk in chunked(sorted(set(user_ids)), USERS_PER_QUERY):
        query = User.select().where((User.environment == environment) & User.external_id.in_(chunk))
        found.update({user.external_id: user for user in query})
    return found


def look_up_users(environment, user_ids, lookups: dict) -> None:
    """Keep in ``lookups`` (``find_user``'s) the users among ``user_ids``, or that there is none, at once."""
    missing = [user_id for user_id in user_ids if _lookup_key(environment, user_id) not in lookups]
    found = users_by_id(environment, missing)
    for user_id in missing:
        lookups[_lookup_key(environment, user_id)] = found.get(user_id)


def identify(environment, user_id: str, attributes: dict, lookups: dict | None = None) -> tuple[User, bool]:
    """Create or update a user, merging ``attributes`` into what is stored; return it and whether it is new.

    Reserved keys (name, email, ...) set the user's fields; every other key is
    a custom property merged at the top level. ``None`` values are ignored.
    The merged custom properties may not exceed 256 KiB (Knock answers 422).
    An identify that changes nothing writes nothing: no statement, and no row
    lock that a concurrent batch identifying the same user would wait for.
    The row is changed only once the change is known to be valid, so that a
    refused one leaves the row ``lookups`` keeps (``find_user``) as stored.
    """
    user = find_user(environment, user_id, lookups)
    created = False
    if user is None:
        user, created = User.create_row(environment=environment, external_id=user_id)
        if lookups is not None:
            lookups[_lookup_key(environment, user_id)] = user
    changes = {key: value for key, value in attributes.items() if value is not None and key not in ("id", "collection")}
    if not changes:
        return user, created
    fields = {
        key: _reserved_value(user_id, key, value) for key, value in changes.items() if key in RESERVED_USER_FIELDS
    }
    properties = {
        **(user.properties or {}),
        **{key: value for key, value in changes.items() if key not in RESERVED_USER_FIELDS},
    }
    size = properties_size(properties)
    if size > MAX_PROPERTIES_BYTES:
        raise ActionError(
            f"user {user_id!r}: custom properties would be {size} bytes, "
            f"over the {MAX_PROPERTIES_BYTES // 1024} KiB limit",
            code="invalid_params",
        )
    if all(getattr(user, key) == value for key, value in fields.items()) and properties == (user.properties or {}):
        return user, created
    for key, value in fields.items():
        setattr(user, key, value)
    user.properties = properties
    user.updated_at = utcnow()
    user.save()
    return user, created


def _reserved_value(user_id: str, key: str, value) -> str:
    # Reserved keys may also arrive inside ``properties``, which no schema
    # checked; the column must still get bounded text.
    try:
        return to_text(value, USER_FIELD_LENGTHS[key], what=f"{key} to be a string")
    except ValidationError as exc:
        raise ActionError(f"user {user_id!r}: {exc.messages[0]}", code="invalid_params") from None


class IdentifyUserSchema(Schema):
    """Parameters of ``users_identify``."""

    id = Identifier(required=True)
    name = Text(allow_none=True, max_length=USER_FIELD_LENGTHS["name"])
    email = Text(allow_none=True, max_length=USER_FIELD_LENGTHS["email"])
    phone_number = Text(allow_none=True, max_length=USER_FIELD_LENGTHS["phone_number"])
    avatar = Text(allow_none=True, max_length=USER_FIELD_LENGTHS["avatar"])
    locale = Text(allow_none=True, max_length=USER_FIELD_LENGTHS["locale"])
    timezone = Text(allow_none=True, max_length=USER_FIELD_LENGTHS["timezone"])
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
        user, created = identify(context.environment, params["id"], attributes, context.lookups)
        return {"id": user.external_id, "created": created}

    def prefetch(self, environment, payloads, lookups):
        """Look up the users to identify."""
        look_up_users(environment, [params["id"] for params in payloads], lookups)


class DeleteUserSchema(Schema):
    """Parameters of ``users_delete``."""

    id = Identifier(required=True)


class DeleteUser(Action):
    """Delete a user with their subscriptions and audience memberships."""

    action_type = "users_delete"
    name = "Delete user"
    params_schema = DeleteUserSchema

    def execute(self, context, params):
        """Delete the user; deleting a user that does not exist succeeds, as in Knock (204)."""
        environment, user_id = context.environment, params["id"]
        deleted = User.delete().where((User.environment == environment) & (User.external_id == user_id)).execute()
        context.lookups[_lookup_key(environment, user_id)] = None
        subscriptions = (
            Subscription.delete()
            .where(
                (Subscription.environment == environment)
                & (Subscription.recipient_collection == USERS_COLLECTION)
                & (Subscription.recipient_id == user_id)
            )
            .execute()
        )
        audiences = Audience.select(Audience.id).where(Audience.environment == environment)
        memberships = (
            AudienceMember.delete()
            .where((AudienceMember.audience.in_(audiences)) & (AudienceMember.user_id == user_id))
            .execute()
        )
        result = {
            "id": user_id,
            "deleted": bool(deleted),
            "subscriptions_removed": subscriptions,
            "audience_memberships_removed": memberships,
        }
        if not deleted:
            result["note"] = "user did not exist"
        return result

"""Object actions: set and delete (Knock's ``/v1/objects`` API)."""

from __future__ import annotations

from marshmallow import Schema, ValidationError

from knock_sources.actions.base import Action
from knock_sources.actions.fields import OBJECT_NAME_LENGTH, Identifier, JSONObject, LiteralKey, Text, to_text
from knock_sources.errors import ActionError
from knock_sources.store import utcnow
from knock_sources.store.dataplane import Object, Subscription


def set_object(environment, collection: str, object_id: str, attributes: dict) -> Object:
    """Create or update an object; ``name`` is a field, other keys merge into properties."""
    obj, _ = Object.get_or_create_row(environment=environment, collection=collection, external_id=object_id)
    changes = {key: value for key, value in attributes.items() if value is not None and key not in ("id", "collection")}
    if not changes:
        return obj
    properties = dict(obj.properties or {})
    for key, value in changes.items():
        if key == "name":
            obj.name = _name(collection, object_id, value)
        else:
            properties[key] = value
    obj.properties = properties
    obj.updated_at = utcnow()
    obj.save()
    return obj


def _name(collection: str, object_id: str, value) -> str:
    # Names inside ``properties`` reach here unchecked; the column is bounded.
    try:
        return to_text(value, OBJECT_NAME_LENGTH, what="the name to be a string")
    except ValidationError as exc:
        raise ActionError(f"object {collection}/{object_id}: {exc.messages[0]}", code="invalid_params") from None


def find_object(environment, collection: str, object_id: str) -> Object | None:
    """Return the object or ``None``."""
    return Object.get_or_none(environment=environment, collection=collection, external_id=object_id)


class ObjectSchema(Schema):
    """An object's address: ``collection`` and ``id``."""

    collection = LiteralKey(required=True)
    id = Identifier(required=True)


class SetObjectSchema(ObjectSchema):
    """Parameters of ``objects_set``."""

    name = Text(allow_none=True, max_length=OBJECT_NAME_LENGTH)
    properties = JSONObject(allow_none=True)


class SetObject(Action):
    """Create or update an object with properties from the event."""

    action_type = "objects_set"
    name = "Set object"
    params_schema = SetObjectSchema
    literal_params = frozenset({"collection"})

    def execute(self, context, params):
        """Merge the object's name and properties."""
        created = find_object(context.environment, params["collection"], params["id"]) is None
        attributes = {**(params.get("properties") or {}), "name": params.get("name")}
        obj = set_object(context.environment, params["collection"], params["id"], attributes)
        return {"collection": obj.collection, "id": obj.external_id, "created": created}


class DeleteObject(Action):
    """Delete an object with its subscribers and its own subscriptions."""

    action_type = "objects_delete"
    name = "Delete object"
    params_schema = ObjectSchema
    literal_params = frozenset({"collection"})

    def execute(self, context, params):
        """Delete the object; one that does not exist is a success with a note (Knock: 204)."""
        environment, collection, object_id = context.environment, params["collection"], params["id"]
        # An object can itself subscribe to other objects; those go too.
        as_recipient = (
            Subscription.delete()
            .where(
                (Subscription.environment == environment)
                & (Subscription.recipient_collection == collection)
                & (Subscription.recipient_id == object_id)
            )
            .execute()
        )
        obj = find_object(environment, collection, object_id)
        if obj is None:
            return {**params, "deleted": False, "subscriptions_removed": as_recipient, "note": "object did not exist"}
        subscribers = Subscription.delete().where(Subscription.object == obj).execute()
        obj.delete_instance()
        return {**params, "deleted": True, "subscriptions_removed": subscribers + as_recipient}

"""Object actions: set and delete (Knock's ``/v1/objects`` API)."""

from __future__ import annotations

from marshmallow import Schema

from knock_sources.actions.base import Action
from knock_sources.actions.fields import Identifier, JSONObject, Text
from knock_sources.models import Object, utcnow


def set_object(environment, collection: str, object_id: str, attributes: dict) -> Object:
    """Create or update an object; ``name`` is a field, other keys merge into properties."""
    obj = Object.get_or_create_row(environment=environment, collection=collection, external_id=object_id)
    properties = dict(obj.properties or {})
    for key, value in attributes.items():
        if value is None or key in ("id", "collection"):
            continue
        if key == "name":
            obj.name = value if isinstance(value, str) else str(value)
        else:
            properties[key] = value
    obj.properties = properties
    obj.updated_at = utcnow()
    obj.save()
    return obj


def find_object(environment, collection: str, object_id: str) -> Object | None:
    """Return the object or ``None``."""
    return Object.get_or_none(environment=environment, collection=collection, external_id=object_id)


class ObjectSchema(Schema):
    """An object's address: ``collection`` and ``id``."""

    collection = Text(required=True)
    id = Identifier(required=True)


class SetObjectSchema(ObjectSchema):
    """Parameters of ``objects_set``."""

    name = Text(allow_none=True)
    properties = JSONObject(allow_none=True)


class SetObject(Action):
    """Create or update an object with properties from the event."""

    action_type = "objects_set"
    name = "Set object"
    params_schema = SetObjectSchema
    literal_params = frozenset({"collection"})

    def execute(self, context, params):
        """Merge the object's name and properties."""
        attributes = {**(params.get("properties") or {}), "name": params.get("name")}
        obj = set_object(context.environment, params["collection"], params["id"], attributes)
        return {"collection": obj.collection, "id": obj.external_id}


class DeleteObject(Action):
    """Delete an object and its subscriptions."""

    action_type = "objects_delete"
    name = "Delete object"
    params_schema = ObjectSchema
    literal_params = frozenset({"collection"})

    def execute(self, context, params):
        """Delete the object; one that does not exist is a success with a note."""
        obj = find_object(context.environment, params["collection"], params["id"])
        if obj is None:
            return {**params, "deleted": False, "note": "object did not exist"}
        obj.delete_instance(recursive=True)
        return {**params, "deleted": True}

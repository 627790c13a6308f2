"""marshmallow fields for action parameters, with errors that name JSON types.

Resolved values come from arbitrary payloads, so each field states what it
expected and what it got ("expected a string id, got object"); the runner
adds the path the value came from.
"""

from __future__ import annotations

from marshmallow import ValidationError, fields

from knock_sources.paths import json_type

USERS_COLLECTION = "$users"
MAX_ID_LENGTH = 255


def to_identifier(value, what: str = "id") -> str:
    """Return ``value`` as an id string: non-empty strings, or integers as text."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and 0 < len(value) <= MAX_ID_LENGTH:
        return value
    if isinstance(value, str):
        raise ValidationError(f"expected a {what} of 1 to {MAX_ID_LENGTH} characters")
    raise ValidationError(f"expected a string {what}, got {json_type(value)}")


class Identifier(fields.Field):
    """A user, object or tenant id: a string, or an integer taken as text."""

    def _deserialize(self, value, attr, data, **kwargs):
        return to_identifier(value)


class Text(fields.Field):
    """A string; numbers are accepted and turned into text."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise ValidationError(f"expected a string, got {json_type(value)}")


class JSONObject(fields.Field):
    """A JSON object (``data``, ``properties``, ``settings``)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, dict):
            raise ValidationError(f"expected an object, got {json_type(value)}")
        return value


def to_recipient(value) -> dict:
    """Normalise one recipient to ``{"collection", "id", ...inline attributes}``.

    A string is a user id; an object with ``collection`` is an object
    recipient; any other object with ``id`` is an inline user.
    """
    if isinstance(value, dict):
        if "id" not in value:
            raise ValidationError("expected a recipient object with an id")
        recipient = {key: item for key, item in value.items() if key not in ("id", "collection")}
        collection = value.get("collection", USERS_COLLECTION)
        if not isinstance(collection, str) or not collection:
            raise ValidationError(f"expected a string collection, got {json_type(collection)}")
        recipient["collection"] = collection
        recipient["id"] = to_identifier(value["id"], "recipient id")
        return recipient
    return {"collection": USERS_COLLECTION, "id": to_identifier(value, "recipient id")}


def inline_attributes(recipient: dict) -> dict:
    """Return the inline-identify attributes of a normalised recipient."""
    return {key: value for key, value in recipient.items() if key not in ("id", "collection")}


class Recipient(fields.Field):
    """One recipient or actor: a user id, an inline user or an object."""

    def _deserialize(self, value, attr, data, **kwargs):
        return to_recipient(value)


class RecipientList(fields.Field):
    """Recipients: a list, or a single recipient (which becomes a one-element list)."""

    noun = "recipients"

    def __init__(self, *, max_items: int, **kwargs):
        super().__init__(**kwargs)
        self.max_items = max_items

    def _deserialize(self, value, attr, data, **kwargs):
        items = value if isinstance(value, list) else [value]
        if not items:
            raise ValidationError(f"expected at least one of the {self.noun}, got an empty array")
        if len(items) > self.max_items:
            raise ValidationError(f"at most {self.max_items} {self.noun} are allowed, got {len(items)}")
        recipients, errors = [], {}
        for index, item in enumerate(items):
            try:
                recipients.append(to_recipient(item))
            except ValidationError as exc:
                errors[index] = exc.messages
        if errors:
            raise ValidationError(errors)
        return recipients


class TenantRef(fields.Field):
    """A tenant id, or an inline tenant object with an ``id``."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, dict):
            if "id" not in value:
                raise ValidationError("expected a tenant object with an id")
            return {**value, "id": to_identifier(value["id"], "tenant id")}
        return to_identifier(value, "tenant id")


class UserList(RecipientList):
    """Users: ids or inline user objects; a single one becomes a one-element list."""

    noun = "users"

    def _deserialize(self, value, attr, data, **kwargs):
        users = super()._deserialize(value, attr, data, **kwargs)
        errors = {
            index: ["expected a user, got an object recipient"]
            for index, user in enumerate(users)
            if user["collection"] != USERS_COLLECTION
        }
        if errors:
            raise ValidationError(errors)
        return users

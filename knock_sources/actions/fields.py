"""marshmallow fields for action parameters, with errors that name JSON types.

Resolved values come from arbitrary payloads, so each field states what it
expected ("expected a string id"); the runner adds the path the value came
from and the JSON type it actually had. Lengths are checked here because the
database columns are bounded and PostgreSQL, unlike SQLite, refuses longer
values.
"""

from __future__ import annotations

from marshmallow import ValidationError, fields

from knock_sources.paths import json_type
from knock_sources.store.dataplane import Object, Tenant, User
from knock_sources.store.keys import KeyRule

USERS_COLLECTION = "$users"
MAX_ID_LENGTH = 255
MAX_KEY_LENGTH = 255

#: Reserved user fields and the longest value each column holds.
USER_FIELD_LENGTHS = {
    name: getattr(getattr(User, name), "max_length", None)
    for name in ("name", "email", "phone_number", "avatar", "locale", "timezone")
}
TENANT_NAME_LENGTH = Tenant.name.max_length
OBJECT_NAME_LENGTH = Object.name.max_length


def to_identifier(value, what: str = "id") -> str:
    """Return ``value`` as an id string: non-empty strings, or integers as text."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and 0 < len(value) <= MAX_ID_LENGTH:
        return value
    if isinstance(value, str):
        article = "an" if what[0] in "aeiou" else "a"
        raise ValidationError(f"expected {article} {what} of 1 to {MAX_ID_LENGTH} characters")
    raise ValidationError(f"expected a string {what}")


def to_text(value, max_length: int | None = None, what: str = "a string") -> str:
    """Return ``value`` as text (numbers are accepted) of at most ``max_length`` characters."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise ValidationError(f"expected {what}")
    if max_length is not None and len(value) > max_length:
        raise ValidationError(f"expected {what} of at most {max_length} characters, got {len(value)}")
    return value


class Identifier(fields.Field):
    """A user, object or tenant id: a string, or an integer taken as text."""

    def _deserialize(self, value, attr, data, **kwargs):
        return to_identifier(value)


class Text(fields.Field):
    """A string; numbers are accepted and turned into text."""

    def __init__(self, *, max_length: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.max_length = max_length

    def _deserialize(self, value, attr, data, **kwargs):
        return to_text(value, self.max_length)


class LiteralKey(fields.Field):
    """A key configured in the mapping (a workflow key, an audience key, a collection): a non-empty string.

    Unlike ``Text``, numbers are refused: a key is written as text, and a
    mapping naming ``5`` is a mistake to report when it is saved. ``rule``
    adds the store's rule for such keys (the workflow key's characters).
    """

    def __init__(self, *, max_length: int = MAX_KEY_LENGTH, rule: KeyRule | None = None, **kwargs):
        super().__init__(**kwargs)
        self.max_length = max_length
        self.rule = rule

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str) or not value:
            raise ValidationError("expected a non-empty string key")
        if len(value) > self.max_length:
            raise ValidationError(f"expected a key of at most {self.max_length} characters, got {len(value)}")
        problem = self.rule.problem(value) if self.rule else None
        if problem:
            raise ValidationError(problem)
        return value


class JSONObject(fields.Field):
    """A JSON object (``data``, ``properties``, ``settings``)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, dict):
            raise ValidationError("expected an object")
        return value


def _check_nested_text(label: str, value, max_length: int | None) -> str:
    """Return a string nested inside a parameter; the error names it and its own type."""
    try:
        return to_text(value, max_length, what=f"{label} to be a string")
    except ValidationError as exc:
        detail = "" if isinstance(value, str) else f", got {json_type(value)}"
        raise ValidationError(f"{exc.messages[0]}{detail}") from None


def _nested_identifier(owner: str, value) -> str:
    """Return the ``id`` inside an inline object; the message gives the id's own type."""
    try:
        return to_identifier(value, f"{owner} id")
    except ValidationError as exc:
        detail = "" if isinstance(value, str) else f", got {json_type(value)}"
        raise ValidationError(f"{exc.messages[0]} in the {owner} object{detail}") from None


def to_recipient(value) -> dict:
    """Normalise one recipient to ``{"collection", "id"[, "inline": {...}]}``.

    A string is a reference to a user id, who must already exist. An object
    is inline identification, as in Knock's API (only ``id`` is required):
    with ``collection`` it is an object recipient, otherwise a user, and it
    is created or merged with the attributes under ``inline``.
    """
    if isinstance(value, dict):
        if "id" not in value:
            raise ValidationError("expected a recipient object with an id")
        recipient = {key: item for key, item in value.items() if key not in ("id", "collection")}
        collection = value.get("collection", USERS_COLLECTION)
        collection = _check_nested_text("the recipient's collection", collection, MAX_KEY_LENGTH)
        if not collection:
            raise ValidationError("expected the recipient's collection to be a non-empty string")
        if collection == USERS_COLLECTION:
            for name, max_length in USER_FIELD_LENGTHS.items():
                if recipient.get(name) is not None:
                    _check_nested_text(f"the inline user's {name}", recipient[name], max_length)
        elif recipient.get("name") is not None:
            _check_nested_text("the inline object's name", recipient["name"], OBJECT_NAME_LENGTH)
        return {
            "collection": collection,
            "id": _nested_identifier("recipient", value["id"]),
            "inline": recipient,
        }
    return {"collection": USERS_COLLECTION, "id": to_identifier(value, "recipient id")}


def inline_attributes(recipient: dict) -> dict | None:
    """Return the inline-identify attributes of a normalised recipient; ``None`` for a reference."""
    return recipient.get("inline")


def unique_recipients(recipients: list[dict]) -> list[dict]:
    """Drop repeated recipients, keeping the first position and merging inline attributes.

    A payload listing the same user twice must not start two runs or count
    as two subscriptions.
    """
    merged: dict[tuple[str, str], dict] = {}
    for recipient in recipients:
        key = (recipient["collection"], recipient["id"])
        previous = merged.get(key)
        if previous is not None and "inline" in previous:
            recipient = {**recipient, "inline": {**previous["inline"], **recipient.get("inline", {})}}
        merged[key] = recipient
    return list(merged.values())


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
                recipients.append(self.check(to_recipient(item)))
            except ValidationError as exc:
                errors[index] = exc.messages
        if errors:
            raise ValidationError(errors)
        return unique_recipients(recipients)

    def check(self, recipient: dict) -> dict:
        """Return ``recipient`` if this list accepts it; subclasses narrow what is accepted."""
        return recipient


class TenantRef(fields.Field):
    """A tenant id, or an inline tenant object with an ``id``."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, dict):
            return to_identifier(value, "tenant id")
        if "id" not in value:
            raise ValidationError("expected a tenant object with an id")
        if value.get("name") is not None:
            _check_nested_text("the tenant's name", value["name"], TENANT_NAME_LENGTH)
        if value.get("settings") is not None and not isinstance(value["settings"], dict):
            raise ValidationError(f"expected the tenant settings to be an object, got {json_type(value['settings'])}")
        return {**value, "id": _nested_identifier("tenant", value["id"])}


class UserList(RecipientList):
    """Users: ids or inline user objects; a single one becomes a one-element list."""

    noun = "users"

    def check(self, recipient: dict) -> dict:
        """Accept users only: audiences hold users, not objects."""
        if recipient["collection"] != USERS_COLLECTION:
            raise ValidationError("expected a user, got an object recipient")
        return recipient

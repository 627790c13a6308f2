"""marshmallow fields of the JSON API that are stricter than marshmallow's own.

JSON has its own booleans and numbers, so ``"yes"``, ``1`` and ``"5"`` are
refused where a boolean or a number is expected instead of being coerced;
keys follow the store's rules (``store.keys``); dictionaries report errors
under the key the client wrote, without marshmallow's ``key``/``value``
level.
"""

from __future__ import annotations

import re

from marshmallow import ValidationError, fields

from knock_sources.paths import InvalidPath, parse_path
from knock_sources.store.keys import KeyRule

# RFC 9110 token characters: what a header name may consist of.
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
MAX_HEADER_NAME_LENGTH = 128


class StrictBoolean(fields.Boolean):
    """``true`` or ``false``, nothing that merely looks like one."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise ValidationError("Not a valid boolean: use true or false.")
        return value


class StrictInteger(fields.Integer):
    """A JSON integer; strings, booleans and fractions are refused."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValidationError("Not a valid integer.")
        return super()._deserialize(value, attr, data, **kwargs)


class Key(fields.String):
    """A key following one of ``store.keys``' rules."""

    def __init__(self, rule: KeyRule, **kwargs):
        super().__init__(**kwargs)
        self.rule = rule

    def _deserialize(self, value, attr, data, **kwargs):
        problem = self.rule.problem(value)
        if problem:
            raise ValidationError(problem)
        return value


class HeaderName(fields.String):
    """An HTTP header name, stored stripped and lower-cased (how headers are looked up and redacted)."""

    def _deserialize(self, value, attr, data, **kwargs):
        value = super()._deserialize(value, attr, data, **kwargs).strip().lower()
        if not value or len(value) > MAX_HEADER_NAME_LENGTH or not _HEADER_NAME.fullmatch(value):
            raise ValidationError(
                f"Not a valid header name: use 1 to {MAX_HEADER_NAME_LENGTH} letters, digits and '-' (as in X-Token)."
            )
        return value


class Path(fields.String):
    """A dot-path such as ``body.data.id``; syntax-checked on load."""

    def _deserialize(self, value, attr, data, **kwargs):
        value = super()._deserialize(value, attr, data, **kwargs)
        try:
            parse_path(value)
        except InvalidPath as exc:
            raise ValidationError(str(exc)) from None
        return value


class Keyed(fields.Dict):
    """A dictionary whose errors are reported under the key the client wrote.

    marshmallow files a value's errors under ``{key: {"value": ...}}``; here
    they are ``{key: ...}``, so the error's field path is the client's path.
    A key that is itself invalid reports only the key's errors.
    """

    def _deserialize(self, value, attr, data, **kwargs):
        try:
            return super()._deserialize(value, attr, data, **kwargs)
        except ValidationError as error:
            if not isinstance(error.messages, dict):
                raise
            messages = {
                key: problems["key"] if "key" in problems else problems["value"]
                for key, problems in error.messages.items()
            }
            raise ValidationError(messages, valid_data=error.valid_data) from None

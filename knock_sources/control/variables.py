"""Account-level variables: what scripts see as ``vars``.

A variable has a default value and optional per-environment values; values
are stored as text and parsed as JSON when they parse, so ``true`` and
``123`` reach scripts as a boolean and a number while ``007`` and ``TRUE``
stay strings (Knock's rule). A secret variable's values are encrypted at
rest and never returned by the API; only scripts get them.
"""

from __future__ import annotations

import json
import re

from knock_sources.control import encryption
from knock_sources.errors import NotFound, ValidationFailed
from knock_sources.store import db, utcnow
from knock_sources.store.control import Environment, Variable, VariableValue

# Keys are used as ``vars.KEY`` in scripts, so they must be identifiers.
KEY_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")


def check_key(key: str) -> None:
    """Refuse (422) a key that scripts could not use as ``vars.KEY``."""
    if not KEY_PATTERN.match(key or ""):
        raise ValidationFailed({"key": ["Use letters, digits and underscores, not starting with a digit."]})


def parse_value(text: str):
    """Return ``text`` parsed as JSON when it is JSON, else the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _stored(variable_secret: bool, secret_key: str, text: str) -> str:
    return encryption.encrypt(secret_key, text) if variable_secret else text


def _plain(variable: Variable, secret_key: str, stored: str | None) -> str | None:
    if stored is None or not variable.secret:
        return stored
    return encryption.decrypt(secret_key, stored)


def values_for(environment: Environment, secret_key: str) -> dict:
    """Return every variable's effective, parsed value in ``environment``."""
    overrides = {
        row.variable_id: row.value for row in VariableValue.select().where(VariableValue.environment == environment)
    }
    result = {}
    for variable in Variable.select():
        text = _plain(variable, secret_key, overrides.get(variable.id, variable.value))
        if text is not None:
            result[variable.key] = parse_value(text)
    return result


def upsert_variable(secret_key: str, key: str, body: dict) -> Variable:
    """Create or update variable ``key`` from a validated ``PUT`` body.

    A value left out is kept, so a secret need not be re-entered to change
    its description; ``null`` clears it. Turning ``secret`` on or off
    re-stores the existing values encrypted or in clear.
    """
    environments = {env.slug: env for env in Environment.select()}
    with db.atomic():
        variable = Variable.get_or_none(Variable.key == key) or Variable(key=key)
        was_secret = bool(variable.secret) if variable.id else body.get("secret", False)
        secret = body.get("secret", was_secret)
        if variable.id and secret != was_secret:
            _reencrypt(variable, secret_key, secret)
        variable.secret = secret
        if "value" in body:
            variable.value = None if body["value"] is None else _stored(secret, secret_key, body["value"])
        if "description" in body:
            variable.description = body["description"]
        variable.updated_at = utcnow()
        variable.save()
        for slug, text in body.get("environment_values", {}).items():
            environment = environments.get(slug)
            if environment is None:
                raise NotFound(f"Environment {slug!r} does not exist.", code="environment_missing")
            VariableValue.delete().where(
                (VariableValue.variable == variable) & (VariableValue.environment == environment)
            ).execute()
            if text is not None:
                VariableValue.create(
                    variable=variable, environment=environment, value=_stored(secret, secret_key, text)
                )
    return variable


def delete_variable(key: str) -> None:
    """Delete variable ``key`` with its environment values; ``NotFound`` if there is none."""
    variable = Variable.get_or_none(Variable.key == key)
    if variable is None:
        raise NotFound(f"Variable {key!r} does not exist.", code="variable_missing")
    variable.delete_instance(recursive=True)


def _reencrypt(variable: Variable, secret_key: str, secret: bool) -> None:
    def convert(stored):
        plain = _plain(variable, secret_key, stored)
        return None if plain is None else _stored(secret, secret_key, plain)

    variable.value = convert(variable.value)
    for row in variable.values:
        row.value = convert(row.value)
        row.save()

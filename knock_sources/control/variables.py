"""Account-level variables: what scripts see as ``vars``.

A variable has a default value and optional per-environment values; values
are stored as text and parsed as JSON when they parse, so ``true`` and
``123`` reach scripts as a boolean and a number while ``007`` and ``TRUE``
stay strings (Knock's rule). Only standard JSON counts: a value JSON cannot
carry (``NaN``, ``Infinity``, ``1e999``) is refused when it is saved, and
one stored earlier reaches scripts as its text. A secret variable's values
are encrypted at rest and never returned by the API; only scripts get them,
and whatever a script returns has them redacted (``ingest.verification``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from knock_sources.control.encryption import Keyring
from knock_sources.errors import NotFound, ValidationFailed
from knock_sources.store import db, utcnow
from knock_sources.store.control import Environment, Variable, VariableValue


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not standard JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is too large for JSON")
    return value


def parse_value(text: str):
    """Return ``text`` parsed as standard JSON when it is, else the text itself."""
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except (ValueError, RecursionError):
        return text


def value_problem(text: str | None) -> str | None:
    """Return why ``text`` cannot be saved as a variable's value, or ``None``.

    JSON holding a number JSON cannot carry (``NaN``, ``Infinity``, ``1e999``,
    also inside a list or object) would reach scripts as ``NaN``, or as text
    that looks like a number, so it is refused.
    """
    if text is None:
        return None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    try:
        json.dumps(value, allow_nan=False)
    except ValueError:
        return "Not a finite number: NaN, Infinity and numbers beyond JSON's range cannot be stored."
    except RecursionError:
        pass
    return None


@dataclass(frozen=True)
class ScriptVariables:
    """What scripts of one environment see as ``vars``, and what must never come back out of them.

    ``secrets`` holds the plaintext values of secret variables;
    ``undecryptable`` the keys of secret variables no configured key decrypts.
    """

    values: dict
    secrets: tuple[str, ...] = ()
    undecryptable: tuple[str, ...] = ()


def _plain(keyring: Keyring, variable: Variable, stored: str | None) -> str | None:
    if stored is None or not variable.secret:
        return stored
    return keyring.decrypt(stored)


def values_for(environment, keyring: Keyring) -> ScriptVariables:
    """Return every variable's effective, parsed value in ``environment``, with the secret ones named."""
    overrides = {
        row.variable_id: row.value for row in VariableValue.select().where(VariableValue.environment == environment)
    }
    values, secrets, undecryptable = {}, [], []
    for variable in Variable.select().order_by(Variable.id):
        stored = overrides.get(variable.id, variable.value)
        text = _plain(keyring, variable, stored)
        if text is None and stored is not None:
            undecryptable.append(variable.key)
            keyring.report_undecryptable(f"secret variable {variable.key}")
            continue
        if text is not None:
            values[variable.key] = parse_value(text)
            if variable.secret:
                secrets.append(text)
    return ScriptVariables(values, tuple(secrets), tuple(undecryptable))


def is_undecryptable(keyring: Keyring, variable: Variable) -> bool:
    """Return whether any stored value of a secret ``variable`` cannot be decrypted."""
    if not variable.secret:
        return False
    stored = [variable.value, *(row.value for row in variable.values)]
    return any(value is not None and keyring.decrypt(value) is None for value in stored)


def _check_values(body: dict) -> None:
    errors = {}
    problem = value_problem(body.get("value"))
    if problem:
        errors["value"] = [problem]
    for slug, text in (body.get("environment_values") or {}).items():
        problem = value_problem(text)
        if problem:
            errors.setdefault("environment_values", {})[slug] = [problem]
    if errors:
        raise ValidationFailed(errors)


def upsert_variable(keyring: Keyring, key: str, body: dict) -> Variable:
    """Create or update variable ``key`` from a validated ``PUT`` body.

    A value left out is kept, so a secret need not be re-entered to change
    its description; ``null`` clears it. Turning ``secret`` on or off
    re-stores the existing values encrypted or in clear.
    """
    _check_values(body)
    environments = {env.slug: env for env in Environment.select()}
    unknown = sorted(set(body.get("environment_values", {})) - set(environments))
    if unknown:
        raise ValidationFailed({"environment_values": {slug: ["Unknown environment."] for slug in unknown}})
    with db.atomic():
        variable = Variable.get_or_none(Variable.key == key) or Variable(key=key)
        was_secret = bool(variable.secret) if variable.id else body.get("secret", False)
        secret = body.get("secret", was_secret)
        if variable.id and secret != was_secret:
            _restore(keyring, variable, secret)
        variable.secret = secret

        def stored(text):
            return keyring.encrypt(text) if secret else text

        if "value" in body:
            variable.value = None if body["value"] is None else stored(body["value"])
        if "description" in body:
            variable.description = body["description"]
        variable.updated_at = utcnow()
        variable.save()
        for slug, text in body.get("environment_values", {}).items():
            environment = environments[slug]
            VariableValue.delete().where(
                (VariableValue.variable == variable) & (VariableValue.environment == environment)
            ).execute()
            if text is not None:
                VariableValue.create(variable=variable, environment=environment, value=stored(text))
    return variable


def delete_variable(key: str) -> None:
    """Delete variable ``key`` with its environment values; ``NotFound`` if there is none."""
    variable = Variable.get_or_none(Variable.key == key)
    if variable is None:
        raise NotFound(f"Variable {key!r} does not exist.", code="variable_missing")
    variable.delete_instance(recursive=True)


def _restore(keyring: Keyring, variable: Variable, secret: bool) -> None:
    """Re-store a variable's values encrypted (``secret``) or in clear; an undecryptable value is refused."""

    def convert(value):
        if value is None:
            return None
        plain = _plain(keyring, variable, value)
        if plain is None:
            raise ValidationFailed(
                {"secret": ["A stored value cannot be decrypted with the configured keys; enter the values again."]}
            )
        return keyring.encrypt(plain) if secret else plain

    variable.value = convert(variable.value)
    for row in variable.values:
        row.value = convert(row.value)
        row.save()


def rotate(keyring: Keyring) -> tuple[int, int]:
    """Re-encrypt every secret variable value under the current key; return (rotated, undecryptable)."""
    rotated = failed = 0
    for variable in Variable.select().where(Variable.secret == True):  # noqa: E712
        rows = [variable, *variable.values]
        for row in rows:
            if row.value is None:
                continue
            token = keyring.rotate(row.value)
            if token is None:
                failed += 1
                keyring.report_undecryptable(f"secret variable {variable.key}")
                continue
            row.value = token
            row.save()
            rotated += 1
    return rotated, failed

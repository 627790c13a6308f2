"""The dashboard's forms (Flask-WTF: each carries and checks a CSRF token).

Secrets are ``PasswordField``s, which never render the value they hold, so
a submitted secret is not echoed back into the page even when the form is
shown again with errors.
"""

from __future__ import annotations

import json

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateTimeLocalField,
    HiddenField,
    PasswordField,
    SelectChoice,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, Optional, ValidationError

from knock_sources.paths import InvalidPath, parse_path

DATETIME_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]


def spec_from_text(text: str | None):
    """A mapping parameter as typed: empty is unset, ``{...}`` is JSON (an object of paths or
    ``{"value": ...}``), anything else a path (or, for a configured parameter, the value).

    Raises ``ValueError`` for text that starts like JSON but is not.
    """
    text = (text or "").strip()
    if not text:
        return None
    if text.startswith("{"):
        return json.loads(text)
    return text


def text_of_spec(spec) -> str:
    """The inverse of ``spec_from_text``, to show a stored parameter in a field."""
    if spec is None:
        return ""
    return spec if isinstance(spec, str) else json.dumps(spec, ensure_ascii=False)


def valid_path(form, field):
    """A WTForms validator: the field is empty or a dot-path such as ``body.data.id``."""
    if field.data:
        try:
            parse_path(field.data)
        except InvalidPath as exc:
            raise ValidationError(str(exc)) from None


class LoginForm(FlaskForm):
    """Sign in."""

    username = StringField("Username", validators=[DataRequired(), Length(max=150)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])


class ActionForm(FlaskForm):
    """A button that does one thing (remove, restore, rotate, sign out): only the CSRF token."""


class SwitchForm(FlaskForm):
    """An on/off switch; an unchecked box sends nothing, which reads as off."""

    enabled = BooleanField("Enabled")


class ConnectForm(FlaskForm):
    """Connect a source from a provider's template; the default mappings are checkboxes named ``mapping``."""

    key = StringField("Key", validators=[DataRequired(), Length(max=128)])
    name = StringField("Name", validators=[DataRequired(), Length(max=255)])
    signing_secret = PasswordField("Signing secret", validators=[Optional(), Length(max=1024)])


class ReplaceSecretForm(FlaskForm):
    """Make a new secret the current one, optionally keeping the previous ones valid a while."""

    new_secret = PasswordField("New signing secret", validators=[DataRequired(), Length(max=1024)])
    keep_previous = SelectField(
        "Keep the previous secret valid for",
        choices=[
            SelectChoice("0", "No time: stop accepting it now"),
            SelectChoice("1", "1 hour"),
            SelectChoice("24", "24 hours"),
            SelectChoice("168", "7 days"),
        ],
        default="24",
    )


class AddSecretForm(FlaskForm):
    """Add another valid secret, with an optional expiry."""

    additional_secret = PasswordField("Additional signing secret", validators=[DataRequired(), Length(max=1024)])
    expires_at = DateTimeLocalField("Expires at (UTC)", format=DATETIME_FORMATS, validators=[Optional()])


class PathsForm(FlaskForm):
    """Where the event type and the timestamp are found in a request."""

    event_type_path = StringField("Event type path", validators=[Optional(), Length(max=255), valid_path])
    timestamp_path = StringField("Timestamp path", validators=[Optional(), Length(max=255), valid_path])


class IdempotencyForm(FlaskForm):
    """Enforce idempotency on the key found at a path."""

    enabled = BooleanField("Enforce idempotency")
    idempotency_key_path = StringField("Idempotency key path", validators=[Optional(), Length(max=255), valid_path])


class ScriptForm(FlaskForm):
    """The environment's script, and what to test it on."""

    source = TextAreaField("Script", validators=[Length(max=65536)])
    sample = SelectField("Test on", choices=[], validate_choice=False)
    payload = TextAreaField('Pasted payload (JSON: {"body": ..., "headers": ...})', validators=[Length(max=1048576)])


class MappingForm(FlaskForm):
    """An event-action mapping; its parameters are read from ``param-<name>`` fields of the chosen action."""

    event_type = StringField("When receiving (event type)", validators=[DataRequired(), Length(max=255)])
    action_type = HiddenField("Action", validators=[DataRequired()])


class LogFilterForm(FlaskForm):
    """The filters of the logs page (a GET form: nothing to protect)."""

    class Meta:
        csrf = False

    status = SelectField("Status", choices=[], validate_choice=False)
    event = StringField("Event type", validators=[Optional(), Length(max=255)])
    starting_at = DateTimeLocalField("From (UTC)", format=DATETIME_FORMATS, validators=[Optional()])
    ending_at = DateTimeLocalField("Until (UTC)", format=DATETIME_FORMATS, validators=[Optional()])


class TriggerForm(FlaskForm):
    """A workflow's source-event trigger: which source and event, and the field mapping (``field-<name>``)."""

    source = SelectField("Source", choices=[], validate_choice=False, validators=[DataRequired()])
    event = StringField("Event name", validators=[DataRequired(), Length(max=255)])


class TestEventForm(FlaskForm):
    """Send a provider example or a stored sample as a new event."""

    payload = SelectField("Payload", choices=[], validate_choice=False)


class VariableForm(FlaskForm):
    """A variable; per-environment values are read from ``env-<slug>`` fields."""

    key = StringField("Key", validators=[DataRequired(), Length(max=255)])
    secret = BooleanField("Secret (write-only: its value is never shown again)")
    description = StringField("Description", validators=[Optional(), Length(max=1024)])
    value = StringField("Default value", validators=[Optional(), Length(max=65536)])

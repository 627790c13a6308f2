"""A source environment's settings: signing secrets (rotation), checks, paths and the script.

Each section is its own form posting to its own URL; success redirects back
(post, redirect, get), a refusal shows the page again with the errors
beside the fields and status 422.
"""

from __future__ import annotations

import json
from datetime import timedelta

from flask import Blueprint, flash, redirect, render_template, request, url_for
from wtforms import SelectChoice

from knock_sources.control import rehearsal, signing_secrets, sources
from knock_sources.errors import NotFound, ValidationFailed
from knock_sources.ingest.verification import script_source
from knock_sources.state import current_state
from knock_sources.store.control import KnownEvent
from knock_sources.views.ui.common import field_errors, source_environment
from knock_sources.views.ui.forms import (
    ActionForm,
    AddSecretForm,
    IdempotencyForm,
    PathsForm,
    ReplaceSecretForm,
    ScriptForm,
    SwitchForm,
)

bp = Blueprint("settings", __name__)

PASTED = "__pasted__"


def _sample_choices(source_env) -> list[SelectChoice]:
    known = KnownEvent.select(KnownEvent.event_type).where(KnownEvent.source_environment == source_env)
    choices = [
        SelectChoice(row.event_type, f"Last {row.event_type} received") for row in known.order_by(KnownEvent.event_type)
    ]
    return [*choices, SelectChoice(PASTED, "The payload pasted below")]


def _page(source, source_env, status=200, **forms):
    settings = source_env.settings or {}
    paths = forms.pop("paths", None) or PathsForm(
        formdata=None,
        event_type_path=settings.get("event_type_path"),
        timestamp_path=settings.get("timestamp_path"),
    )
    idempotency = forms.pop("idempotency", None) or IdempotencyForm(
        formdata=None,
        enabled=bool(settings.get("enforce_idempotency")),
        idempotency_key_path=settings.get("idempotency_key_path"),
    )
    script = forms.pop("script", None) or ScriptForm(formdata=None, source=script_source(settings) or "")
    script.sample.choices = _sample_choices(source_env)
    state = current_state()
    return (
        render_template(
            "sources/settings.html",
            source=source,
            source_env=source_env,
            provider=state.registry.providers.get(source.provider),
            secrets=signing_secrets.describe(source_env.signing_secrets),
            verification=sources.verification_summary(state, source, source_env),
            previous_expiry=sources.previous_token_expiry(source_env),
            grace_hours=round(state.config["TOKEN_GRACE_SECONDS"] / 3600, 1),
            replace_form=forms.pop("replace_form", None) or ReplaceSecretForm(formdata=None),
            add_form=forms.pop("add_form", None) or AddSecretForm(formdata=None),
            action_form=ActionForm(formdata=None),
            paths=paths,
            idempotency=idempotency,
            script=script,
            errors=forms.pop("errors", {}),
            **forms,
        ),
        status,
    )


def _saved(key, message, anchor):
    current_state().cache.clear()
    flash(message, "success")
    return redirect(url_for("ui.settings.index", key=key, _anchor=anchor))


@bp.get("/<env:env>/sources/<key>/settings")
def index(key):
    """Every setting of the source environment."""
    source, source_env = source_environment(key)
    return _page(source, source_env)


@bp.post("/<env:env>/sources/<key>/secrets/replace")
def replace_secret(key):
    """Make a pasted secret the current one; the previous ones stay valid for the chosen time."""
    source, source_env = source_environment(key)
    form = ReplaceSecretForm()
    if form.validate_on_submit():
        keep = timedelta(hours=int(form.keep_previous.data or 0))
        try:
            signing_secrets.replace(current_state().keyring, source_env, form.new_secret.data, keep or None)
        except ValidationFailed as exc:
            return _page(source, source_env, 422, replace_form=form, errors=field_errors(exc))
        return _saved(key, "The new signing secret is in use.", "verification")
    return _page(source, source_env, 422, replace_form=form)


@bp.post("/<env:env>/sources/<key>/secrets/add")
def add_secret(key):
    """Add another valid secret, optionally expiring."""
    source, source_env = source_environment(key)
    form = AddSecretForm()
    if form.validate_on_submit():
        try:
            signing_secrets.add(current_state().keyring, source_env, form.additional_secret.data, form.expires_at.data)
        except ValidationFailed as exc:
            return _page(source, source_env, 422, add_form=form, errors=field_errors(exc))
        return _saved(key, "The signing secret was added.", "verification")
    return _page(source, source_env, 422, add_form=form)


@bp.post("/<env:env>/sources/<key>/secrets/<int:index>/remove")
def remove_secret(key, index):
    """Remove one secret: requests signed with it are refused from now on."""
    _, source_env = source_environment(key)
    signing_secrets.remove(source_env, index)
    return _saved(key, "The signing secret was removed.", "verification")


#: The on/off settings with a switch of their own: what the flash message calls them, the section they are in.
SWITCHES = {
    "enforce_verification": ("Enforce verification", "verification"),
    "handle_identifies": ("Handling identify calls", "identifies"),
}


@bp.post("/<env:env>/sources/<key>/settings/switch/<name>")
def switch(key, name):
    """Switch one on/off setting ("Enforce verification", "Handle identifies") on or off."""
    if name not in SWITCHES:
        raise NotFound(f"There is no {name!r} switch.", code="setting_missing")
    _, source_env = source_environment(key)
    form = SwitchForm()
    sources.configure(current_state(), source_env, {name: bool(form.enabled.data)})
    label, anchor = SWITCHES[name]
    return _saved(key, f"{label} is {'on' if form.enabled.data else 'off'}.", anchor)


@bp.post("/<env:env>/sources/<key>/settings/active")
def set_active(key):
    """Enable or disable the environment: a disabled one's URL answers 404 and logs nothing."""
    _, source_env = source_environment(key)
    form = SwitchForm()
    sources.set_active(current_state(), source_env, bool(form.enabled.data))
    state = "enabled" if form.enabled.data else "disabled: its URL answers 404"
    return _saved(key, f"The {source_env.environment.slug} environment is {state}.", "environment")


@bp.post("/<env:env>/sources/<key>/rotate-token")
def rotate_token(key):
    """Give the environment a new webhook URL; the old one keeps working for ``TOKEN_GRACE_SECONDS``."""
    _, source_env = source_environment(key)
    grace = current_state().config["TOKEN_GRACE_SECONDS"]
    sources.rotate_token(source_env, grace)
    until = sources.previous_token_expiry(source_env)
    kept = f"the previous one works until {until:%Y-%m-%d %H:%M} UTC" if until else "the previous one stopped working"
    return _saved(key, f"The webhook URL was rotated; {kept}.", "environment")


@bp.post("/<env:env>/sources/<key>/settings/paths")
def paths(key):
    """Save the event type and timestamp paths (empty: the provider's own rule, or none)."""
    source, source_env = source_environment(key)
    form = PathsForm()
    if not form.validate_on_submit():
        return _page(source, source_env, 422, paths=form)
    changes = {"event_type_path": form.event_type_path.data or None, "timestamp_path": form.timestamp_path.data or None}
    sources.configure(current_state(), source_env, changes)
    return _saved(key, "The paths were saved.", "paths")


@bp.post("/<env:env>/sources/<key>/settings/idempotency")
def idempotency(key):
    """Switch idempotency on or off and set the key path."""
    source, source_env = source_environment(key)
    form = IdempotencyForm()
    valid = form.validate_on_submit()
    if valid and form.enabled.data and not form.idempotency_key_path.data:
        form.idempotency_key_path.errors.append("Idempotency needs a key path, such as body.id.")
        valid = False
    if not valid:
        return _page(source, source_env, 422, idempotency=form)
    changes = {
        "enforce_idempotency": bool(form.enabled.data),
        "idempotency_key_path": form.idempotency_key_path.data or None,
    }
    sources.configure(current_state(), source_env, changes)
    return _saved(key, "Idempotency settings saved.", "idempotency")


@bp.post("/<env:env>/sources/<key>/settings/script")
def script(key):
    """Save the script (refused with the compiler's message if it does not compile), or test it."""
    source, source_env = source_environment(key)
    form = ScriptForm()
    form.sample.choices = _sample_choices(source_env)
    if not form.validate_on_submit():
        return _page(source, source_env, 422, script=form)
    if request.form.get("intent") == "test":
        return _test_script(source, source_env, form)
    text = (form.source.data or "").strip()
    value = {"language": "javascript", "source": text} if text else None
    try:
        sources.configure(current_state(), source_env, {"preprocess_script": value})
    except ValidationFailed as exc:
        return _page(source, source_env, 422, script=form, script_error=exc.message)
    return _saved(key, "The script was saved." if text else "The script was removed.", "script")


def _test_script(source, source_env, form):
    if not (form.source.data or "").strip():
        form.source.errors.append("Write a script to test.")
        return _page(source, source_env, 422, script=form)
    if form.sample.data == PASTED:
        try:
            payload = json.loads(form.payload.data or "")
        except ValueError as exc:
            form.payload.errors.append(f"Not valid JSON: {exc}")
            return _page(source, source_env, 422, script=form)
        if not isinstance(payload, dict) or not isinstance(payload.get("body", {}), dict):
            form.payload.errors.append('Paste an object such as {"body": {...}, "headers": {...}}.')
            return _page(source, source_env, 422, script=form)
    else:
        known = KnownEvent.get_or_none(source_environment=source_env, event_type=form.sample.data)
        payload = (known.sample_payload if known else None) or {}
    state = current_state()
    result = rehearsal.try_script(
        state.scripts,
        form.source.data,
        rehearsal.sample_envelope(payload),
        state.cache.variables(source_env.environment_id),
    )
    return _page(source, source_env, script=form, script_result=result)

"""Variables: the list, and adding or editing one with its per-environment values.

A secret variable's values are write-only: the page shows only whether
each is set, and an empty field keeps the stored value.
"""

from __future__ import annotations

from flask import Blueprint, flash, g, redirect, render_template, request, url_for

from knock_sources.control import variables
from knock_sources.errors import NotFound, ValidationFailed
from knock_sources.state import current_state
from knock_sources.store.control import Environment, Variable, VariableValue
from knock_sources.store.keys import VARIABLE_KEY
from knock_sources.views.ui.common import field_errors
from knock_sources.views.ui.forms import ActionForm, VariableForm

bp = Blueprint("variables", __name__)


def _environment_values() -> dict[int, dict[int, str]]:
    values: dict[int, dict[int, str]] = {}
    for row in VariableValue.select():
        values.setdefault(row.variable_id, {})[row.environment_id] = row.value
    return values


@bp.get("/<env:env>/variables")
def index():
    """Every variable with its default and per-environment values (secret ones: set or not)."""
    listed = list(Variable.select().order_by(Variable.key))
    return render_template(
        "variables/index.html", variables=listed, values=_environment_values(), action_form=ActionForm(formdata=None)
    )


def _body(form, variable, environments) -> dict:
    """The ``upsert_variable`` body: for a secret, an empty field keeps what is stored."""
    secret = bool(form.secret.data)
    keep_empty = secret and variable is not None and variable.secret
    body = {"secret": secret, "description": form.description.data or None}
    if form.value.data or not keep_empty:
        body["value"] = form.value.data or None
    body["environment_values"] = {}
    for environment in environments:
        text = request.form.get(f"env-{environment.slug}", "")
        if text or not keep_empty:
            body["environment_values"][environment.slug] = text or None
    return body


@bp.route("/<env:env>/variables/new", methods=["GET", "POST"], defaults={"key": None})
@bp.route("/<env:env>/variables/<key>/edit", methods=["GET", "POST"])
def edit(key):
    """Add a variable, or edit one."""
    variable = None
    if key is not None:
        variable = Variable.get_or_none(Variable.key == key)
        if variable is None:
            raise NotFound(f"Variable {key!r} does not exist.", code="variable_missing")
    environments = list(Environment.select().order_by(Environment.id))
    overrides = {row.environment_id: row.value for row in variable.values} if variable else {}
    form = VariableForm()
    errors = {}
    if request.method == "GET" and variable is not None:
        form.key.data = variable.key
        form.secret.data = variable.secret
        form.description.data = variable.description
        form.value.data = None if variable.secret else variable.value
    if form.validate_on_submit():
        new_key = form.key.data.strip() if variable is None else variable.key
        try:
            problem = VARIABLE_KEY.problem(new_key)
            if problem:
                raise ValidationFailed({"key": [problem]})
            if variable is None and Variable.select().where(Variable.key == new_key).exists():
                raise ValidationFailed({"key": [f"A variable {new_key!r} already exists."]})
            saved = variables.upsert_variable(current_state().keyring, new_key, _body(form, variable, environments))
        except ValidationFailed as exc:
            errors = field_errors(exc)
        else:
            current_state().cache.clear()
            flash(f"Variable {saved.key} saved.", "success")
            return redirect(url_for("ui.variables.index"))
    page = render_template(
        "variables/edit.html",
        form=form,
        variable=variable,
        environments=environments,
        overrides=overrides,
        errors=errors,
    )
    return page, 422 if errors or form.errors else 200


@bp.post("/<env:env>/variables/<key>/delete")
def delete(key):
    """Delete a variable and its environment values."""
    variables.delete_variable(key)
    current_state().cache.clear()
    flash(f"Variable {key} deleted.", "success")
    return redirect(url_for("ui.variables.index", env=g.environment.slug))

"""The sources pages: the list, connecting one from a template, and a source environment's overview."""

from __future__ import annotations

from flask import Blueprint, flash, g, jsonify, redirect, render_template, request, url_for

from knock_sources.control import activity, sources
from knock_sources.errors import NotFound, ValidationFailed
from knock_sources.state import current_state
from knock_sources.store.control import Environment, Source, SourceEnvironment
from knock_sources.views.ui import chart
from knock_sources.views.ui.common import field_errors, source_environment
from knock_sources.views.ui.forms import ConnectForm

bp = Blueprint("sources", __name__)


@bp.get("/")
def home():
    """The dashboard's front door: the sources of the first environment."""
    return redirect(url_for("ui.sources.index"))


def provider_cards(registry) -> list:
    """The installed providers as "Connect a new source" shows them: by name, custom HTTP last."""
    return sorted(registry.providers.values(), key=lambda provider: (provider.slug == "custom_http", provider.name))


@bp.get("/<env:env>/sources")
def index():
    """Connected sources with their recent activity in this environment, and the templates to connect."""
    state = current_state()
    listed = list(Source.select().order_by(Source.name, Source.id))
    rows = (
        SourceEnvironment.select(SourceEnvironment, Environment)
        .join(Environment)
        .where(SourceEnvironment.source.in_([source.id for source in listed]))
        .order_by(Environment.id)
    )
    by_source: dict = {}
    for row in rows:
        by_source.setdefault(row.source_id, []).append(row)
    here = {}
    for source in listed:
        current = next((row for row in by_source.get(source.id, []) if row.environment_id == g.environment.id), None)
        if current is not None:
            current.source = source
            here[source.id] = current
    recent = activity.activity_of(current_state().hours, [row.id for row in here.values()])
    entries = [
        {
            "source": source,
            "provider": state.registry.providers.get(source.provider),
            "environments": by_source.get(source.id, []),
            "here": here.get(source.id),
            "activity": recent[here[source.id].id] if source.id in here else None,
            "verification": sources.verification_summary(state, source, here[source.id]) if source.id in here else None,
        }
        for source in listed
    ]
    return render_template("sources/index.html", entries=entries, providers=provider_cards(state.registry))


@bp.route("/<env:env>/connect/<provider_slug>", methods=["GET", "POST"])
def connect(provider_slug):
    """Connect a source from a provider's template: key, name, default mappings on or off, signing secret."""
    state = current_state()
    provider = state.registry.providers.get(provider_slug)
    if provider is None:
        raise NotFound(f"No provider {provider_slug!r} is installed.", code="provider_missing")
    form = ConnectForm()
    enabled = set(range(len(provider.default_mappings)))
    errors = {}
    if request.method == "GET":
        form.key.data = sources.available_key(provider.slug.replace("_", "-"))
        form.name.data = provider.name
    else:
        enabled = {int(value) for value in request.form.getlist("mapping") if value.isdigit()}
        if form.validate_on_submit():
            try:
                source = sources.connect(
                    state,
                    g.environment,
                    key=form.key.data.strip(),
                    name=form.name.data.strip(),
                    provider_slug=provider.slug,
                    inactive_defaults=set(range(len(provider.default_mappings))) - enabled,
                    signing_secret=form.signing_secret.data or None,
                )
            except ValidationFailed as exc:
                errors = field_errors(exc)
            else:
                state.cache.clear()
                flash(f"{source.name} is connected. Point {provider.name} at the webhook URL below.", "success")
                return redirect(url_for("ui.sources.overview", key=source.key))
    return render_template("sources/connect.html", form=form, provider=provider, enabled=enabled, errors=errors)


@bp.get("/<env:env>/sources/<key>")
def overview(key):
    """A source environment: its webhook URL, first-run steps and the last 24 hours of traffic."""
    source, source_env = source_environment(key)
    state = current_state()
    latest = activity.latest_event(source_env.id)
    return render_template(
        "sources/overview.html",
        source=source,
        source_env=source_env,
        provider=state.registry.providers.get(source.provider),
        endpoint=sources.endpoint_url(state.config, source_env.token),
        tracking_host=sources.tracking_host(state.config),
        latest=latest,
        chart=chart.events_per_hour(current_state().hours.series([source_env.id])[source_env.id]),
        verification=sources.verification_summary(state, source, source_env),
    )


@bp.get("/<env:env>/sources/<key>/first-event")
def first_event(key):
    """Whether an event has arrived yet (polled by "Waiting for your first event...")."""
    _, source_env = source_environment(key)
    latest = activity.latest_event(source_env.id)
    if latest is None:
        return jsonify({"received": False})
    return jsonify(
        {
            "received": True,
            "event_type": latest.event_type,
            "status": latest.status,
            "received_at": latest.received_at.isoformat() + "Z",
            "log_url": url_for("ui.logs.detail", key=key, log_id=latest.id),
        }
    )

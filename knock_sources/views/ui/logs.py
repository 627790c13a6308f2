"""Events received, the logs (filters, cursor pages, live tail), a log's detail, and "Send test event"."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from wtforms import SelectChoice

from knock_sources.control import event_logs, test_events
from knock_sources.errors import NotFound
from knock_sources.ingest.verification import REDACTED
from knock_sources.state import current_state
from knock_sources.store import EVENT_STATUSES
from knock_sources.store.control import EventLog, KnownEvent
from knock_sources.views.api.common import paginate, row_id
from knock_sources.views.ui.common import source_environment
from knock_sources.views.ui.forms import LogFilterForm, TestEventForm

bp = Blueprint("logs", __name__)

#: Values of the "Send test event" choice: ``example:<type>`` or ``sample:<type>``.
EXAMPLE, SAMPLE = "example", "sample"


def _known_events(source_env):
    return list(
        KnownEvent.select()
        .where(KnownEvent.source_environment == source_env)
        .order_by(KnownEvent.last_received_at.desc())
    )


def _test_event_form(source, known) -> TestEventForm:
    form = TestEventForm()
    provider = current_state().registry.providers.get(source.provider)
    examples = test_events.example_event_types(provider)
    form.payload.choices = [
        *(SelectChoice(f"{EXAMPLE}:{event_type}", f"Example {event_type}") for event_type in examples),
        *(
            SelectChoice(f"{SAMPLE}:{row.event_type}", f"Last {row.event_type} received")
            for row in known
            if row.sample_payload
        ),
    ]
    return form


def _filters(form: LogFilterForm) -> dict:
    filters = {}
    if form.status.data in EVENT_STATUSES:
        filters["status"] = form.status.data
    if form.event.data:
        filters["event"] = form.event.data.strip()
    if form.starting_at.data:
        filters["starting_at"] = form.starting_at.data
    if form.ending_at.data:
        filters["ending_at"] = form.ending_at.data
    return filters


def _filter_form(known) -> LogFilterForm:
    form = LogFilterForm(formdata=request.args)
    form.status.choices = [
        SelectChoice("", "Any status"),
        *(SelectChoice(status, status.capitalize()) for status in EVENT_STATUSES),
    ]
    form.validate()
    form.known_types = [row.event_type for row in known]
    return form


@bp.get("/<env:env>/sources/<key>/events")
def events(key):
    """The event types received, with counts, first and last received, and the last sample."""
    source, source_env = source_environment(key)
    return render_template("logs/events.html", source=source, source_env=source_env, known=_known_events(source_env))


@bp.get("/<env:env>/sources/<key>/logs")
def index(key):
    """Event logs, newest first, with filters; ``after``/``before`` cursors that new arrivals do not shift."""
    source, source_env = source_environment(key)
    known = _known_events(source_env)
    form = _filter_form(known)
    filters = _filters(form) if not form.errors else {}
    page = paginate(event_logs.filtered(source_env, **filters), EventLog.id, lambda row: row)
    args = {name: value for name, value in request.args.items() if name not in ("after", "before")}
    return render_template(
        "logs/index.html",
        source=source,
        source_env=source_env,
        form=form,
        page=page,
        rows=page["entries"],
        args=args,
        live=not request.args.get("after") and not request.args.get("before"),
        test_form=_test_event_form(source, known),
    )


@bp.get("/<env:env>/sources/<key>/logs/newer")
def newer(key):
    """Rows newer than ``since`` for the live tail: an HTML fragment of table rows, newest first."""
    source, source_env = source_environment(key)
    form = _filter_form([])
    since = row_id(request.args.get("since", "0"), "since")
    rows = event_logs.newer_than(event_logs.filtered(source_env, **_filters(form)), since)
    return render_template("logs/_rows.html", source=source, rows=rows)


@bp.get("/<env:env>/sources/<key>/logs/<log_id>")
def detail(key, log_id):
    """One request: headers, body, preprocess output, verification, and what each action did."""
    source, source_env = source_environment(key)
    event_log = event_logs.get(source_env, row_id(log_id))
    if event_log is None:
        raise NotFound(f"Log {log_id} does not exist in {source_env.environment.slug}.", code="log_missing")
    return render_template(
        "logs/detail.html",
        source=source,
        source_env=source_env,
        log=event_log,
        actions=event_logs.actions_of([event_log.id])[event_log.id],
        redacted=REDACTED,
        tab="Logs",
    )


@bp.post("/<env:env>/sources/<key>/logs/test-event")
def send_test_event(key):
    """Send a provider example (signed with the provider's ``sign()``) or a stored sample as a new event."""
    source, source_env = source_environment(key)
    form = _test_event_form(source, _known_events(source_env))
    kind, _, event_type = (form.payload.data or "").partition(":")
    state = current_state()
    remote_ip = request.remote_addr
    if kind == EXAMPLE:
        sent = test_events.send_example(state, source_env, event_type, remote_ip)
    elif kind == SAMPLE:
        sent = test_events.send_sample(state, source_env, event_type, remote_ip)
    else:
        flash("Choose a payload to send.", "error")
        return redirect(url_for("ui.logs.index", key=key))
    if sent.accepted:
        flash(f"Test event {event_type} sent: accepted.", "success")
    else:
        flash(f"Test event {event_type} sent: refused with {sent.status} ({sent.code}): {sent.message}", "error")
    if sent.event_log_id is None:
        return redirect(url_for("ui.logs.index", key=key))
    return redirect(url_for("ui.logs.detail", key=key, log_id=sent.event_log_id))

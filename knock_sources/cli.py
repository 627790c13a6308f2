"""Flask CLI commands: ``flask init-db``, ``worker``, ``sweep``, ``purge``, ``replay``, ``rotate-secrets``,
``api-key create|list|revoke``, ``admin create``.

Flask finds the app through ``wsgi.py``, so no ``--app`` is needed.
"""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from datetime import timedelta

import click
from flask import current_app
from flask.cli import AppGroup, ScriptInfo, with_appcontext
from marshmallow import ValidationError
from peewee import PeeweeException

from knock_sources import config, store
from knock_sources.control import (
    admins,
    api_keys,
    event_logs,
    hour_counts,
    replay,
    replay_selection,
    sources,
    variables,
    workflows,
)
from knock_sources.errors import NotFound, SourcesError, ValidationFailed
from knock_sources.explain import EXPLAINED, explain
from knock_sources.observability import exposition, metrics
from knock_sources.state import current_state
from knock_sources.store import isoformat, schema, utcnow
from knock_sources.store.control import Environment
from knock_sources.views.api.schemas import ReplayBodySchema
from knock_sources.worker import idempotency, jobs, service


class _Explained:
    """A database or Redis a command cannot use is one line saying how to fix it, not a traceback."""

    def invoke(self, ctx):
        """Run the command, explaining the failures a first run meets (``explain``)."""
        try:
            return super().invoke(ctx)
        except EXPLAINED as exc:
            app = ctx.ensure_object(ScriptInfo).load_app()
            raise click.ClickException(explain(exc, app.config)) from None


class Command(_Explained, click.Command):
    """The class of every knock-sources command: ``@click.command(name, cls=Command)``."""


class Group(_Explained, AppGroup):
    """The class of every knock-sources command group; its subcommands are explained too."""


api_key_cli = Group("api-key", help="Manage JSON API keys.")
admin_cli = Group("admin", help="Manage dashboard administrators.")


@click.command("init-db", cls=Command)
@with_appcontext
def init_db_command():
    """Create the database or migrate it to the current schema (safe to re-run)."""
    version = schema.migrate(current_app.config["ENVIRONMENTS"])
    with store.db.connection_context():
        created = sources.create_missing_environments(current_state().registry)
    if created:
        click.echo(f"Configured {created} source environments for newly added environments.", err=True)
    click.echo(f"Database ready at schema version {version}.", err=True)


@click.command("worker", cls=Command)
@click.option("--burst", is_flag=True, help="Stop when the queue is empty.")
@click.option(
    "--metrics-bind",
    default=None,
    help="host:port to serve this worker's metrics on (default WORKER_METRICS_BIND; empty: none).",
)
@with_appcontext
def worker_command(burst, metrics_bind):
    """Run an RQ worker for the event and replay queues; it also sweeps pending events."""
    state = current_state()
    if state.queue is None:
        raise click.UsageError("Set KNOCK_SOURCES_REDIS_URL: without Redis, jobs run in the web process.")
    try:
        bind = exposition.parse_bind(
            current_app.config["WORKER_METRICS_BIND"] if metrics_bind is None else metrics_bind
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--metrics-bind") from None
    if bind is not None:
        exposition.serve(bind, current_app.config["METRICS_TOKEN"], lambda: metrics.render(state.backlog))
    config.warn_if_insecure(state.config, current_app.logger)
    service.run(state, burst=burst)


@click.command("sweep", cls=Command)
@with_appcontext
def sweep_command():
    """Re-enqueue events still pending after the grace period."""
    state = current_state()
    if state.queue is not None:
        # The sweep itself shrugs Redis off (the next one carries on); asked for by hand, it must say so.
        state.queue.connection.ping()
    with store.db.connection_context():
        swept = jobs.sweep(state, state.queue, None)
    click.echo(f"Re-enqueued {swept} pending events.", err=True)


@click.command("purge", cls=Command)
@with_appcontext
def purge_command():
    """Delete logs older than LOG_RETENTION_DAYS, runs older than WORKFLOW_RUN_RETENTION_DAYS, expired keys.

    On PostgreSQL whole days of logs are dropped, so up to one day more than
    LOG_RETENTION_DAYS is kept (see docs/operations.md).
    """
    now = utcnow()
    cutoff = now - timedelta(days=current_app.config["LOG_RETENTION_DAYS"])
    with store.db.connection_context():
        # Expired keys and old runs first: the purge of logs then has fewer references to clear.
        keys = idempotency.purge(now)
        runs = workflows.purge_runs(now - timedelta(days=current_app.config["WORKFLOW_RUN_RETENTION_DAYS"]))
        purged = event_logs.purge(cutoff)
        hour_counts.purge(cutoff)
    if purged.days:
        days = len(purged.days)
        click.echo(
            f"Dropped {days} day{'s' if days > 1 else ''} of event and action logs "
            f"({purged.days[0].isoformat()} to {purged.days[-1].isoformat()}).",
            err=True,
        )
    click.echo(f"Deleted {purged.deleted} event logs, {keys} idempotency records and {runs} workflow runs.", err=True)


@click.command("replay", cls=Command)
@click.argument("source")
@click.option("--environment", "-e", required=True, help="The environment whose events to replay.")
@click.option(
    "--status", "statuses", multiple=True, help="Replay events with this status (repeatable; default failed)."
)
@click.option("--event", "events", multiple=True, help="Replay events of this type (repeatable).")
@click.option("--since", "starting_at", default=None, help="Received at or after (ISO-8601).")
@click.option("--until", "ending_at", default=None, help="Received at or before (ISO-8601).")
@click.option("--id", "ids", multiple=True, type=int, help="Replay this event log id (repeatable).")
@click.option("--ignore-idempotency", is_flag=True, help="Run events even if their idempotency key was seen.")
@click.option("--dry-run", is_flag=True, help="Count the events and show what replaying them would do.")
@click.option("--limit", default=20, show_default=True, help="How many events a dry run shows.")
@with_appcontext
def replay_command(source, environment, dry_run, ignore_idempotency, limit, **filters):
    """Replay a source's stored events under the current mappings, with a progress bar."""
    state = current_state()
    raw = {name: list(value) if isinstance(value, tuple) else value for name, value in filters.items()}
    raw = {name: value for name, value in raw.items() if value not in (None, [])}
    try:
        body = ReplayBodySchema().load(
            {"filter": raw, "dry_run": dry_run, "ignore_idempotency": ignore_idempotency, "limit": limit}
        )
    except ValidationError as exc:
        raise click.UsageError(f"invalid filter: {exc.messages}") from None
    filter_ = replay_selection.normalise_filter(body["filter"])
    with store.db.connection_context():
        try:
            env = Environment.get(Environment.slug == environment)
            source_env = sources.get_source_environment(sources.get_source(source), env)
        except (NotFound, Environment.DoesNotExist):
            raise click.UsageError(f"no source {source!r} in environment {environment!r}") from None
        if dry_run:
            click.echo(
                json.dumps(replay_selection.dry_run(state, source_env, filter_, ignore_idempotency, limit), indent=2)
            )
            return
        created = replay.create(state, source_env, filter_, ignore_idempotency)
        with click.progressbar(length=created.total, label=f"Replaying {created.total} events", file=sys.stderr) as bar:
            try:
                finished = replay.run(state, created.id, progress=bar.update)
            except PeeweeException as exc:
                raise click.ClickException(
                    f"the database failed during replay {created.id} ({exc}); it resumes where it stopped when "
                    "`flask sweep` or a worker's sweeper next runs after REPLAY_STALE_SECONDS"
                ) from None
    click.echo(
        f"Replay {finished.id} {finished.state}: {finished.done} replayed, {finished.failed} failed, "
        f"{finished.skipped} skipped.",
        err=True,
    )


@contextmanager
def _service():
    """Open the database for a service call; its refusal becomes a one-line error."""
    with store.db.connection_context():
        try:
            yield
        except SourcesError as exc:
            raise click.ClickException(exc.message) from None


@click.command("rotate-secrets", cls=Command)
@with_appcontext
def rotate_secrets_command():
    """Re-encrypt every stored secret under SECRET_KEY (after moving the old key to SECRET_KEY_FALLBACKS)."""
    keyring = current_state().keyring
    with store.db.connection_context(), store.db.atomic():
        signing = sources.rotate_secrets(keyring)
        secret_variables = variables.rotate(keyring)
    rotated, failed = signing[0] + secret_variables[0], signing[1] + secret_variables[1]
    click.echo(f"Re-encrypted {rotated} secrets under the current SECRET_KEY.", err=True)
    if failed:
        raise click.ClickException(
            f"{failed} secrets cannot be decrypted with SECRET_KEY or SECRET_KEY_FALLBACKS and were left as they are: "
            "add the key they were stored under to KNOCK_SOURCES_SECRET_KEY_FALLBACKS and run this again, "
            "or enter those secrets again."
        )


@api_key_cli.command("create")
@click.option("--name", default=None, help="A label to remember the key by (unique; `revoke` uses it).")
@with_appcontext
def create_api_key(name):
    """Create an API key and print it (only the key, on stdout); it is not stored in clear."""
    with _service():
        key = api_keys.create(name)
    click.echo(key)


@api_key_cli.command("list")
@with_appcontext
def list_api_keys():
    """List API keys: name, prefix, created, last used (never the key)."""
    with store.db.connection_context():
        keys = api_keys.list_keys()
    if not keys:
        click.echo("No API keys; create one with `flask api-key create --name NAME`.", err=True)
        return
    click.echo("NAME\tPREFIX\tCREATED\tLAST USED")
    for key in keys:
        last_used = isoformat(key.last_used_at) if key.last_used_at else "never"
        click.echo(f"{key.name or '(unnamed)'}\t{key.prefix}\t{isoformat(key.created_at)}\t{last_used}")


@api_key_cli.command("revoke")
@click.argument("name")
@with_appcontext
def revoke_api_key(name):
    """Revoke the API key called NAME (an unnamed key by the prefix `list` shows); it stops working at once."""
    with _service():
        revoked = api_keys.revoke(name)
    click.echo(f"Revoked {revoked} API key{'s' if revoked > 1 else ''}.", err=True)


def read_password() -> str:
    """Prompt twice without echo on a terminal; otherwise read one line from standard input."""
    if sys.stdin.isatty():
        return click.prompt("Password", hide_input=True, confirmation_prompt=True)
    return sys.stdin.readline().rstrip("\r\n")


@admin_cli.command("create")
@click.option("--username", required=True, help="The name to sign in with.")
@with_appcontext
def create_admin(username):
    """Create a dashboard administrator, or set a new password for an existing one.

    The password is prompted for, or read from standard input when it is not
    a terminal (``echo "$PASSWORD" | flask admin create --username ada``).
    """
    password = read_password()
    try:
        with store.db.connection_context():
            _, created = admins.create_or_reset(username, password)
    except ValidationFailed as exc:
        raise click.UsageError(exc.message) from None
    verb = "Created" if created else "Set a new password for"
    click.echo(f"{verb} administrator {username!r}.", err=True)


def init_app(app):
    """Register the commands."""
    for command in (
        init_db_command,
        worker_command,
        sweep_command,
        purge_command,
        replay_command,
        rotate_secrets_command,
        api_key_cli,
        admin_cli,
    ):
        app.cli.add_command(command)

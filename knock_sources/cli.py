"""Flask CLI commands: ``flask init-db``, ``worker``, ``sweep``, ``purge``, ``rotate-secrets``,
``api-key create|list|revoke``.

Flask finds the app through ``wsgi.py``, so no ``--app`` is needed.
"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import timedelta

import click
from flask import current_app
from flask.cli import AppGroup, ScriptInfo, with_appcontext

from knock_sources import config, store
from knock_sources.control import api_keys, sources, variables
from knock_sources.errors import SourcesError
from knock_sources.explain import EXPLAINED, explain
from knock_sources.state import current_state
from knock_sources.store import isoformat, schema, utcnow
from knock_sources.store.control import EventLog
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
PURGE_BATCH = 5000


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
@with_appcontext
def worker_command(burst):
    """Run an RQ worker for the event queue; it also sweeps pending events."""
    state = current_state()
    if state.queue is None:
        raise click.UsageError("Set KNOCK_SOURCES_REDIS_URL: without Redis, jobs run in the web process.")
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
    """Delete logs older than LOG_RETENTION_DAYS and expired idempotency records."""
    now = utcnow()
    cutoff = now - timedelta(days=current_app.config["LOG_RETENTION_DAYS"])
    with store.db.connection_context():
        logs = purge_event_logs(cutoff)
        keys = idempotency.purge(now)
    click.echo(f"Deleted {logs} event logs and {keys} idempotency records.", err=True)


def purge_event_logs(cutoff) -> int:
    """Delete event logs received before ``cutoff``, oldest first, in batches.

    Walking the primary key finds old rows first (ids grow with time), so no
    index on ``received_at`` is needed; such an index would cost every insert.
    """
    deleted = 0
    while True:
        batch = [
            row.id
            for row in EventLog.select(EventLog.id)
            .where(EventLog.received_at < cutoff)
            .order_by(EventLog.id)
            .limit(PURGE_BATCH)
        ]
        if not batch:
            return deleted
        deleted += EventLog.delete().where(EventLog.id.in_(batch)).execute()


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


def init_app(app):
    """Register the commands."""
    for command in (init_db_command, worker_command, sweep_command, purge_command, rotate_secrets_command, api_key_cli):
        app.cli.add_command(command)

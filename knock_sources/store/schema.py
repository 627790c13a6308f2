"""Database connection set-up and schema migrations.

``DATABASE_URL`` chooses the backend: ``sqlite:///path`` (the embedded
default) or ``postgresql://...`` (pooled, for production). ``migrate()`` is
what ``flask init-db`` runs: it creates missing tables and applies numbered
migrations, so it is safe to run any number of times and keeps the data of a
database created by an older version.
"""

from __future__ import annotations

from urllib.parse import urlparse

from flask import g
from peewee import CharField, IndexMetadata, SqliteDatabase
from playhouse.db_url import parse as parse_db_url
from playhouse.migrate import SchemaMigrator
from playhouse.migrate import migrate as apply_migrations
from playhouse.pool import PooledPostgresqlDatabase

from knock_sources import store
from knock_sources.store import control, partitions
from knock_sources.store.dataplane import DATA_MODELS

#: Every table, in dependency order.
MODELS = control.CONTROL_MODELS + DATA_MODELS


def add_event_log_normalized(migrator, database) -> None:
    """Version 2: ``ks_event_log.normalized``, Knock's normalized form of Segment-style events.

    (``ks_received_message``, new in the same version, is created by
    ``create_tables`` like any missing table.)
    """
    table = control.EventLog._meta.table_name
    if "normalized" not in _existing_columns(database, table):
        apply_migrations(migrator.add_column(table, "normalized", store.JSONField(null=True)))


def _model_index_name(model, column: str) -> str:
    """The name ``create_tables`` gives the one-column index on ``column``, so migrated and fresh databases agree."""
    return next(index._name for index in model._meta.fields_to_index() if index._expressions[0].column_name == column)


def _add_token_rotation(migrator, database):
    """Rotated URL tokens: the previous token (indexed, as the token lookup reads it) and when it stops working."""
    model = control.SourceEnvironment
    table, fields = model._meta.table_name, model._meta.fields
    columns = _existing_columns(database, table)
    if "previous_token" not in columns:
        apply_migrations(
            # Added without its index first: add_column would name the index differently.
            migrator.add_column(
                table, "previous_token", CharField(max_length=fields["previous_token"].max_length, null=True)
            ),
            migrator.add_index(table, ("previous_token",), False, name=_model_index_name(model, "previous_token")),
        )
    if "previous_token_expires_at" not in columns:
        apply_migrations(migrator.add_column(table, "previous_token_expires_at", fields["previous_token_expires_at"]))


def _add_api_key_last_used(migrator, database):
    """When each API key was last used, for ``flask api-key list``."""
    table = control.ApiKey._meta.table_name
    if "last_used_at" not in _existing_columns(database, table):
        apply_migrations(migrator.add_column(table, "last_used_at", control.ApiKey._meta.fields["last_used_at"]))


def add_admin_users(migrator, database) -> None:
    """Version 5: dashboard administrators (``flask admin create``)."""
    database.create_tables([control.AdminUser], safe=True)


def add_replays(migrator, database) -> None:
    """Version 6: ``ks_event_log.replay_of`` and ``raw_complete``, for replays.

    (``ks_replay``, new in the same version, is created by ``create_tables``
    like any missing table; the partial index on ``replay_of`` is one of the
    ``LATE_INDEXES``.)
    """
    event_log = control.EventLog
    table = event_log._meta.table_name
    columns = {column.name for column in database.get_columns(table)}
    added = [field for field in (event_log.replay_of, event_log.raw_complete) if field.column_name not in columns]
    apply_migrations(*(migrator.add_column(table, field.column_name, field) for field in added))


def add_event_hour_counts(migrator, database) -> None:
    """Version 8: ``ks_event_hour_count``, the rollup of settled hours' event counts (``control.hour_counts``).

    It starts empty: the sweep rolls up the last day, readers any older hour they ask for.
    """
    database.create_tables([control.EventHourCount], safe=True)


#: Migrations after the initial schema, in order: ``(version, function)``
#: where ``function(migrator, database)`` changes the schema of an existing
#: database. Tables created fresh already have the latest shape.
MIGRATIONS: tuple = (
    (2, add_event_log_normalized),
    (3, _add_token_rotation),
    (4, _add_api_key_last_used),
    (5, add_admin_users),
    (6, add_replays),
    (7, partitions.partition_logs),
    (8, add_event_hour_counts),
)
CURRENT_VERSION = 1 + len(MIGRATIONS)
#: Indexes on columns that migrations add: created after them, on fresh and old databases alike.
LATE_INDEXES = ((control.EventLog, control.REPLAY_OF_INDEX),)


class PooledPostgres(PooledPostgresqlDatabase):
    """A pool that checks connections out without a ``SELECT 1`` round trip.

    Peewee's pool pings every connection it hands out, which costs the ingest
    path a round trip per request. Here only the driver's own state is
    consulted; a connection the server dropped fails its next statement, and
    the ingest insert retries once on a fresh one (``ingest.persist``).
    """

    def _is_closed(self, conn):
        return bool(conn.closed) or self._adapter.txn_status(conn) == self._adapter.txn_unknown

    def get_indexes(self, table, schema=None):
        """Peewee's list of a table's indexes, for partitioned tables too (Peewee reads plain tables only)."""
        cursor = self.execute_sql(
            "SELECT i.relname, pg_get_indexdef(i.oid), idx.indisunique, ARRAY("
            "  SELECT pg_get_indexdef(idx.indexrelid, k + 1, TRUE) FROM generate_subscripts(idx.indkey, 1) AS k"
            "  ORDER BY k) "
            "FROM pg_catalog.pg_class AS t "
            "JOIN pg_catalog.pg_namespace AS n ON t.relnamespace = n.oid "
            "JOIN pg_catalog.pg_index AS idx ON t.oid = idx.indrelid "
            "JOIN pg_catalog.pg_class AS i ON idx.indexrelid = i.oid "
            "WHERE t.relname = %s AND t.relkind IN ('r', 'p') AND n.nspname = COALESCE(%s, current_schema()) "
            "ORDER BY idx.indisunique DESC, i.relname",
            (table, schema),
        )
        return [IndexMetadata(name, sql, columns, unique, table) for name, sql, unique, columns in cursor.fetchall()]


def make_database(url: str):
    """Return an unconnected Peewee database for ``url``."""
    scheme = urlparse(url).scheme
    if scheme == "sqlite":
        path = url[len("sqlite:///") :] or ":memory:"
        database = SqliteDatabase(
            path,
            # Transactions take the write lock when they begin: a deferred one
            # that reads, then writes, cannot wait for another writer, and
            # SQLite answers it "database is locked" at once whatever the busy
            # timeout (concurrent API writes got 503). IMMEDIATE waits.
            lock_type="IMMEDIATE",
            pragmas={
                # WAL lets the web process read while a job writes.
                "journal_mode": "wal",
                "foreign_keys": 1,
                "busy_timeout": 10000,
                "synchronous": "normal",
            },
        )
    elif scheme in ("postgres", "postgresql"):
        params = parse_db_url(url)
        database = PooledPostgres(
            params.pop("database"),
            max_connections=params.pop("max_connections", 32),
            stale_timeout=params.pop("stale_timeout", 300),
            timeout=params.pop("pool_timeout", 10),
            **params,
        )
    else:
        raise ValueError(f"Unsupported DATABASE_URL scheme {scheme!r}: use sqlite:/// or postgresql://")
    # Batches run without savepoints and need to know whether a failing event wrote anything.
    database.query_hooks.append(store.count_writes)
    return database


def init_app(app):
    """Initialise ``store.db`` and manage one connection per request."""
    store.db.initialize(make_database(app.config["DATABASE_URL"]))

    @app.before_request
    def _connect():
        # Close only what this request opened: a CLI command or a test may
        # already hold the connection in this thread.
        g.opened_database_connection = store.db.connect(reuse_if_open=True)

    @app.teardown_request
    def _close(exc):
        if g.pop("opened_database_connection", False) and not store.db.is_closed():
            store.db.close()


def _existing_tables(database) -> set[str]:
    """The tables of the schema in use (on PostgreSQL the first of ``search_path``, not always ``public``)."""
    if isinstance(database.obj, SqliteDatabase):
        return set(database.get_tables())
    cursor = database.execute_sql("SELECT tablename FROM pg_catalog.pg_tables WHERE schemaname = current_schema()")
    return {row[0] for row in cursor.fetchall()}


def _existing_columns(database, table: str) -> set[str]:
    """The columns of ``table`` in the schema in use, so that a migration adds only what is missing."""
    if isinstance(database.obj, SqliteDatabase):
        return {column.name for column in database.get_columns(table)}
    cursor = database.execute_sql(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = %s",
        (table,),
    )
    return {row[0] for row in cursor.fetchall()}


def migrate(environments=("development", "production")):
    """Create or upgrade the schema and make sure ``environments`` exist."""
    database = store.db
    with database.connection_context():
        with database.atomic():
            # Only missing tables: an existing table gets new columns and
            # indexes from its migrations, never from its current model.
            existing = _existing_tables(database)
            with partitions.unconstrained_references(database):
                database.create_tables([model for model in MODELS if model._meta.table_name not in existing])
            row = control.SchemaVersion.select().first()
            migrator = SchemaMigrator.from_database(database.obj)
            if row is None:
                row = control.SchemaVersion.create(version=CURRENT_VERSION)
                # create_tables makes plain tables: fresh PostgreSQL logs get their partitions here.
                partitions.partition_logs(migrator, database)
            for version, function in MIGRATIONS:
                if version > row.version:
                    function(migrator, database)
                    row.version = version
                    row.save()
            for model, index in LATE_INDEXES:
                database.execute(model._schema._create_index(index, safe=True))
            for slug in environments:
                control.Environment.get_or_create(slug=slug)
        partitions.maintain(database)
    return row.version

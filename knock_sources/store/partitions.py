"""Day partitions of the event and action logs on PostgreSQL: their shape, their upkeep, their retention.

At 1,000 events/s the event log grows by 86 M rows a day. On PostgreSQL
``ks_event_log`` (by ``received_at``) and ``ks_action_log`` (by
``inserted_at``) are range-partitioned by UTC day: ``ks_event_log_p20261201``
holds what was received on 2026-12-01. Retention drops whole days
(``drop_days_before``): a ``DROP TABLE`` takes the same short time whatever
the day holds and leaves no dead rows for vacuum, where deleting 86 M rows
would take hours. SQLite keeps plain tables and deletes rows.

Partitions are created ``DAYS_AHEAD`` days ahead by ``flask init-db`` and by
every sweep (``maintain``). A ``DEFAULT`` partition holds any row whose day
has no partition yet (workers stopped for days, a clock far off), so an
accepted event is never refused for want of one; ``maintain`` creates the
missing day and moves such rows into it.

The primary key of a partitioned table must hold its partition key, so it is
``(id, received_at)`` (``(id, inserted_at)``); ids still come from one
sequence and stay unique. PostgreSQL's foreign keys to a partitioned table
must name that whole key, which the referencing rows do not carry, so the
references to ``ks_event_log(id)`` are not foreign keys on PostgreSQL. Their
``ON DELETE`` behaviour is kept as follows:

- Rows deleted (a source deleted, rows purged from the DEFAULT partition): a
  statement trigger on ``ks_event_log`` (``_ON_DELETE``) does what the
  foreign keys did, one set-based statement per relation: it deletes their
  action logs (CASCADE) and sets ``replay_of``, ``ks_idempotency_record``,
  ``ks_received_message`` and ``ks_workflow_run.event_log_id`` to NULL.
- Days dropped by ``flask purge`` (a DROP fires no trigger):
  ``forget_dropped`` deletes the action logs left in newer partitions (events
  received before midnight, processed after it) and sets ``replay_of``,
  idempotency-record and received-message references to NULL, each found
  through its own index by an id bound (ids grow with time). A workflow run
  keeps the id of the event log that started it (``source_log_id``) as
  history until the purge deletes the run itself (``WORKFLOW_RUN_RETENTION_DAYS``):
  nulling a day of runs would cost the purge one write per run, and nothing
  reads the log through it (``GET`` of that log answers 404).
- Inserts are not checked against the event log any more: only processing
  writes these rows, for an event it has just read.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from peewee import OperationalError, PostgresqlDatabase

from knock_sources.store import utcnow
from knock_sources.store.control import ActionLog, EventLog, IdempotencyRecord, ReceivedMessage
from knock_sources.store.dataplane import WorkflowRun

log = logging.getLogger(__name__)

#: Days created ahead of today: workers stopped for this long still find their day's partition.
DAYS_AHEAD = 3
#: How long partition DDL waits for a table lock. Inserts queue behind a waiting
#: DDL statement, so it gives up soon and the next sweep (or purge) tries again.
LOCK_TIMEOUT = "2s"
#: Serialises maintainers (workers, embedded web processes, ``init-db``) across processes.
_ADVISORY_LOCK = 0x6B735F7061727473  # "ks_parts"


@dataclass(frozen=True)
class PartitionedLog:
    """A log table partitioned by day on ``column``."""

    model: type
    column: str

    @property
    def table(self) -> str:
        """The partitioned (parent) table."""
        return self.model._meta.table_name

    @property
    def default(self) -> str:
        """The partition of rows whose day has none."""
        return f"{self.table}_default"

    def partition(self, day: date) -> str:
        """The partition of ``day``."""
        return f"{self.table}_p{day:%Y%m%d}"


EVENT_LOGS = PartitionedLog(EventLog, EventLog.received_at.column_name)
ACTION_LOGS = PartitionedLog(ActionLog, ActionLog.inserted_at.column_name)
LOGS = (EVENT_LOGS, ACTION_LOGS)
#: Models whose ``event_log`` column refers to an event log and becomes NULL when it goes.
_NULLED_ON_DELETE = (IdempotencyRecord, ReceivedMessage, WorkflowRun)
_TRIGGER = "ks_event_log_deleted"
#: Indexes PostgreSQL's logs have beyond the model's. Each costs every ingest
#: insert and, as ``status`` is indexed, every status change of processing (two
#: per event): an entry in each. Without them a filter that matches few rows of
#: a source, or none, reads that source's whole history (at 86 M rows a day,
#: minutes per request) where with them it reads the page it answers.
FILTER_INDEXES = (
    # ``?status=`` of the logs API and the dashboard; a replay's statuses; a test event's rejection.
    EventLog.index(EventLog.source_environment, EventLog.status, EventLog.id, name="ks_event_log_status_filter"),
    # ``?event=`` of the logs API and the dashboard; a replay's event types.
    EventLog.index(EventLog.source_environment, EventLog.event_type, EventLog.id, name="ks_event_log_event_filter"),
)


def is_postgres(database) -> bool:
    """Whether ``database`` (a Peewee database or the ``store.db`` proxy) is PostgreSQL."""
    return isinstance(getattr(database, "obj", database), PostgresqlDatabase)


def _relkind(database, name: str) -> str | None:
    cursor = database.execute_sql(
        "SELECT c.relkind FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = current_schema() AND c.relname = %s",
        (name,),
    )
    row = cursor.fetchone()
    return row[0] if row else None


def partition_logs(migrator, database) -> None:
    """Version 7: partition the event and action logs by day on PostgreSQL, keeping their rows.

    Also what a fresh PostgreSQL schema goes through (``create_tables`` makes
    plain tables); safe to run again. SQLite is left as it is.
    """
    if not is_postgres(database):
        return
    for partitioned in LOGS:
        if _relkind(database, partitioned.table) != "p":
            _convert(database, partitioned)
    _install_trigger(database)


@contextmanager
def unconstrained_references(database):
    """Within it, ``create_tables`` makes no foreign key to a partitioned log (PostgreSQL refuses them).

    For tables that a migration adds to a database already partitioned.
    """
    partitioned = is_postgres(database) and _relkind(database, EVENT_LOGS.table) == "p"
    fields = [field for log in LOGS for field in log.model._meta.backrefs] if partitioned else []
    for field in fields:
        field.deferred = True
    try:
        yield
    finally:
        for field in fields:
            field.deferred = None


def _convert(database, partitioned: PartitionedLog) -> None:
    """Copy a plain log table into a new partitioned one with the same columns, then put it in its place.

    Copying rewrites every row once (minutes for tens of millions), but gives
    old rows their own days, so that retention can drop them at once.
    """
    table, key, model = partitioned.table, partitioned.column, partitioned.model
    old = f"{table}_unpartitioned"
    run = database.execute_sql
    run(f'ALTER TABLE "{table}" RENAME TO "{old}"')
    run(f'CREATE TABLE "{table}" (LIKE "{old}" INCLUDING DEFAULTS INCLUDING CONSTRAINTS) PARTITION BY RANGE ("{key}")')
    # The id sequence moves to the new table, so that ids go on where they were.
    (sequence,) = run("SELECT pg_get_serial_sequence(%s, 'id')", (old,)).fetchone()
    run(f'ALTER SEQUENCE {sequence} OWNED BY "{table}"."id"')
    run(f'CREATE TABLE "{partitioned.default}" PARTITION OF "{table}" DEFAULT')
    days = {day for (day,) in run(f'SELECT DISTINCT CAST("{key}" AS date) FROM "{old}"')}
    for day in sorted(days | set(_days_ahead(utcnow().date()))):
        _create_partition(database, partitioned, day)
    run(f'INSERT INTO "{table}" SELECT * FROM "{old}"')
    # CASCADE: the foreign keys that referred to the old table go with it (see the module's docstring).
    run(f'DROP TABLE "{old}" CASCADE')
    run(f'ALTER TABLE "{table}" ADD PRIMARY KEY ("id", "{key}")')
    for index in (*model._meta.fields_to_index(), *(index for index in FILTER_INDEXES if index._model is model)):
        database.execute(model._schema._create_index(index, safe=True))
    for field in model._meta.refs:
        if field.rel_model not in (log.model for log in LOGS):
            database.execute(model._schema._create_foreign_key(field))


def _install_trigger(database) -> None:
    """Keep the foreign keys' ON DELETE for rows deleted from the event log (not for dropped days)."""
    event_logs, action_logs = EVENT_LOGS.table, ACTION_LOGS.table
    gone = "SELECT id FROM gone"
    statements = [
        f'DELETE FROM "{action_logs}" WHERE "{ActionLog.event_log.column_name}" IN ({gone});',
        f'UPDATE "{event_logs}" SET "{EventLog.replay_of.column_name}" = NULL '
        f'WHERE "{EventLog.replay_of.column_name}" IN ({gone});',
        *(
            f'UPDATE "{model._meta.table_name}" SET "{model.event_log.column_name}" = NULL '
            f'WHERE "{model.event_log.column_name}" IN ({gone});'
            for model in _NULLED_ON_DELETE
        ),
    ]
    body = "\n".join(statements)
    database.execute_sql(
        f"CREATE OR REPLACE FUNCTION {_TRIGGER}() RETURNS trigger LANGUAGE plpgsql AS $$\n"
        f"BEGIN\n{body}\nRETURN NULL;\nEND\n$$"
    )
    database.execute_sql(
        f'CREATE OR REPLACE TRIGGER {_TRIGGER} AFTER DELETE ON "{event_logs}" '
        f"REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION {_TRIGGER}()"
    )


def _days_ahead(today: date) -> list[date]:
    return [today + timedelta(days=offset) for offset in range(DAYS_AHEAD + 1)]


def _partition_days(database, partitioned: PartitionedLog) -> set[date]:
    """The days that have a partition (the names say which: ``_create_partition`` gives them)."""
    prefix = f"{partitioned.table}_p"
    cursor = database.execute_sql(
        "SELECT c.relname FROM pg_catalog.pg_inherits i JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = %s::regclass",
        (f'"{partitioned.table}"',),
    )
    return {
        datetime.strptime(name[len(prefix) :], "%Y%m%d").date()
        for (name,) in cursor.fetchall()
        if name.startswith(prefix)
    }


def _stray_days(database, partitioned: PartitionedLog) -> set[date]:
    """The days of the rows waiting in the DEFAULT partition (almost always none: one probe)."""
    default, key = partitioned.default, partitioned.column
    if database.execute_sql(f'SELECT 1 FROM "{default}" LIMIT 1').fetchone() is None:
        return set()
    return {day for (day,) in database.execute_sql(f'SELECT DISTINCT CAST("{key}" AS date) FROM "{default}"')}


def _missing(database, today: date) -> dict[PartitionedLog, list[date]]:
    wanted = set(_days_ahead(today))
    found = {}
    for partitioned in LOGS:
        days = sorted((wanted | _stray_days(database, partitioned)) - _partition_days(database, partitioned))
        if days:
            found[partitioned] = days
    return found


def _create_partition(database, partitioned: PartitionedLog, day: date) -> int:
    """Create the partition of ``day``, moving its rows out of the DEFAULT partition; return how many moved.

    Built apart and attached, rather than ``CREATE TABLE ... PARTITION OF``,
    so that the parent is locked only in SHARE UPDATE EXCLUSIVE mode, which
    lets inserts and reads go on; the DEFAULT partition is locked first, so
    that no row of that day lands there between the move and the attach.
    """
    table, name, default, key = partitioned.table, partitioned.partition(day), partitioned.default, partitioned.column
    start, end = day.isoformat(), (day + timedelta(days=1)).isoformat()
    run = database.execute_sql
    run(f'LOCK TABLE "{default}" IN ACCESS EXCLUSIVE MODE')
    run(f'CREATE TABLE "{name}" (LIKE "{table}" INCLUDING DEFAULTS INCLUDING CONSTRAINTS)')
    moved = run(
        f'WITH moved AS (DELETE FROM "{default}" WHERE "{key}" >= %s AND "{key}" < %s RETURNING *) '
        f'INSERT INTO "{name}" SELECT * FROM moved',
        (start, end),
    ).rowcount
    run(f"ALTER TABLE \"{table}\" ATTACH PARTITION \"{name}\" FOR VALUES FROM ('{start}') TO ('{end}')")
    return moved


def maintain(database, today: date | None = None) -> list[str]:
    """Create the partitions of the next ``DAYS_AHEAD`` days and of any day waiting in DEFAULT; return their names.

    A no-op on SQLite. When nothing is missing (nearly always) it costs a
    few catalog reads, so every sweep can call it. Raises ``OperationalError``
    when a lock could not be had within ``LOCK_TIMEOUT``.
    """
    if not is_postgres(database):
        return []
    today = today or utcnow().date()
    if not _missing(database, today):
        return []
    created = []
    with database.atomic():
        database.execute_sql(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
        database.execute_sql("SELECT pg_advisory_xact_lock(%s)", (_ADVISORY_LOCK,))
        # Again under the lock: another maintainer may have just created them.
        for partitioned, days in _missing(database, today).items():
            for day in days:
                moved = _create_partition(database, partitioned, day)
                if moved:
                    log.warning("moved %s rows of %s out of %s", moved, day, partitioned.default)
                created.append(partitioned.partition(day))
    if created:
        log.info("created log partitions %s", ", ".join(created))
    return created


def maintain_quietly(database) -> None:
    """``maintain``, logging rather than raising a lock it could not have (the next sweep tries again)."""
    try:
        maintain(database)
    except OperationalError as exc:
        log.warning("log partitions could not be created now: %s", exc)


@dataclass(frozen=True)
class Dropped:
    """What ``drop_days_before`` removed: the days, and the highest event log id among them (0: none)."""

    days: list[date]
    last_id: int


def drop_days_before(database, cutoff: datetime) -> Dropped:
    """Drop the days of both logs that ended at or before ``cutoff``, one transaction per day, oldest first.

    A day's event and action logs go together. Then ``forget_dropped`` deals
    with what referred to them.
    """
    event_days = {day for day in _partition_days(database, EVENT_LOGS) if day < cutoff.date()}
    action_days = {day for day in _partition_days(database, ACTION_LOGS) if day < cutoff.date()}
    last_id = 0
    for day in sorted(event_days | action_days):
        with database.atomic():
            database.execute_sql(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
            if day in event_days:
                name = EVENT_LOGS.partition(day)
                (highest,) = database.execute_sql(f'SELECT MAX("id") FROM "{name}"').fetchone()
                last_id = max(last_id, highest or 0)
                database.execute_sql(f'DROP TABLE "{name}"')
            if day in action_days:
                database.execute_sql(f'DROP TABLE "{ACTION_LOGS.partition(day)}"')
    return Dropped(sorted(event_days | action_days), last_id)


def forget_dropped(database, last_dropped_id: int) -> None:
    """Do for dropped days what the foreign keys did: delete the action logs, null the references.

    Every row referring to an id below ``bound`` whose event log is gone,
    where ``bound`` is past both the highest id just dropped and every id
    before the oldest event log left (which also finishes a purge stopped
    between its drop and this). Each statement walks its column's index from
    the bound down, where only such rows remain, so it costs what it finds.
    """
    (oldest,) = EventLog.select(EventLog.id).order_by(EventLog.id).limit(1).tuples().first() or (None,)
    bound = max(last_dropped_id + 1, oldest if oldest is not None else _next_id(database))
    missing = 'NOT EXISTS (SELECT 1 FROM "{events}" AS e WHERE e."id" = "{table}"."{column}")'
    with database.atomic():
        action_column = ActionLog.event_log.column_name
        database.execute_sql(
            f'DELETE FROM "{ACTION_LOGS.table}" WHERE "{action_column}" < %s AND '
            + missing.format(events=EVENT_LOGS.table, table=ACTION_LOGS.table, column=action_column),
            (bound,),
        )
        for model, column in (
            (EventLog, EventLog.replay_of.column_name),
            (IdempotencyRecord, IdempotencyRecord.event_log.column_name),
            (ReceivedMessage, ReceivedMessage.event_log.column_name),
        ):
            table = model._meta.table_name
            database.execute_sql(
                f'UPDATE "{table}" SET "{column}" = NULL WHERE "{column}" < %s AND '
                + missing.format(events=EVENT_LOGS.table, table=table, column=column),
                (bound,),
            )


def _next_id(database) -> int:
    """One past the highest event log id ever given (the log is empty: every reference is dangling)."""
    (sequence,) = database.execute_sql("SELECT pg_get_serial_sequence(%s, 'id')", (EVENT_LOGS.table,)).fetchone()
    (last,) = database.execute_sql(f"SELECT last_value FROM {sequence}").fetchone()
    return last + 1

"""PostgreSQL's day partitions of the logs: made by ``flask init-db`` (keeping an older store's rows) and kept ahead by
the sweep; an event whose day has no partition is kept all the same and moved into its day once it has one."""

from datetime import timedelta

import pytest

from knock_sources.store import partitions, schema, utcnow
from knock_sources.store.control import ActionLog, Environment, EventLog, SchemaVersion
from tests.support import Api
from tests.support.actions import EventSource, identify_mapping


@pytest.fixture
def database_url(postgres_url):
    """PostgreSQL only: SQLite has no partitions."""
    return postgres_url


@pytest.fixture
def app_config():
    """No sweep from the web process: the tests say when maintenance runs (``flask sweep``)."""
    return {"SWEEP_INTERVAL_SECONDS": 86400}


def relkind(db, table: str) -> str:
    return db.execute_sql("SELECT relkind FROM pg_class WHERE oid = %s::regclass", (table,)).fetchone()[0]


def partition_of(db, model, row_id: int) -> str:
    table = model._meta.table_name
    query = f'SELECT tableoid::regclass::text FROM "{table}" WHERE id = %s'
    return db.execute_sql(query, (row_id,)).fetchone()[0]


def signed_in(app, client) -> Api:
    return Api(client, app.test_cli_runner().invoke(args=["api-key", "create"]).stdout.strip())


def test_init_db_partitions_an_older_store_and_keeps_its_rows(app, client, db):
    # A version-6 store: plain log tables, as every earlier version made them.
    db.drop_tables(schema.MODELS)
    db.create_tables(schema.MODELS)
    SchemaVersion.create(version=6)
    for slug in app.config["ENVIRONMENTS"]:
        Environment.create(slug=slug)
    assert relkind(db, EventLog._meta.table_name) == "r"
    api = signed_in(app, client)
    source = EventSource(client, api).configure(identify_mapping())
    sent = [source.send({"id": f"user-{n}", "name": "N"}, "user.created") for n in range(3)]
    three_days_ago = utcnow() - timedelta(days=3)
    EventLog.update(received_at=three_days_ago).where(EventLog.id == int(sent[0]["id"])).execute()
    ActionLog.update(inserted_at=three_days_ago).where(ActionLog.event_log == int(sent[0]["id"])).execute()
    before = api.logs()

    for _ in range(2):
        result = app.test_cli_runner().invoke(args=["init-db"])
        assert result.exit_code == 0, result.output
        assert f"schema version {schema.CURRENT_VERSION}" in result.stderr

    assert relkind(db, EventLog._meta.table_name) == relkind(db, ActionLog._meta.table_name) == "p"
    assert api.logs() == before
    old_day = partitions.EVENT_LOGS.partition(three_days_ago.date())
    assert partition_of(db, EventLog, int(sent[0]["id"])) == old_day
    assert partition_of(db, ActionLog, int(sent[0]["actions"][0]["id"])) == partitions.ACTION_LOGS.partition(
        three_days_ago.date()
    )
    today = utcnow().date()
    for offset in range(partitions.DAYS_AHEAD + 1):
        assert partitions.EVENT_LOGS.partition(today + timedelta(days=offset)) in partition_names(db)
    # Ids go on where they were, and the store takes new events.
    newer = source.send({"id": "user-new", "name": "N"}, "user.created")
    assert int(newer["id"]) > max(int(entry["id"]) for entry in sent)
    assert newer["status"] == "processed" and newer["actions"][0]["action_status"] == "success"


def test_an_event_whose_day_has_no_partition_is_kept_and_moved_into_its_day_by_the_sweep(app, client, api, db):
    source = EventSource(client, api).configure(identify_mapping())
    today = utcnow().date()
    # As if no maintenance had run for days: today's partitions are missing.
    for partitioned in partitions.LOGS:
        db.execute_sql(f'DROP TABLE "{partitioned.partition(today)}"')

    entry = source.send({"id": "ann", "name": "Ann"}, "user.created")
    assert entry["status"] == "processed" and entry["actions"][0]["action_status"] == "success"
    assert partition_of(db, EventLog, int(entry["id"])) == partitions.EVENT_LOGS.default

    result = app.test_cli_runner().invoke(args=["sweep"])
    assert result.exit_code == 0, result.output

    assert partition_of(db, EventLog, int(entry["id"])) == partitions.EVENT_LOGS.partition(today)
    assert partition_of(db, ActionLog, int(entry["actions"][0]["id"])) == partitions.ACTION_LOGS.partition(today)
    assert api.logs() == [entry]
    assert source.send({"id": "bob", "name": "Bob"}, "user.created")["status"] == "processed"


def test_maintenance_creates_the_days_ahead_once(db):
    later = utcnow().date() + timedelta(days=10)
    created = partitions.maintain(db, today=later)
    assert created == [
        log.partition(later + timedelta(days=offset))
        for log in partitions.LOGS
        for offset in range(partitions.DAYS_AHEAD + 1)
    ]
    assert partitions.maintain(db, today=later) == []


def partition_names(db) -> set[str]:
    cursor = db.execute_sql(
        "SELECT c.relname FROM pg_catalog.pg_inherits i JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = %s::regclass",
        (partitions.EVENT_LOGS.table,),
    )
    return {name for (name,) in cursor.fetchall()}

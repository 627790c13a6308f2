"""``flask init-db`` upgrades a database made by an older version and keeps its data."""

from playhouse.migrate import SchemaMigrator, migrate

from knock_sources.store import schema
from knock_sources.store.control import (
    REPLAY_OF_INDEX,
    Environment,
    EventHourCount,
    EventLog,
    ReceivedMessage,
    Replay,
    SchemaVersion,
)
from tests.support import Api
from tests.support.replays import replayed


def test_version_1_gains_normalized_events_and_received_messages(app, api, client, db):
    api.create_source("http", provider="legacy_http")
    assert client.post(api.endpoint("http"), json={"type": "track", "event": "kept"}).status_code == 204
    # Make this a version-1 database again.
    migrate(SchemaMigrator.from_database(db.obj).drop_column(EventLog._meta.table_name, "normalized"))
    db.drop_tables([ReceivedMessage])
    SchemaVersion.update(version=1).execute()

    result = app.test_cli_runner().invoke(args=["init-db"])
    assert result.exit_code == 0, result.output
    assert f"schema version {schema.CURRENT_VERSION}" in result.output
    assert "normalized" in {column.name for column in db.get_columns(EventLog._meta.table_name)}
    assert ReceivedMessage.table_exists()
    [entry] = api.logs("http")
    assert (entry["event"], entry["normalized"]) == ("kept", None)
    # And the upgraded database works.
    assert client.post(api.endpoint("http"), json={"type": "track", "event": "new"}).status_code == 204
    assert api.logs("http")[0]["normalized"]["event"] == "new"
    assert app.test_cli_runner().invoke(args=["init-db"]).exit_code == 0


def version_2_database(db, environments):
    """Rebuild the tables as version 2 made them: no ``replay_of``, ``raw_complete`` or ``ks_replay``."""
    db.drop_tables(schema.MODELS)
    fields = {name: EventLog._meta.fields[name] for name in ("replay_of", "raw_complete")}
    for name in fields:
        EventLog._meta.remove_field(name)
    try:
        db.create_tables([model for model in schema.MODELS if model is not Replay])
    finally:
        for name, field in fields.items():
            EventLog._meta.add_field(name, field)
    SchemaVersion.create(version=2)
    for slug in environments:
        Environment.create(slug=slug)


def test_version_2_gains_replays(app, client, db):
    version_2_database(db, app.config["ENVIRONMENTS"])
    assert "replay_of_id" not in {column.name for column in db.get_columns(EventLog._meta.table_name)}

    result = app.test_cli_runner().invoke(args=["init-db"])
    assert result.exit_code == 0, result.output
    columns = {column.name for column in db.get_columns(EventLog._meta.table_name)}
    assert {"replay_of_id", "raw_complete"} <= columns
    assert REPLAY_OF_INDEX._name in {index.name for index in db.get_indexes(EventLog._meta.table_name)}
    assert Replay.table_exists()
    # And replays work on the upgraded database.
    key = app.test_cli_runner().invoke(args=["api-key", "create"]).stdout.strip()
    api = Api(client, key)
    api.create_source("http")
    assert client.post(api.endpoint("http"), json={"type": "kept"}).status_code == 204
    [entry] = api.logs("http")
    assert replayed(api, "http", filter={"statuses": ["processed"]})["done"] == 1
    assert api.logs("http")[0]["replay_of"] == entry["id"]


def test_version_7_gains_the_hourly_rollup(app, api, client, db):
    api.create_source("http")
    assert client.post(api.endpoint("http"), json={"type": "kept"}).status_code == 204
    db.drop_tables([EventHourCount])
    SchemaVersion.update(version=7).execute()

    result = app.test_cli_runner().invoke(args=["init-db"])
    assert result.exit_code == 0, result.output
    assert f"schema version {schema.CURRENT_VERSION}" in result.output
    table = EventHourCount._meta.table_name
    assert {"source_environment_id", "hour", "accepted", "rejected", "failed"} <= {
        column.name for column in db.get_columns(table)
    }
    assert ["source_environment_id", "hour"] in [index.columns for index in db.get_indexes(table) if index.unique]
    # The rollup starts empty and fills as the status is read.
    assert api.get("/v1/sources/http/status").get_json()["events_count"] == 1
    assert EventHourCount.select().count() > 0

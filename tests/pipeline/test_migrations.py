"""``flask init-db`` upgrades a database made by an older version and keeps its data."""

from playhouse.migrate import SchemaMigrator, migrate

from knock_sources.store import schema
from knock_sources.store.control import EventLog, ReceivedMessage, SchemaVersion


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

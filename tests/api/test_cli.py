"""The CLI: init-db, api-key create, sweep, purge."""

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from playhouse.migrate import SchemaMigrator
from playhouse.migrate import migrate as run_migrations

from knock_sources.store import schema, utcnow
from knock_sources.store.control import ApiKey, EventLog, IdempotencyRecord, SchemaVersion, Source, SourceEnvironment
from tests.support import ROOT


def test_init_db_is_safe_to_run_twice_and_keeps_data(app, api, db):
    api.create_source()
    runner = app.test_cli_runner()
    for _ in range(2):
        result = runner.invoke(args=["init-db"])
        assert result.exit_code == 0, result.output
        assert f"schema version {schema.CURRENT_VERSION}" in result.stderr
    assert Source.select().count() == 1
    assert SchemaVersion.select().count() == 1


def test_api_key_create_prints_only_the_key(app, db):
    result = app.test_cli_runner().invoke(args=["api-key", "create", "--name", "ci"])
    assert result.exit_code == 0
    key = result.stdout.strip()
    assert result.stdout == key + "\n"
    assert key.startswith("ks_") and len(key) > 40
    stored = ApiKey.get()
    assert stored.name == "ci"
    assert key not in (stored.digest, stored.prefix)


def test_sweep_completes_events_left_pending(app, client, api, db):
    api.create_source()
    client.post(api.endpoint(), json={"type": "late"})
    EventLog.update(status="pending", received_at=utcnow() - timedelta(minutes=5), event_type=None).execute()
    result = app.test_cli_runner().invoke(args=["sweep"])
    assert result.exit_code == 0, result.output
    assert "Re-enqueued 1 pending events" in result.stderr
    assert EventLog.get().status == "processed"


def test_sweep_leaves_events_inside_the_grace_period(app, client, api, db):
    api.create_source()
    client.post(api.endpoint(), json={"type": "fresh"})
    EventLog.update(status="pending").execute()
    assert "Re-enqueued 0" in app.test_cli_runner().invoke(args=["sweep"]).stderr
    assert EventLog.get().status == "pending"


def test_purge_deletes_old_logs_and_expired_keys(app, client, api, db):
    api.create_source(settings={"enforce_idempotency": True, "idempotency_key_path": "body.id"})
    client.post(api.endpoint(), json={"type": "old", "id": "k1"})
    client.post(api.endpoint(), json={"type": "new", "id": "k2"})
    old = EventLog.get(EventLog.event_type == "old")
    EventLog.update(received_at=utcnow() - timedelta(days=31)).where(EventLog.id == old.id).execute()
    IdempotencyRecord.update(expires_at=utcnow() - timedelta(seconds=1)).where(IdempotencyRecord.key == "k1").execute()
    result = app.test_cli_runner().invoke(args=["purge"])
    assert "Deleted 1 event logs, 1 idempotency records and 0 workflow runs." in result.stderr
    assert [e.event_type for e in EventLog.select()] == ["new"]


def test_worker_refuses_to_start_without_redis(app):
    result = app.test_cli_runner().invoke(args=["worker", "--burst"])
    assert result.exit_code != 0
    assert "KNOCK_SOURCES_REDIS_URL" in result.output


def test_flask_finds_the_app_without_arguments(tmp_path):

    env = {
        "KNOCK_SOURCES_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
    }
    flask = Path(sys.executable).with_name("flask")
    init = subprocess.run([str(flask), "init-db"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert init.returncode == 0, init.stderr
    key = subprocess.run(
        [str(flask), "api-key", "create"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert key.returncode == 0 and key.stdout.startswith("ks_")


def test_api_keys_are_listed_without_the_key_and_revoked_by_name(app, client):
    runner = app.test_cli_runner()
    ci = runner.invoke(args=["api-key", "create", "--name", "ci"]).stdout.strip()
    unnamed = runner.invoke(args=["api-key", "create"]).stdout.strip()
    assert client.get("/v1/sources", headers={"Authorization": f"Bearer {ci}"}).status_code == 200
    listed = runner.invoke(args=["api-key", "list"])
    assert listed.exit_code == 0, listed.output
    header, *rows = listed.stdout.strip().split("\n")
    assert header.split("\t") == ["NAME", "PREFIX", "CREATED", "LAST USED"]
    by_name = {row.split("\t")[0]: row.split("\t") for row in rows}
    assert set(by_name) == {"ci", "(unnamed)"}
    assert by_name["ci"][3] != "never" and by_name["(unnamed)"][3] == "never"
    assert ci not in listed.output and unnamed not in listed.output
    revoked = runner.invoke(args=["api-key", "revoke", "ci"])
    assert revoked.exit_code == 0, revoked.output
    assert client.get("/v1/sources", headers={"Authorization": f"Bearer {ci}"}).status_code == 401
    assert client.get("/v1/sources", headers={"Authorization": f"Bearer {unnamed}"}).status_code == 200
    # An unnamed key is revoked by the prefix the list shows.
    assert runner.invoke(args=["api-key", "revoke", by_name["(unnamed)"][1]]).exit_code == 0
    assert client.get("/v1/sources", headers={"Authorization": f"Bearer {unnamed}"}).status_code == 401


def test_api_key_errors_are_one_line(app):
    runner = app.test_cli_runner()
    assert runner.invoke(args=["api-key", "create", "--name", "ci"]).exit_code == 0
    duplicate = runner.invoke(args=["api-key", "create", "--name", "ci"])
    assert duplicate.exit_code == 1 and "exists already" in duplicate.output and "Traceback" not in duplicate.output
    missing = runner.invoke(args=["api-key", "revoke", "nobody"])
    assert missing.exit_code == 1 and "No API key is named 'nobody'" in missing.output
    assert len(missing.output.strip().splitlines()) == 1


def test_init_db_upgrades_a_database_of_the_first_schema(app, db):
    # Rewind the database to schema version 1: without the columns later migrations add.
    migrator = SchemaMigrator.from_database(db.obj)
    source_env, api_key = SourceEnvironment._meta.table_name, ApiKey._meta.table_name
    source = Source.create(key="kept", name="Kept")
    SourceEnvironment.create(source=source, environment=1, token="tok-kept")
    run_migrations(
        migrator.drop_index(source_env, "sourceenvironment_previous_token"),
        migrator.drop_column(source_env, "previous_token"),
        migrator.drop_column(source_env, "previous_token_expires_at"),
        migrator.drop_column(api_key, "last_used_at"),
    )
    SchemaVersion.update(version=1).execute()
    result = app.test_cli_runner().invoke(args=["init-db"])
    assert result.exit_code == 0, result.output
    assert f"schema version {schema.CURRENT_VERSION}" in result.stderr
    columns = {column.name for column in db.get_columns(source_env)}
    assert {"previous_token", "previous_token_expires_at"} <= columns
    assert "sourceenvironment_previous_token" in {index.name for index in db.get_indexes(source_env)}
    assert "last_used_at" in {column.name for column in db.get_columns(api_key)}
    assert SourceEnvironment.get(SourceEnvironment.token == "tok-kept").source.key == "kept"

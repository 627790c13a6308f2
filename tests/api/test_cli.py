"""The CLI: init-db, api-key create, sweep, purge."""

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from knock_sources.store import schema, utcnow
from knock_sources.store.control import ApiKey, EventLog, IdempotencyRecord, SchemaVersion, Source
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
    assert "Deleted 1 event logs and 1 idempotency records" in result.stderr
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

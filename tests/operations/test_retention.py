"""``flask purge``: old logs go with their action logs, new ones stay, and what referred to the old ones still reads.

On PostgreSQL the old logs live in day partitions that the purge drops
whole; on SQLite it deletes rows. Both are driven through the CLI and
checked through the API.
"""

from datetime import timedelta

import pytest

from knock_sources.store import partitions, utcnow
from knock_sources.store.control import ActionLog, EventLog, IdempotencyRecord
from tests.support.actions import EventSource, identify_mapping, mapping
from tests.support.replays import replayed

RETENTION_DAYS = 30


@pytest.fixture
def app_config():
    return {"LOG_RETENTION_DAYS": RETENTION_DAYS}


@pytest.fixture
def source(client, api):
    """A source that identifies users and triggers ``wf`` for ``body.to``, idempotent on ``body.id``."""
    api.create_workflow("wf")
    source = EventSource(client, api).configure(
        identify_mapping(),
        mapping("workflows_trigger", key="wf", recipients="body.to"),
        enforce_idempotency=True,
        idempotency_key_path="body.id",
    )
    source.identify("ann")
    return source


def age(db, event_log_id: int, days: int, *, actions_too: bool, own_day: bool = True) -> None:
    """Make an event log (and, with ``actions_too``, its action logs) ``days`` old.

    On PostgreSQL the rows move into their day's partition, created for them
    as an older store would have it, or without ``own_day`` into DEFAULT.
    """
    then = utcnow() - timedelta(days=days)
    if own_day and partitions.is_postgres(db):
        partitions.maintain(db, today=then.date())
    EventLog.update(received_at=then).where(EventLog.id == event_log_id).execute()
    if actions_too:
        ActionLog.update(inserted_at=then).where(ActionLog.event_log == event_log_id).execute()


def test_purge_removes_old_logs_with_their_actions_and_keeps_the_rest_readable(app, api, source, db):
    old = source.send({"id": "k-old", "to": "ann"})
    old_actions = [action["id"] for action in old["actions"]]
    assert old["status"] == "processed" and old_actions
    [run] = source.get("/v1/workflows/wf/runs")["entries"]
    replay = replayed(api, filter={"ids": [old["id"]]})
    assert replay["done"] == 1
    copy = api.logs(limit=1)[0]
    assert copy["replay_of"] == old["id"]
    new = source.send({"id": "k-new", "to": "ann"})
    # The old event's actions ran after midnight: they are in a newer day than the event.
    age(db, int(old["id"]), RETENTION_DAYS + 2, actions_too=False)

    result = app.test_cli_runner().invoke(args=["purge"])
    assert result.exit_code == 0, result.output
    assert "Deleted" in result.stderr

    listed = api.logs(limit=100)
    assert old["id"] not in [entry["id"] for entry in listed]
    assert api.get(f"/v1/sources/my-source/logs/{old['id']}").status_code == 404
    kept = api.get(f"/v1/sources/my-source/logs/{new['id']}").get_json()
    assert [action["id"] for action in kept["actions"]] == [action["id"] for action in new["actions"]]
    assert not ActionLog.select().where(ActionLog.id.in_([int(action_id) for action_id in old_actions])).exists()
    # What referred to the old log reads as before, without it.
    assert api.get(f"/v1/sources/my-source/logs/{copy['id']}").get_json()["replay_of"] is None
    assert api.get(f"/v1/replays/{replay['id']}").get_json()["done"] == 1
    runs = source.get("/v1/workflows/wf/runs")["entries"]
    assert run["id"] in [listed_run["id"] for listed_run in runs]
    # PostgreSQL keeps the id of a purged log on a run (store.partitions); SQLite's foreign key clears it.
    [purged_run] = [listed_run for listed_run in runs if listed_run["id"] == run["id"]]
    assert purged_run["source_log_id"] == (old["id"] if partitions.is_postgres(db) else None)
    # The idempotency key outlives its log: the same key is still recognised.
    assert IdempotencyRecord.get(IdempotencyRecord.key == "k-old").event_log_id is None
    assert source.send({"id": "k-old", "to": "ann"})["status"] == "idempotent"


def test_purge_keeps_logs_within_retention(app, api, source, db):
    recent = source.send({"id": "k-recent", "to": "ann"})
    age(db, int(recent["id"]), RETENTION_DAYS - 2, actions_too=True)

    result = app.test_cli_runner().invoke(args=["purge"])
    assert result.exit_code == 0, result.output

    kept = api.get(f"/v1/sources/my-source/logs/{recent['id']}").get_json()
    assert [action["id"] for action in kept["actions"]] == [action["id"] for action in recent["actions"]]


def test_purge_deletes_old_rows_that_no_day_partition_holds_with_their_actions(app, api, source, db):
    old = source.send({"id": "k-old", "to": "ann"})
    age(db, int(old["id"]), RETENTION_DAYS + 2, actions_too=True, own_day=False)

    result = app.test_cli_runner().invoke(args=["purge"])
    assert result.exit_code == 0, result.output
    assert "Deleted 1 event logs" in result.stderr

    assert api.get(f"/v1/sources/my-source/logs/{old['id']}").status_code == 404
    assert not ActionLog.select().where(ActionLog.event_log == int(old["id"])).exists()
    assert [run["source_log_id"] for run in source.get("/v1/workflows/wf/runs")["entries"]] == [None]


# SQLite has no partitions: it deletes rows, as the tests above show.
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_purge_drops_whole_days_on_postgresql(app, api, source, db):
    old = source.send({"id": "k-old", "to": "ann"})
    age(db, int(old["id"]), RETENTION_DAYS + 2, actions_too=True)
    old_day = (utcnow() - timedelta(days=RETENTION_DAYS + 2)).date()
    assert partitions.EVENT_LOGS.partition(old_day) in partition_names(db)

    result = app.test_cli_runner().invoke(args=["purge"])
    assert result.exit_code == 0, result.output
    assert "Dropped" in result.stderr and old_day.isoformat() in result.stderr

    names = partition_names(db)
    assert partitions.EVENT_LOGS.partition(old_day) not in names
    assert partitions.ACTION_LOGS.partition(old_day) not in names
    assert partitions.EVENT_LOGS.partition(utcnow().date()) in names
    assert old["id"] not in [entry["id"] for entry in api.logs(limit=100)]
    assert len(api.logs(limit=100)) == 1  # the user.created event of ``ann``


def test_deleting_a_source_deletes_its_action_logs(app, api, source, db):
    sent = source.send({"id": "k1", "to": "ann"})
    assert sent["actions"]
    assert api.delete("/v1/sources/my-source").status_code == 204
    assert ActionLog.select().count() == 0
    assert [run["source_log_id"] for run in source.get("/v1/workflows/wf/runs")["entries"]] == [None]


def partition_names(db) -> set[str]:
    cursor = db.execute_sql(
        "SELECT c.relname FROM pg_catalog.pg_inherits i JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent IN (%s::regclass, %s::regclass)",
        (partitions.EVENT_LOGS.table, partitions.ACTION_LOGS.table),
    )
    return {name for (name,) in cursor.fetchall()}

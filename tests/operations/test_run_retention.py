"""``flask purge`` and workflow runs: runs created before ``WORKFLOW_RUN_RETENTION_DAYS`` go, in batches.

Driven through the CLI and checked through the API, on SQLite and PostgreSQL.
"""

from datetime import timedelta

import pytest

from knock_sources.control import activity, workflows
from knock_sources.store import partitions, utcnow
from knock_sources.store.control import ActionLog, EventLog
from knock_sources.store.dataplane import Workflow, WorkflowRun
from tests.support.actions import EventSource, by_type, identify_mapping, mapping

LOG_DAYS = 30
RUN_DAYS = 7


@pytest.fixture
def app_config():
    return {"LOG_RETENTION_DAYS": LOG_DAYS, "WORKFLOW_RUN_RETENTION_DAYS": RUN_DAYS}


@pytest.fixture
def source(client, api):
    """A source that triggers ``wf`` for ``body.to`` on ``start`` and cancels by ``body.key`` on ``stop``."""
    api.create_workflow("wf")
    source = EventSource(client, api).configure(
        identify_mapping(),
        mapping("workflows_trigger", "start", key="wf", recipients="body.to", cancellation_key="body.key"),
        mapping("workflows_cancel", "stop", key="wf", cancellation_key="body.key"),
    )
    source.identify("ann")
    return source


def start(source, key: str) -> tuple[dict, dict]:
    """Trigger ``wf`` for ann with cancellation key ``key``; return the event's log and its run."""
    entry = source.send({"to": "ann", "key": key}, "start")
    [run_id] = by_type(entry)["workflows_trigger"]["action_result"]["workflow_run_ids"]
    [run] = source.get("/v1/workflows/wf/runs", cancellation_key=key)["entries"]
    assert run["id"] == run_id
    return entry, run


def age_run(run_id: str, days: float) -> None:
    WorkflowRun.update(created_at=utcnow() - timedelta(days=days)).where(WorkflowRun.run_id == run_id).execute()


def purge(app) -> str:
    result = app.test_cli_runner().invoke(args=["purge"])
    assert result.exit_code == 0, result.output
    return result.stderr


def run_ids(source) -> set[str]:
    return {run["id"] for run in source.get("/v1/workflows/wf/runs", limit=100)["entries"]}


def test_purge_deletes_runs_older_than_their_retention_and_keeps_the_rest(app, source, db):
    old_entry, old = start(source, "k-old")
    _, recent = start(source, "k-recent")
    age_run(old["id"], RUN_DAYS + 1)
    age_run(recent["id"], RUN_DAYS - 1)

    assert "Deleted 0 event logs, 0 idempotency records and 1 workflow runs." in purge(app)

    assert run_ids(source) == {recent["id"]}
    # The event log that started the run is within its own retention: it stays, and still reads,
    # its action log naming the run that is gone.
    kept = source.api.get(f"/v1/sources/my-source/logs/{old_entry['id']}").get_json()
    assert by_type(kept)["workflows_trigger"]["action_result"]["workflow_run_ids"] == [old["id"]]
    # A cancel of a run older than the retention finds nothing; a recent one is still cancelled.
    stale = source.run({"key": "k-old"}, "stop")
    assert stale["action_result"]["cancelled_runs"] == 0
    assert stale["action_result"]["note"] == "no unfinished runs matched"
    assert source.run({"key": "k-recent"}, "stop")["action_result"]["cancelled_runs"] == 1
    assert "and 0 workflow runs." in purge(app)


def test_runs_and_the_logs_that_started_them_go_in_one_purge(app, source, db):
    entry, run = start(source, "k-old")
    age_run(run["id"], LOG_DAYS + 2)
    then = utcnow() - timedelta(days=LOG_DAYS + 2)
    if partitions.is_postgres(db):
        partitions.maintain(db, today=then.date())
    EventLog.update(received_at=then).where(EventLog.id == int(entry["id"])).execute()
    ActionLog.update(inserted_at=then).where(ActionLog.event_log == int(entry["id"])).execute()
    _, recent = start(source, "k-recent")

    output = purge(app)

    assert "1 workflow runs." in output
    assert run_ids(source) == {recent["id"]}
    assert source.api.get(f"/v1/sources/my-source/logs/{entry['id']}").status_code == 404
    assert not ActionLog.select().where(ActionLog.event_log == int(entry["id"])).exists()
    assert_references_hold(db)


def test_a_run_stamped_after_the_cutoff_stays_though_older_runs_have_larger_ids(app, source, db, monkeypatch):
    # Two workers' batches: the one stamped later may be inserted first. The search for the
    # id bound takes ids to follow time, so it may land past such a run: say it does.
    monkeypatch.setattr(activity, "first_id_since", lambda when, column: None)
    workflow = Workflow.get(Workflow.key == "wf")
    rows = [("old-1", RUN_DAYS + 3), ("late", RUN_DAYS - 1), ("old-2", RUN_DAYS + 2), ("new", 0)]
    insert_runs(workflow, [(name, utcnow() - timedelta(days=days)) for name, days in rows])

    assert "and 2 workflow runs." in purge(app)

    assert sorted(run.recipient_id for run in WorkflowRun.select()) == ["late", "new"]


def test_purge_deletes_more_runs_than_one_batch_a_batch_at_a_time(app, source, db, monkeypatch):
    monkeypatch.setattr(workflows, "RUN_PURGE_BATCH", 3)
    ranges = id_ranges_deleted(db, monkeypatch)
    workflow = Workflow.get(Workflow.key == "wf")
    old_at, recent_at = utcnow() - timedelta(days=RUN_DAYS + 1), utcnow() - timedelta(days=RUN_DAYS - 1)
    insert_runs(workflow, [(f"old-{index}", old_at) for index in range(11)])
    # A gap in the ids (runs of a rolled-back batch) makes a batch smaller, never larger.
    WorkflowRun.delete().where(WorkflowRun.recipient_id.in_(["old-4", "old-5"])).execute()
    insert_runs(workflow, [(f"recent-{index}", recent_at) for index in range(4)])
    ranges.clear()

    assert "and 9 workflow runs." in purge(app)

    assert sorted(run.recipient_id for run in WorkflowRun.select()) == [f"recent-{index}" for index in range(4)]
    # Eleven ids below the first recent run's, three at a time, each range after the one before.
    assert len(ranges) == 4 and all(stop - start <= 3 for start, stop in ranges)
    assert all(ranges[index][1] == ranges[index + 1][0] for index in range(len(ranges) - 1))


def test_an_empty_store_purges_no_runs(app, db):
    assert "and 0 workflow runs." in purge(app)


@pytest.mark.parametrize("app_config", [{"LOG_RETENTION_DAYS": 10}])
def test_run_retention_follows_log_retention_by_default(app, source, db):
    assert app.config["WORKFLOW_RUN_RETENTION_DAYS"] == 10
    _, old = start(source, "k-old")
    _, recent = start(source, "k-recent")
    age_run(old["id"], 11)
    age_run(recent["id"], 9)

    assert "and 1 workflow runs." in purge(app)

    assert run_ids(source) == {recent["id"]}


def insert_runs(workflow, stamped: list[tuple[str, object]]) -> None:
    """Insert one run per ``(recipient, created_at)``, in that order (so ids follow it)."""
    for recipient, created_at in stamped:
        WorkflowRun.insert(
            run_id=f"run-{recipient}",
            environment=workflow.environment_id,
            workflow=workflow,
            recipient_id=recipient,
            created_at=created_at,
        ).execute()


def id_ranges_deleted(db, monkeypatch) -> list[tuple[int, int]]:
    """Record the ``[start, stop)`` id range of each ``DELETE`` of runs (a Peewee query hook)."""
    ranges: list[tuple[int, int]] = []
    table = WorkflowRun._meta.table_name

    def hook(event):
        if event.sql.startswith(f'DELETE FROM "{table}"'):
            start, stop = event.params[:2]
            ranges.append((start, stop))

    monkeypatch.setattr(db.obj, "query_hooks", [*db.obj.query_hooks, hook])
    return ranges


def assert_references_hold(db) -> None:
    """No run names a workflow or environment that is gone (SQLite: no foreign key is broken)."""
    if partitions.is_postgres(db):
        orphans = WorkflowRun.select().join(Workflow).switch(WorkflowRun).where(Workflow.id.is_null())
        assert not orphans.exists()
    else:
        assert db.execute_sql("PRAGMA foreign_key_check").fetchall() == []

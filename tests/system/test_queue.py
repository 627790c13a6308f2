"""The production shape: PostgreSQL, a real Redis, and real ``flask worker`` processes."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from knock_sources import state
from knock_sources.store import db as database
from knock_sources.store.control import EventLog
from knock_sources.store.dataplane import WorkflowRun
from knock_sources.worker import jobs
from tests.support import Api, make_app, reset_database, stop_dispatcher
from tests.support.processes import RedisServer, wait_for
from tests.support.workers import start_workers, stop, wait

TRIGGER = {
    "event_type": "order.paid",
    "action_type": "workflows_trigger",
    "action_parameters": {"key": "receipt", "recipients": {"value": [{"id": "u1", "name": "Ada"}]}},
}
IDEMPOTENT = {"idempotency_key_path": "body.id", "enforce_idempotency": True}


def test_event_waits_in_the_queue_until_a_worker_runs_it(queue_app, queue_api):
    queue_api.create_source(mappings=[TRIGGER])
    assert queue_api.client.post(queue_api.endpoint(), json={"type": "order.paid"}).status_code == 204
    assert queue_api.logs()[0]["status"] == "pending"
    wait(start_workers(queue_app))
    [entry] = queue_api.logs()
    assert entry["status"] == "processed"
    assert entry["actions"][0]["action_status"] == "success"


def test_concurrent_duplicates_execute_exactly_once(queue_app, queue_api):
    queue_api.create_source(settings=IDEMPOTENT, mappings=[TRIGGER])
    endpoint = queue_api.endpoint()

    def deliver(_):
        return queue_app.test_client().post(endpoint, json={"type": "order.paid", "id": "evt_dup"}).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(deliver, range(24))) == [204] * 24
    wait(start_workers(queue_app, count=4))
    entries = queue_api.logs(limit=100)
    statuses = sorted(entry["status"] for entry in entries)
    assert statuses == ["idempotent"] * 23 + ["processed"]
    assert sum(len(entry["actions"]) for entry in entries) == 1
    with database.connection_context():
        assert WorkflowRun.select().count() == 1


def test_failed_execution_releases_the_key_for_a_redelivery(queue_app, queue_api):
    queue_api.create_source(settings=IDEMPOTENT, mappings=[TRIGGER])
    queue_api.create_workflow("receipt", active=False)
    endpoint = queue_api.endpoint()
    queue_api.client.post(endpoint, json={"type": "order.paid", "id": "evt_1"})
    wait(start_workers(queue_app))
    assert queue_api.logs()[0]["status"] == "failed"
    queue_api.create_workflow("receipt", active=True)
    queue_api.client.post(endpoint, json={"type": "order.paid", "id": "evt_1"})
    wait(start_workers(queue_app))
    assert [entry["status"] for entry in queue_api.logs()] == ["processed", "failed"]


@pytest.fixture
def redis_down(postgres_url):
    """An app whose Redis is down; ``start_redis()`` brings a Redis up on the same port."""
    server = RedisServer()
    app = make_app(postgres_url, REDIS_URL=server.url, QUEUE_NAME="ks-test-down")
    app.start_redis = server.start
    yield app
    server.kill()
    stop_dispatcher(app)
    reset_database()


def test_event_accepted_while_redis_is_down_is_completed_by_sweep(redis_down):
    app = redis_down
    key = app.test_cli_runner().invoke(args=["api-key", "create"]).stdout.strip()
    api = Api(app.test_client(), key)
    api.create_workflow("receipt")
    api.create_source(mappings=[TRIGGER])
    assert api.client.post(api.endpoint(), json={"type": "order.paid"}).status_code == 204
    # The dispatcher's push fails while Redis is down (it does not retry): only the sweep hands the event over.
    assert app.extensions[state.EXTENSION].dispatcher.flush()
    assert api.logs()[0]["status"] == "pending"
    assert api.client.get("/healthz").status_code == 503

    app.start_redis()
    app.config["SWEEP_GRACE_SECONDS"] = 0
    result = app.test_cli_runner().invoke(args=["sweep"])
    assert "Re-enqueued 1 pending events" in result.stderr
    wait(start_workers(app))
    assert api.logs()[0]["status"] == "processed"


def test_running_worker_sweeps_pending_events_by_itself(redis_down):
    app = redis_down
    key = app.test_cli_runner().invoke(args=["api-key", "create"]).stdout.strip()
    api = Api(app.test_client(), key)
    api.create_source()
    api.client.post(api.endpoint(), json={"type": "lost.in.transit"})
    assert app.extensions[state.EXTENSION].dispatcher.flush()
    app.start_redis()
    workers = start_workers(app, burst=False, SWEEP_INTERVAL_SECONDS=1, SWEEP_GRACE_SECONDS=0)
    try:
        wait_for(lambda: api.logs()[0]["status"] == "processed", "the worker to sweep the pending event")
    finally:
        stop(workers)
    with database.connection_context():
        assert EventLog.get().status == "processed"


def test_sweep_enqueues_only_what_is_not_already_waiting(queue_app, queue_api):
    queue_api.create_source(mappings=[TRIGGER])
    for number in range(30):
        queue_api.client.post(queue_api.endpoint(), json={"type": "order.paid", "n": number})
    assert queue_app.extensions[state.EXTENSION].dispatcher.flush()
    queue_app.config["SWEEP_GRACE_SECONDS"] = 0
    runner = queue_app.test_cli_runner()
    # All 30 are already waiting for a worker: sweeping again and again adds nothing.
    for _ in range(3):
        assert "Re-enqueued 0 pending events" in runner.invoke(args=["sweep"]).stderr
    queue = queue_app.extensions[state.EXTENSION].queue
    assert queue.connection.zcard(jobs.pending_key(queue)) == 30
    # Redis lost them: the sweep puts each back once.
    queue.connection.delete(jobs.pending_key(queue))
    assert "Re-enqueued 30 pending events" in runner.invoke(args=["sweep"]).stderr
    assert "Re-enqueued 0 pending events" in runner.invoke(args=["sweep"]).stderr
    wait(start_workers(queue_app))
    assert [entry["status"] for entry in queue_api.logs(limit=100)] == ["processed"] * 30
    with database.connection_context():
        assert WorkflowRun.select().count() == 30


def test_a_worker_sweep_pass_is_bounded(queue_app, queue_api):
    queue_api.create_source(mappings=[TRIGGER])
    for number in range(12):
        queue_api.client.post(queue_api.endpoint(), json={"type": "order.paid", "n": number})
    app_state = queue_app.extensions[state.EXTENSION]
    assert app_state.dispatcher.flush()
    queue = app_state.queue
    queue.connection.delete(jobs.pending_key(queue))
    queue_app.config["SWEEP_GRACE_SECONDS"] = 0
    with database.connection_context():
        # Each pass looks at five, starting where the last one stopped...
        assert [jobs.sweep(app_state, queue, 5) for _ in range(3)] == [5, 5, 2]
        # ...and wraps around: all twelve are waiting now, so nothing is added twice.
        assert [jobs.sweep(app_state, queue, 5) for _ in range(3)] == [0, 0, 0]
    ids = sorted(int(entry["id"]) for entry in queue_api.logs(limit=100))
    assert [int(member) for member in queue.connection.zrange(jobs.pending_key(queue), 0, -1)] == ids

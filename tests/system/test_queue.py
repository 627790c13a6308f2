"""The production shape: PostgreSQL, a real Redis, and real ``flask worker`` processes."""

from __future__ import annotations

import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from knock_sources.store import db as database
from knock_sources.store.control import EventLog
from knock_sources.store.dataplane import WorkflowRun
from tests.support import Api, free_port, make_app, port_is_open, reset_database, stop_dispatcher
from tests.support.workers import start_workers, wait

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


def test_healthz_checks_redis(queue_app):
    response = queue_app.test_client().get("/healthz")
    assert response.status_code == 200
    assert response.get_json()["checks"] == {"database": "ok", "queue": "ok"}


@pytest.fixture
def redis_down(postgres_url):
    """An app whose Redis is down; ``start()`` brings a Redis up on the same port."""
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is required for this test")
    port = free_port()
    app = make_app(postgres_url, REDIS_URL=f"redis://127.0.0.1:{port}/0", QUEUE_NAME="ks-test-down")
    servers = []

    def start():
        server = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )
        servers.append(server)
        deadline = time.monotonic() + 10
        while not port_is_open("127.0.0.1", port):
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)

    app.start_redis = start
    yield app
    for server in servers:
        server.terminate()
        server.wait(timeout=10)
    stop_dispatcher(app)
    reset_database()


def test_event_accepted_while_redis_is_down_is_completed_by_sweep(redis_down):
    app = redis_down
    key = app.test_cli_runner().invoke(args=["api-key", "create"]).stdout.strip()
    api = Api(app.test_client(), key)
    api.create_workflow("receipt")
    api.create_source(mappings=[TRIGGER])
    assert api.client.post(api.endpoint(), json={"type": "order.paid"}).status_code == 204
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
    app.start_redis()
    [worker] = start_workers(app, burst=False, SWEEP_INTERVAL_SECONDS=1, SWEEP_GRACE_SECONDS=0)
    try:
        deadline = time.monotonic() + 30
        while api.logs()[0]["status"] != "processed":
            assert time.monotonic() < deadline, "the worker never swept the pending event"
            time.sleep(0.2)
    finally:
        worker.terminate()
        worker.communicate(timeout=10)
    with database.connection_context():
        assert EventLog.get().status == "processed"

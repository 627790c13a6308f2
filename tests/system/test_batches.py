"""A real ``flask worker`` killed in the middle of a batch: every event of the batch is left pending, none half-done."""

from __future__ import annotations

import signal
import uuid

import pytest

from tests.support.blocking import BlockingPlugin
from tests.support.processes import api_for, queued_app, wait_for
from tests.support.workers import start_workers, stop

IDENTIFY = {
    "event_type": "signed_up",
    "action_type": "users_identify",
    "action_parameters": {"id": "body.user", "name": "body.name"},
}
BLOCK = {"event_type": "blocked", "action_type": "block", "action_parameters": {}}
QUICK_SWEEPS = {"SWEEP_INTERVAL_SECONDS": 1, "SWEEP_GRACE_SECONDS": 1}


def statuses(api):
    return [entry["status"] for entry in api.logs(limit=100)]


@pytest.fixture
def marker(tmp_path):
    """The file the ``block`` action writes once it blocks."""
    return tmp_path / "blocked"


@pytest.fixture
def queue_app(postgres_url, redis_url, marker):
    """An app on PostgreSQL with a private queue, which knows the ``block`` action its workers run."""
    plugins = [BlockingPlugin(marker)]
    with queued_app(postgres_url, redis_url, f"ks-test-{uuid.uuid4().hex[:8]}", EXTRA_PLUGINS=plugins) as app:
        yield app


def test_a_worker_killed_mid_batch_leaves_the_batch_pending_and_a_new_worker_completes_it(queue_app, marker, tmp_path):
    api = api_for(queue_app)
    api.create_source(settings={"event_type_path": "type"}, mappings=[IDENTIFY, BLOCK])
    for number in range(4):
        body = {"type": "signed_up", "user": f"u{number}", "name": f"User {number}"}
        assert api.client.post(api.endpoint(), json=body).status_code == 204
    # The last of the batch: the four identifies before it are done, not committed, when it blocks.
    assert api.client.post(api.endpoint(), json={"type": "blocked"}).status_code == 204
    factory = f"tests.support.blocking:create_app({str(marker)!r})"

    [worker] = start_workers(queue_app, burst=False, output=tmp_path, app_factory=factory, **QUICK_SWEEPS)
    try:
        wait_for(marker.exists, "the worker to reach the blocking event")
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
    finally:
        stop([worker])
    [blocked, *identified] = api.logs(limit=100)
    assert int(marker.read_text()) == int(blocked["id"])
    assert statuses(api) == ["pending"] * 5
    assert all(entry["actions"] == [] for entry in identified)
    assert [api.get(f"/v1/users/u{number}").status_code for number in range(4)] == [404] * 4

    # The killed worker had taken the ids off the queue: the sweeper hands them over again.
    workers = start_workers(queue_app, burst=False, output=tmp_path, app_factory=factory, **QUICK_SWEEPS)
    try:
        wait_for(lambda: statuses(api) == ["processed"] * 5, "a new worker to process the batch")
    finally:
        stop(workers)
    assert [api.get(f"/v1/users/u{number}").get_json()["name"] for number in range(4)] == [
        f"User {number}" for number in range(4)
    ]
    assert [len(entry["actions"]) for entry in api.logs(limit=100)] == [1] * 5

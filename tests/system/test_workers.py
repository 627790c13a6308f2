"""Long-running ``flask worker`` processes: Redis outages, and what ``/healthz`` says about them."""

from __future__ import annotations

import time

import pytest

from tests.support.processes import RedisServer, api_for, queued_app, wait_for
from tests.support.workers import start_workers, stop

TRIGGER = {
    "event_type": "order.paid",
    "action_type": "workflows_trigger",
    "action_parameters": {"key": "receipt", "recipients": {"value": ["u1"]}},
}
# Quick sweeps so that a test need not wait out the production defaults.
QUICK_SWEEPS = {"SWEEP_INTERVAL_SECONDS": 1, "SWEEP_GRACE_SECONDS": 1}


@pytest.fixture
def redis_server():
    """A Redis of the test's own, running; the test may kill and restart it."""
    server = RedisServer()
    server.start()
    yield server
    server.kill()


@pytest.fixture
def app(postgres_url, redis_server):
    """An app on PostgreSQL and the test's own Redis."""
    with queued_app(postgres_url, redis_server.url, "ks-test-workers") as app:
        yield app


@pytest.fixture
def api(app):
    api = api_for(app)
    api.create_source(mappings=[TRIGGER])
    return api


def statuses(api):
    return [entry["status"] for entry in api.logs(limit=100)]


def health(api):
    response = api.client.get("/healthz")
    return response.status_code, response.get_json()


def workers_seen(api):
    """``/healthz``'s status code and its count of live workers."""
    code, body = health(api)
    return code, body.get("workers", {}).get("alive")


def test_workers_ride_out_a_redis_outage_and_process_what_arrived_meanwhile(app, api, redis_server, tmp_path):
    workers = start_workers(app, count=2, burst=False, output=tmp_path, **QUICK_SWEEPS)
    logs = [tmp_path / f"worker-{number}.log" for number in range(2)]
    try:
        for number in range(5):
            assert api.client.post(api.endpoint(), json={"type": "order.paid", "n": number}).status_code == 204
        wait_for(lambda: statuses(api) == ["processed"] * 5, "the first events to be processed")

        redis_server.kill()
        # Accepted all the same: each is committed before Redis is asked anything.
        for number in range(5, 25):
            assert api.client.post(api.endpoint(), json={"type": "order.paid", "n": number}).status_code == 204
        wait_for(
            lambda: all("Redis is unreachable" in log.read_text() for log in logs), "both workers to notice the outage"
        )
        # An outage spanning many reconnection attempts, not just the first.
        time.sleep(4)
        assert [worker.poll() for worker in workers] == [None, None], "a worker quit during the outage"
        assert health(api)[0] == 503

        redis_server.start()
        wait_for(lambda: statuses(api) == ["processed"] * 25, "every event accepted during the outage", timeout=120)
        assert [worker.poll() for worker in workers] == [None, None]
        # One worker may have done it all while the other still waits out its backoff.
        wait_for(
            lambda: all("Redis is reachable again" in log.read_text() for log in logs), "both workers to reconnect"
        )
        for log in logs:
            text = log.read_text()
            # Once per outage, not once per attempt.
            assert text.count("Redis is unreachable") == 1, text
            assert text.count("Redis is reachable again") == 1, text
        # The restarted Redis had forgotten them: they registered again.
        wait_for(lambda: workers_seen(api) == (200, 2), "/healthz to see both workers again")
    finally:
        stop(workers)
    assert [worker.returncode for worker in workers] == [0, 0]


def test_healthz_is_degraded_until_a_worker_is_alive(app, api):
    code, body = health(api)
    assert code == 503
    assert body["status"] == "degraded"
    assert body["checks"] == {"database": "ok", "pending": "ok", "queue": "ok", "workers": "none_alive"}
    assert body["workers"] == {"alive": 0}

    workers = start_workers(app, burst=False, **QUICK_SWEEPS)
    try:
        wait_for(lambda: workers_seen(api) == (200, 1), "/healthz to see the worker")
        assert health(api)[1]["status"] == "ok"
    finally:
        stop(workers)
    # A worker that stopped says so in RQ's registry (health may have sampled it a moment before).
    wait_for(lambda: workers_seen(api) == (503, 0), "/healthz to see the worker gone")


def test_healthz_reports_the_backlog_and_is_degraded_when_it_stalls(app, api):
    for number in range(3):
        api.client.post(api.endpoint(), json={"type": "order.paid", "n": number})
    workers = start_workers(app, burst=False, **QUICK_SWEEPS)
    try:
        wait_for(lambda: workers_seen(api) == (200, 1), "/healthz to see the worker")
        wait_for(lambda: health(api)[1]["pending"]["count"] == 0, "the backlog to be processed")
        assert health(api)[1]["pending"] == {"count": 0, "capped": False, "oldest_age_seconds": None}
    finally:
        stop(workers)
    # Workers gone, events keep arriving: the oldest pending event ages past the threshold.
    app.config["HEALTHZ_MAX_PENDING_AGE_SECONDS"] = 1
    api.client.post(api.endpoint(), json={"type": "order.paid", "n": 3})
    wait_for(lambda: health(api)[1]["checks"]["pending"] == "stalled", "/healthz to see the stalled backlog")
    code, body = health(api)
    assert code == 503
    assert body["pending"]["count"] == 1 and body["pending"]["oldest_age_seconds"] > 1


def test_a_worker_asked_to_stop_during_an_outage_stops(app, api, redis_server, tmp_path):
    workers = start_workers(app, burst=False, output=tmp_path, **QUICK_SWEEPS)
    try:
        wait_for(lambda: workers_seen(api) == (200, 1), "/healthz to see the worker")
        redis_server.kill()
        wait_for(lambda: "Redis is unreachable" in (tmp_path / "worker-0.log").read_text(), "the worker to notice")
    finally:
        stop(workers)
    assert workers[0].returncode == 0
    assert "stopped while Redis is unreachable" in (tmp_path / "worker-0.log").read_text()

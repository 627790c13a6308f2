"""Operations under real processes: gunicorn's several workers and their metrics, ``flask worker``'s
metrics port, replays on the replay queue, JSON log lines without secrets."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.support import ROOT, free_port, port_is_open
from tests.support.metrics import value
from tests.support.workers import start_workers

BIN = Path(sys.executable).parent

TOKEN = "worker-metrics-token"
FAILING_TRIGGER = {
    "event_type": "order.paid",
    "action_type": "workflows_trigger",
    "action_parameters": {"key": "receipt", "recipients": {"value": [{"id": "u1", "name": "Ada"}]}},
}


def http(url, method="GET", body=None, headers=None):
    request = urllib.request.Request(
        url,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Connection": "close", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def children(pid):
    return set(subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split())


@pytest.fixture
def gunicorn(tmp_path):
    """gunicorn with gunicorn.conf.py, two workers, JSON logs and a metrics listener."""
    port, metrics_port = free_port(), free_port()
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    # A previous run's file, corrupt: the server must start from an empty directory.
    (metrics_dir / "counter_1.db").write_bytes(b"garbage")
    env = {
        "PATH": os.environ["PATH"],
        "KNOCK_SOURCES_DATABASE_URL": f"sqlite:///{tmp_path / 'g.db'}",
        "KNOCK_SOURCES_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "KNOCK_SOURCES_LOAD_PLUGIN_ENTRYPOINTS": "false",
        "KNOCK_SOURCES_LOG_FORMAT": "json",
        "KNOCK_SOURCES_METRICS_BIND": f"127.0.0.1:{metrics_port}",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
    }
    commands = {key: value for key, value in env.items() if key != "PROMETHEUS_MULTIPROC_DIR"}
    subprocess.run([str(BIN / "flask"), "init-db"], cwd=ROOT, env=commands, check=True, capture_output=True)
    key = subprocess.run(
        [str(BIN / "flask"), "api-key", "create"], cwd=ROOT, env=commands, check=True, capture_output=True, text=True
    ).stdout.strip()
    output = open(tmp_path / "server.log", "w")
    process = subprocess.Popen(
        [str(BIN / "gunicorn"), "--bind", f"127.0.0.1:{port}", "--workers", "2", "--threads", "2", "wsgi:app"],
        cwd=ROOT,
        env=env,
        stdout=output,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while not (port_is_open("127.0.0.1", port) and port_is_open("127.0.0.1", metrics_port)):
        assert process.poll() is None and time.monotonic() < deadline, "gunicorn did not start"
        time.sleep(0.1)
    server = {
        "base": f"http://127.0.0.1:{port}",
        "metrics": f"http://127.0.0.1:{metrics_port}/metrics",
        "headers": {"Authorization": f"Bearer {key}"},
        "key": key,
        "process": process,
        "log": tmp_path / "server.log",
        "metrics_dir": metrics_dir,
    }
    yield server
    process.terminate()
    process.wait(timeout=30)
    output.close()


def accepted(server, source="orders"):
    status, text = http(server["metrics"])
    assert status == 200, text
    return value(
        text, "knock_sources_ingest_requests_total", source=source, environment="development", outcome="accepted"
    )


def test_counters_add_up_across_workers_and_survive_a_dead_worker(gunicorn):
    assert not (gunicorn["metrics_dir"] / "counter_1.db").exists()
    status, body = http(
        f"{gunicorn['base']}/v1/sources/orders", "PUT", {"source": {"name": "Orders"}}, gunicorn["headers"]
    )
    assert status == 200, body
    endpoint = json.loads(body)["environment_settings"]["development"]["settings"]["endpoint"]
    for index in range(20):
        assert http(endpoint, "POST", {"type": "order.paid", "n": index})[0] == 204
    assert accepted(gunicorn) == 20
    # The public address does not serve metrics.
    assert http(f"{gunicorn['base']}/metrics")[0] == 404

    workers = children(gunicorn["process"].pid)
    assert len(workers) == 2
    os.kill(int(sorted(workers)[0]), signal.SIGKILL)
    deadline = time.monotonic() + 30
    while True:
        now = children(gunicorn["process"].pid)
        if len(now) == 2 and now != workers:
            break
        assert time.monotonic() < deadline, "gunicorn did not replace the worker"
        time.sleep(0.1)
    # The dead worker's counts stay in the totals.
    assert accepted(gunicorn) == 20
    for index in range(5):
        assert http(endpoint, "POST", {"type": "order.paid", "n": index})[0] == 204
    assert accepted(gunicorn) == 25

    gunicorn["process"].terminate()
    gunicorn["process"].wait(timeout=30)
    lines = [line for line in gunicorn["log"].read_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]
    access = [record for record in records if record.get("logger") == "gunicorn.access"]
    assert access and all(record.get("request_id") for record in access)
    token = endpoint.rsplit("/", 1)[1]
    text = "\n".join(lines)
    assert token not in text and gunicorn["key"] not in text
    assert "/integrations/receive/[redacted]" in text


def test_worker_serves_its_metrics_and_runs_replays_from_the_replay_queue(queue_app, queue_api):
    queue_api.create_source(mappings=[FAILING_TRIGGER])
    queue_api.create_workflow("receipt", active=False)
    endpoint = queue_api.endpoint()
    for index in range(3):
        assert queue_api.client.post(endpoint, json={"type": "order.paid", "n": index}).status_code == 204
    port = free_port()
    [worker] = start_workers(
        queue_app, burst=False, WORKER_METRICS_BIND=f"127.0.0.1:{port}", METRICS_TOKEN=TOKEN, LOG_FORMAT="json"
    )
    try:
        deadline = time.monotonic() + 60
        while [entry["status"] for entry in queue_api.logs()] != ["failed"] * 3:
            assert time.monotonic() < deadline, queue_api.logs()
            time.sleep(0.2)
        scrape = f"http://127.0.0.1:{port}/metrics"
        assert http(scrape)[0] == 401
        status, text = http(scrape, headers={"Authorization": f"Bearer {TOKEN}"})
        assert status == 200
        labels = {"source": "my-source", "environment": "development"}
        assert value(text, "knock_sources_events_processed_total", status="failed", **labels) == 3

        queue_api.create_workflow("receipt", active=True)
        response = queue_api.client.post(
            "/v1/sources/my-source/replay",
            json={},
            query_string={"environment": "development"},
            headers=queue_api.headers,
        )
        assert response.status_code == 202 and response.get_json()["state"] == "queued"
        replay_id = response.get_json()["id"]
        deadline = time.monotonic() + 60
        while (progress := queue_api.get(f"/v1/replays/{replay_id}").get_json())["state"] != "completed":
            assert time.monotonic() < deadline, progress
            time.sleep(0.2)
        assert (progress["done"], progress["failed"]) == (3, 0)
        text = http(scrape, headers={"Authorization": f"Bearer {TOKEN}"})[1]
        assert value(text, "knock_sources_replay_events_total", outcome="processed") == 3
    finally:
        worker.terminate()
        output, _ = worker.communicate(timeout=30)
    records = [json.loads(line) for line in output.splitlines() if line.strip()]
    assert any(record.get("job_id") for record in records)
    assert any(record.get("replay_id") == int(replay_id) for record in records)


def test_web_metrics_count_the_workers(queue_app, queue_api):
    queue_app.config.update(METRICS_TOKEN=TOKEN, METRICS_SAMPLE_SECONDS=0.2)
    queue_app.extensions["knock_sources"].backlog.interval = 0.2
    [worker] = start_workers(queue_app, burst=False)
    client = queue_app.test_client()
    try:
        deadline = time.monotonic() + 60
        while True:
            text = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).get_data(as_text=True)
            if value(text, "knock_sources_workers") == 1:
                break
            assert time.monotonic() < deadline, text
            time.sleep(0.2)
        assert f'queue="{queue_app.config["QUEUE_NAME"]}-replay"' in text
    finally:
        worker.terminate()
        worker.communicate(timeout=30)

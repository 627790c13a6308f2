"""Runaway scripts under a real gunicorn worker: the worker survives and keeps serving."""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request

import pytest

from tests.support.processes import gunicorn_server

RUNAWAY = {
    "loop": "function main() { while (true) {} }",
    "bomb": "function main() { const a = []; while (true) { a.push('x'.repeat(4096) + a.length); } }",
    "async-loop": "async function main() { await null; for (;;) {} }",
    # One builtin call V8 cannot interrupt: it aborts the script host, not the worker.
    "one-line-bomb": "function main() { return new Array(2 ** 27).fill(1.5); }",
    "one-line-crash": "function main() { return {n: 'ab'.repeat(2 ** 27).split('').length}; }",
}


def call(url, method="POST", body=None, headers=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@pytest.fixture
def server(tmp_path):
    """gunicorn serving the app on SQLite, one worker; yields (base url, api headers, worker pids)."""
    with gunicorn_server(tmp_path) as running:
        yield running


def create_source(base, headers, key, script):
    settings = {"preprocess_script": {"language": "javascript", "source": script}, "enforce_verification": True}
    status, body = call(
        f"{base}/v1/sources/{key}",
        "PUT",
        {"source": {"name": key, "environment_settings": {"development": {"settings": settings}}}},
        headers,
    )
    assert status == 200, body
    return json.loads(body)["environment_settings"]["development"]["settings"]["endpoint"]


@pytest.mark.parametrize("kind", RUNAWAY)
def test_runaway_script_is_stopped_and_the_worker_keeps_serving(server, kind):
    base, headers, workers = server
    runaway = create_source(base, headers, "runaway", RUNAWAY[kind])
    healthy = create_source(base, headers, "healthy", "export function main() { return { verified: true }; }")
    for _ in range(2):
        status, body = call(runaway, body={"type": "x"})
        assert status == 401, body
        assert call(healthy, body={"type": "x"})[0] == 204
    after = subprocess.run(["pgrep", "-f", "gunicorn"], capture_output=True, text=True).stdout.split()
    assert set(workers) <= set(after), "the worker process was replaced"

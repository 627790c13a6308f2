"""Segment's and RudderStack's own Python SDKs, sending to a live server: the tracking API's oracles.

Three clients that differ where it matters (reference: cdp-and-dashboards.md
A.2, A.4): segment-analytics-python 2.3.4 sends the write key only in the
body and takes nothing but a 200 as success; the current 2.4 sends Basic
auth and the body key; rudder-sdk-python sends Basic auth only, gzipped.
Each runs in a subprocess (``tests/support/sdk_driver.py``); the early
Segment release is installed into a cache directory by pip on first use.
Their calls must come out as identified users and workflow runs, and a
batch the SDK resends because it lost our answer must not run twice.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import pytest
from werkzeug.serving import make_server

from tests.support import ROOT, service_unavailable
from tests.support.tracking import write_key

DRIVER = ROOT / "tests" / "support" / "sdk_driver.py"
EARLY_SEGMENT = "2.3.4"
SDKS = [
    pytest.param(("segment", None), id="segment-analytics-python-current"),
    pytest.param(("segment", EARLY_SEGMENT), id=f"segment-analytics-python-{EARLY_SEGMENT}"),
    pytest.param(("rudder", None), id="rudder-sdk-python"),
]


@pytest.fixture(scope="session")
def early_segment(tmp_path_factory):
    """A directory holding segment-analytics-python 2.3.4 only, for ``PYTHONPATH`` (installed once per machine)."""
    cache = tmp_path_factory.getbasetemp().parent / "sdk-cache" / f"segment-analytics-python-{EARLY_SEGMENT}"
    if not (cache / "segment" / "analytics" / "client.py").exists():
        staging = tmp_path_factory.mktemp("sdk-install")
        # --no-deps: its dependencies (requests, backoff, dateutil) are the current SDK's, already installed.
        command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(staging)]
        result = subprocess.run(
            [*command, f"segment-analytics-python=={EARLY_SEGMENT}"], capture_output=True, text=True
        )
        if result.returncode != 0:
            service_unavailable(
                f"pip could not install segment-analytics-python {EARLY_SEGMENT}: {result.stderr[-500:]}"
            )
        cache.parent.mkdir(parents=True, exist_ok=True)
        try:
            staging.rename(cache)
        except OSError:
            # Another session installed it meanwhile.
            pass
    return cache


class Recorder:
    """WSGI middleware that records each request and can lose the next answers (the SDK sees a 503)."""

    def __init__(self, app):
        self.app = app
        self.requests: list[dict] = []
        self.lose = 0
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        seen = {
            "path": environ["PATH_INFO"],
            "authorization": environ.get("HTTP_AUTHORIZATION"),
            "encoding": environ.get("HTTP_CONTENT_ENCODING"),
        }
        with self.lock:
            lost, self.lose = self.lose > 0, max(self.lose - 1, 0)
            self.requests.append(seen)
        if not lost:
            return self.app(environ, self._recording(seen, start_response))
        # The event is received and committed; only our answer is lost on the way back.
        answer = self.app(environ, self._recording(seen, lambda *args: None))
        b"".join(answer)
        getattr(answer, "close", lambda: None)()
        start_response("503 Service Unavailable", [("Content-Type", "application/json")])
        return [b'{"code": "unavailable", "message": "The answer was lost."}']

    @staticmethod
    def _recording(seen, start_response):
        def record(status, headers, exc_info=None):
            seen["status"] = int(status.split()[0])
            return start_response(status, headers, exc_info)

        return record


@pytest.fixture
def server(app):
    """The app on a live HTTP server (werkzeug, threaded), behind a ``Recorder``."""
    recorder = Recorder(app)
    httpd = make_server("127.0.0.1", 0, recorder, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    recorder.host = f"http://127.0.0.1:{httpd.server_port}/segment"
    yield recorder
    httpd.shutdown()
    thread.join()


@pytest.fixture
def key(api):
    """The write key of a Segment source whose ``Signed Up`` track calls trigger ``welcome``."""
    api.create_source("app", provider="segment")
    api.create_workflow("welcome")
    trigger = {"source": "app", "event": "track/Signed Up", "mapping": {"recipients": "user_id", "data": "data"}}
    assert api.request("POST", "/v1/workflows/welcome/triggers", json={"trigger": trigger}).status_code == 201
    return write_key(api, "app")


def run_sdk(tmp_path, sdk, pythonpath, host, key, calls, mode="sync", **options) -> dict:
    """Run the SDK driver with ``calls``; return what it printed."""
    request = tmp_path / f"request-{len(list(tmp_path.iterdir()))}.json"
    request.write_text(
        json.dumps({"sdk": sdk, "host": host, "write_key": key, "mode": mode, "calls": calls, "options": options})
    )
    env = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    result = subprocess.run(
        [sys.executable, str(DRIVER), str(request)], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


CALLS = [
    {
        "method": "identify",
        "kwargs": {"user_id": "ada", "traits": {"name": "Ada Lovelace", "email": "ada@example.com", "plan": "pro"}},
    },
    {"method": "track", "kwargs": {"user_id": "ada", "event": "Signed Up", "properties": {"plan": "pro"}}},
]


@pytest.fixture(params=SDKS)
def client_sdk(request):
    """``(sdk, PYTHONPATH or None, pinned version or None)``."""
    sdk, version = request.param
    path = request.getfixturevalue("early_segment") if version else None
    return sdk, path, version


def check_user_and_run(api):
    user = api.get("/v1/users/ada").get_json()
    assert (user["name"], user["email"], user["plan"]) == ("Ada Lovelace", "ada@example.com", "pro")
    [run] = api.get("/v1/workflows/welcome/runs").get_json()["entries"]
    assert (run["recipient"]["id"], run["data"]) == ("ada", {"plan": "pro"})


def test_sdk_calls_become_identified_users_and_workflow_runs(tmp_path, api, server, key, client_sdk):
    sdk, path, version = client_sdk
    outcome = run_sdk(tmp_path, sdk, path, server.host, key, CALLS)
    assert outcome["errors"] == []
    if version:
        assert outcome["version"] == version
    assert [(seen["path"], seen["status"]) for seen in server.requests] == [("/segment/v1/batch", 200)] * 2
    check_user_and_run(api)
    # Each SDK authenticates its own way; all of them are accepted.
    with_basic = {seen["authorization"] is not None for seen in server.requests}
    assert with_basic == ({False} if version == EARLY_SEGMENT else {True})
    if sdk == "rudder":
        assert {seen["encoding"] for seen in server.requests} == {"gzip"}
    for entry in api.logs("app"):
        assert key not in json.dumps(entry)


def test_a_batch_resent_after_a_lost_answer_runs_once(tmp_path, api, server, key, client_sdk):
    sdk, path, _ = client_sdk
    server.lose = 1
    calls = [{**call, "kwargs": {**call["kwargs"], "message_id": f"msg-{index}"}} for index, call in enumerate(CALLS)]
    outcome = run_sdk(tmp_path, sdk, path, server.host, key, calls, mode="queued", max_retries=3)
    assert outcome["errors"] == []
    statuses = [seen["status"] for seen in server.requests]
    assert statuses[0] == 200 and len(statuses) >= 2  # the first answer was lost, the SDK retried
    check_user_and_run(api)
    logs = api.logs("app")
    assert sorted({entry["status"] for entry in logs}) == ["idempotent", "processed"]
    assert sum(entry["status"] == "processed" for entry in logs) == 2
    assert all(entry["actions"] == [] for entry in logs if entry["status"] == "idempotent")


def test_a_refused_batch_is_not_retried(tmp_path, api, server, key, client_sdk):
    # A 4xx with a {"code", "message"} body is final for every SDK, the early one included.
    sdk, path, _ = client_sdk
    outcome = run_sdk(tmp_path, sdk, path, server.host, "not-a-write-key", CALLS[:1], mode="queued", max_retries=3)
    assert len(outcome["errors"]) == 1
    assert [seen["status"] for seen in server.requests] == [401]


def test_a_chunked_gzip_body_without_content_length_is_read(api, server, key):
    # analytics-kotlin and legacy analytics-android stream gzip with Transfer-Encoding: chunked.
    import base64
    import gzip
    import http.client
    from urllib.parse import urlsplit

    body = gzip.compress(
        json.dumps({"batch": [{"type": "identify", "userId": "ada", "traits": {"name": "Ada"}}]}).encode()
    )
    url = urlsplit(server.host)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    chunks = (body[start : start + 7] for start in range(0, len(body), 7))
    headers = {
        "Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode(),
        "Content-Type": "text/plain",
        "Content-Encoding": "gzip",
    }
    connection.request("POST", url.path + "/v1/b", body=chunks, headers=headers, encode_chunked=True)
    response = connection.getresponse()
    assert (response.status, json.loads(response.read())) == (200, {"success": True})
    connection.close()
    assert api.get("/v1/users/ada").get_json()["name"] == "Ada"

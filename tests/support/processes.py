"""Real processes for the system tests: a private ``redis-server``, gunicorn, the production shape's app.

The ``flask worker`` processes are in ``workers.py``.

A test that stops a service starts its own on a free port; the shared Redis
and PostgreSQL are never touched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.support import ROOT, Api, free_port, make_app, port_is_open, reset_database, stop_dispatcher
from tests.support.workers import FLASK

BIN = Path(FLASK).parent


def wait_for(condition, what, timeout=60.0, every=0.1):
    """Wait until ``condition()`` is true, failing with ``what`` after a generous ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(every)


class RedisServer:
    """A ``redis-server`` of the test's own, without persistence, that can be killed and restarted."""

    def __init__(self):
        if shutil.which("redis-server") is None:
            pytest.fail("redis-server is required for this test")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        """Start it (again) on the same port; returns once it accepts connections."""
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )
        wait_for(lambda: port_is_open("127.0.0.1", self.port), "redis-server to start", timeout=10)

    def kill(self) -> None:
        """Kill it without warning, losing everything it held (an outage, as seen by its clients)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)


@contextlib.contextmanager
def queued_app(database_url, redis_url, queue_name, **overrides):
    """An app in the production shape (``REDIS_URL`` set) on ``database_url``; emptied afterwards."""
    app = make_app(database_url, REDIS_URL=redis_url, QUEUE_NAME=queue_name, **overrides)
    try:
        yield app
    finally:
        stop_dispatcher(app)
        reset_database()


def api_for(app) -> Api:
    """The JSON API of ``app`` with a fresh key, and a ``receipt`` workflow to trigger."""
    key = app.test_cli_runner().invoke(args=["api-key", "create"]).stdout.strip()
    api = Api(app.test_client(), key)
    api.create_workflow("receipt")
    return api


@contextlib.contextmanager
def gunicorn_server(directory):
    """gunicorn serving the app on SQLite in ``directory``, one worker; yields (base url, API headers, worker pids)."""
    port = free_port()
    env = {
        "PATH": os.environ["PATH"],
        "KNOCK_SOURCES_DATABASE_URL": f"sqlite:///{Path(directory) / 'g.db'}",
        "KNOCK_SOURCES_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "KNOCK_SOURCES_LOAD_PLUGIN_ENTRYPOINTS": "false",
    }
    subprocess.run([str(BIN / "flask"), "init-db"], cwd=ROOT, env=env, check=True, capture_output=True)
    key = subprocess.run(
        [str(BIN / "flask"), "api-key", "create"], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    ).stdout.strip()
    command = [str(BIN / "gunicorn"), "--bind", f"127.0.0.1:{port}", "--workers", "1", "--threads", "2"]
    process = subprocess.Popen(
        [*command, "--timeout", "30", "wsgi:app"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: process.poll() is not None or port_is_open("127.0.0.1", port), "gunicorn to start", timeout=30)
        assert process.poll() is None, "gunicorn did not start"
        workers = subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True, text=True).stdout.split()
        yield f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {key}"}, workers
    finally:
        process.terminate()
        process.communicate(timeout=30)

"""Real ``flask worker`` processes for the tests of the production shape."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from knock_sources import state
from tests.support import ROOT

FLASK = str(Path(sys.executable).with_name("flask"))


def worker_env(app, **overrides):
    """Environment for a worker process configured like ``app``."""
    settings = {
        "DATABASE_URL": app.config["DATABASE_URL"],
        "REDIS_URL": app.config["REDIS_URL"],
        "QUEUE_NAME": app.config["QUEUE_NAME"],
        "SECRET_KEY": app.config["SECRET_KEY"],
        "LOAD_PLUGIN_ENTRYPOINTS": "false",
        # No metrics port unless a test asks: several workers would contend for one.
        "WORKER_METRICS_BIND": "",
        **overrides,
    }
    return {"PATH": os.environ["PATH"], **{f"KNOCK_SOURCES_{k}": str(v) for k, v in settings.items()}}


def start_workers(app, count=1, burst=True, output=None, app_factory=None, **overrides):
    """Start ``count`` real worker processes, once this process has handed over its events.

    With ``output`` (a directory), each worker writes what it prints to
    ``worker-<n>.log`` there instead of a pipe, so a long-running worker can
    be read while it runs. ``app_factory`` is a ``flask --app`` value naming
    the app the workers run (default: the repository's).
    """
    assert app.extensions[state.EXTENSION].dispatcher.flush()
    command = [FLASK] + (["--app", app_factory] if app_factory else []) + ["worker"] + (["--burst"] if burst else [])
    workers = []
    for number in range(count):
        stdout = subprocess.PIPE if output is None else open(Path(output) / f"worker-{number}.log", "w")  # noqa: SIM115
        workers.append(
            subprocess.Popen(
                command, cwd=ROOT, env=worker_env(app, **overrides), stdout=stdout, stderr=subprocess.STDOUT, text=True
            )
        )
        if output is not None:
            stdout.close()
    return workers


def wait(workers, timeout=60):
    """Wait for burst workers to drain the queue and exit cleanly."""
    for worker in workers:
        output, _ = worker.communicate(timeout=timeout)
        assert worker.returncode == 0, output


def stop(workers, timeout=30):
    """Ask long-running workers to stop (SIGTERM, as a process manager does) and wait for them."""
    for worker in workers:
        if worker.poll() is None:
            worker.terminate()
    for worker in workers:
        # communicate() also closes the pipe of a worker started without ``output``.
        worker.communicate(timeout=timeout)

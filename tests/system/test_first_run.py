"""What a first run of the CLI says: one line for what is wrong and how to fix it, the SECRET_KEY warning once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid

import pytest

from tests.support import POSTGRES_HOST, ROOT, free_port, postgres_user
from tests.support.processes import wait_for
from tests.support.workers import FLASK, stop

WARNING = "KNOCK_SOURCES_SECRET_KEY is not set"


def run(args, tmp_path, **settings):
    """Run a CLI command (``args``) in a fresh environment configured by ``settings``; return the result."""
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "KNOCK_SOURCES_DATABASE_URL": f"sqlite:///{tmp_path / 'first.db'}",
        "KNOCK_SOURCES_LOAD_PLUGIN_ENTRYPOINTS": "false",
        **{f"KNOCK_SOURCES_{key}": str(value) for key, value in settings.items()},
    }
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def assert_one_line(result, *phrases):
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for phrase in phrases:
        assert phrase in lines[0], lines[0]


def test_a_missing_postgresql_database_is_one_line_saying_how_to_create_it(postgres_url, tmp_path):
    name = f"ks_missing_{uuid.uuid4().hex[:8]}"
    url = f"postgresql://{postgres_user()}:hunter2@{POSTGRES_HOST}:5432/{name}"
    result = run([FLASK, "init-db"], tmp_path, DATABASE_URL=url)
    assert_one_line(result, f'database "{name}" does not exist', f"createdb {name}", "KNOCK_SOURCES_DATABASE_URL")
    assert "hunter2" not in result.stderr


def test_a_postgresql_server_that_is_not_running_is_one_line(tmp_path):
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/test"
    assert_one_line(run([FLASK, "api-key", "create"], tmp_path, DATABASE_URL=url), "start PostgreSQL")


def test_a_database_without_its_schema_is_one_line_saying_to_run_init_db(tmp_path):
    assert_one_line(run([FLASK, "api-key", "create"], tmp_path), "run flask init-db")


def test_an_unreachable_redis_is_one_line(tmp_path):
    assert run([FLASK, "init-db"], tmp_path).returncode == 0
    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    result = run([FLASK, "sweep"], tmp_path, REDIS_URL=url)
    assert_one_line(result, "is unreachable", "start Redis or fix KNOCK_SOURCES_REDIS_URL")
    assert "hunter2" not in result.stderr


@pytest.mark.parametrize("args", [["--help"], ["init-db"], ["api-key", "create"], ["sweep"]])
def test_commands_do_not_repeat_the_secret_key_warning(tmp_path, args):
    run([FLASK, "init-db"], tmp_path)
    result = run([FLASK, *args], tmp_path)
    assert result.returncode == 0, result.stderr
    assert WARNING not in result.stderr + result.stdout


def test_a_server_and_a_worker_warn_once_when_they_start(tmp_path, redis_url):
    run([FLASK, "init-db"], tmp_path)
    # What gunicorn does: import wsgi:app.
    server = run([sys.executable, "-c", "import wsgi"], tmp_path)
    assert server.returncode == 0, server.stderr
    assert server.stderr.count(WARNING) == 1
    worker = run([FLASK, "worker", "--burst"], tmp_path, REDIS_URL=redis_url, QUEUE_NAME=f"ks-{uuid.uuid4().hex[:8]}")
    assert worker.returncode == 0, worker.stderr
    assert (worker.stderr + worker.stdout).count(WARNING) == 1
    quiet = run([sys.executable, "-c", "import wsgi"], tmp_path, SECRET_KEY="a-real-secret")
    assert WARNING not in quiet.stderr


def test_a_worker_started_without_redis_says_so_once_and_waits_for_it(tmp_path):
    assert run([FLASK, "init-db"], tmp_path).returncode == 0
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "KNOCK_SOURCES_DATABASE_URL": f"sqlite:///{tmp_path / 'first.db'}",
        "KNOCK_SOURCES_LOAD_PLUGIN_ENTRYPOINTS": "false",
        "KNOCK_SOURCES_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
    }
    log = tmp_path / "worker.log"
    with open(log, "w") as output:
        worker = subprocess.Popen([FLASK, "worker"], cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: "Redis is unreachable" in log.read_text(), "the worker to report the missing Redis")
        assert worker.poll() is None
    finally:
        stop([worker])
    text = log.read_text()
    # Still starting (RQ installs its handlers once registered), so SIGTERM ends it as signals do.
    assert worker.returncode in (0, -signal.SIGTERM), text
    assert text.count("Redis is unreachable") == 1 and "start Redis or fix KNOCK_SOURCES_REDIS_URL" in text
    assert "Traceback" not in text

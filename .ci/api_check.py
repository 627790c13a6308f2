"""``make api-check``: schemathesis holds a live server to its own ``/openapi.json``.

Starts gunicorn (with ``gunicorn.conf.py``) on a free port over a fresh
database with a few sources, workflows and logs in it, then runs schemathesis
against every operation with the server-error and response-schema checks
(plus status codes and content types). Any finding fails the run.

It runs on SQLite (a file in a temporary directory) and then on
PostgreSQL (127.0.0.1:5432, database ``test``, in a schema of its own that
is dropped afterwards): skipped when PostgreSQL is not there, a failure when
``KNOCK_SOURCES_REQUIRE_SERVICES`` is set, as in CI.
``KNOCK_SOURCES_API_CHECK_DATABASE_URL`` runs it on that database alone;
``API_CHECK_MAX_EXAMPLES`` sets the number of examples per operation.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import psycopg2

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support import POSTGRES_DB, POSTGRES_HOST, postgres_user  # noqa: E402

BIN = Path(sys.executable).parent
CHECKS = "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def call(base: str, method: str, path: str, key: str, body=None):
    request = urllib.request.Request(
        base + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"null")


def seed(base: str, key: str) -> None:
    """A custom source with logs (processed and failed), a Stripe source, workflows, a replay."""
    mapping = {
        "event_type": "order.paid",
        "action_type": "workflows_trigger",
        "action_parameters": {"key": "receipt", "recipients": {"value": [{"id": "u1", "name": "Ada"}]}},
    }
    settings = {"event_type_path": "type"}
    source = {"name": "Orders", "environment_settings": {"development": {"settings": settings, "mappings": [mapping]}}}
    created = call(base, "PUT", "/v1/sources/orders", key, {"source": source})
    endpoint = created["environment_settings"]["development"]["settings"]["endpoint"]
    call(base, "PUT", "/v1/sources/stripe", key, {"source": {"name": "Stripe", "preconfigured_provider": "stripe"}})
    for index in range(3):
        urllib.request.urlopen(
            urllib.request.Request(
                endpoint,
                data=json.dumps({"type": "order.paid", "n": index}).encode(),
                headers={"Content-Type": "application/json"},
            ),
            timeout=30,
        )
    call(base, "PUT", "/v1/workflows/receipt", key, {"workflow": {"name": "Receipt"}})
    call(base, "POST", "/v1/sources/orders/replay?environment=development", key, {})
    call(base, "PUT", "/v1/variables/API_TOKEN", key, {"variable": {"value": "x", "secret": True}})


@contextmanager
def postgres_schema():
    """Yield the URL of a fresh PostgreSQL schema, dropped afterwards; ``None`` if PostgreSQL is not there."""
    user = postgres_user()
    if user is None:
        yield None
        return
    connection = psycopg2.connect(host=POSTGRES_HOST, dbname=POSTGRES_DB, user=user)
    connection.autocommit = True
    schema = f"ks_api_check_{os.getpid()}"
    connection.cursor().execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"postgresql://{user}@{POSTGRES_HOST}:5432/{POSTGRES_DB}?options=-csearch_path%3D{schema}"
    finally:
        connection.cursor().execute(f"DROP SCHEMA {schema} CASCADE")
        connection.close()


def main() -> int:
    given = os.environ.get("KNOCK_SOURCES_API_CHECK_DATABASE_URL")
    if given:
        return check(given)
    with tempfile.TemporaryDirectory(prefix="knock-sources-api-check-db-") as directory:
        failed = check(f"sqlite:///{directory}/api-check.db")
    with postgres_schema() as url:
        if url is None:
            print("PostgreSQL is not running at 127.0.0.1:5432: the check ran on SQLite only.", file=sys.stderr)
            return 1 if os.environ.get("KNOCK_SOURCES_REQUIRE_SERVICES") or failed else 0
        return check(url) or failed


def check(database_url: str) -> int:
    """Run schemathesis against a server on ``database_url``; its exit status (0: no finding)."""
    print(f"api-check on {database_url.split(':', 1)[0]}", flush=True)
    max_examples = os.environ.get("API_CHECK_MAX_EXAMPLES", "25")
    with tempfile.TemporaryDirectory(prefix="knock-sources-api-check-") as workdir:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = {
            "PATH": os.environ["PATH"],
            "HOME": os.environ.get("HOME", workdir),
            "KNOCK_SOURCES_DATABASE_URL": database_url,
            "KNOCK_SOURCES_SECRET_KEY": "api-check-secret-key",
            "KNOCK_SOURCES_PUBLIC_BASE_URL": base,
            "KNOCK_SOURCES_LOAD_PLUGIN_ENTRYPOINTS": "false",
        }
        subprocess.run([str(BIN / "flask"), "init-db"], cwd=ROOT, env=env, check=True)
        key = subprocess.run(
            [str(BIN / "flask"), "api-key", "create"], cwd=ROOT, env=env, check=True, capture_output=True, text=True
        ).stdout.strip()
        server = subprocess.Popen(
            [str(BIN / "gunicorn"), "--bind", f"127.0.0.1:{port}", "--workers", "1", "--threads", "4", "wsgi:app"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(f"{workdir}/server.log", "w"),
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    urllib.request.urlopen(f"{base}/healthz", timeout=5)
                    break
                except OSError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        print(Path(f"{workdir}/server.log").read_text(), file=sys.stderr)
                        return 1
                    time.sleep(0.2)
            seed(base, key)
            result = subprocess.run(
                [
                    str(BIN / "schemathesis"),
                    "run",
                    f"{base}/openapi.json",
                    "--checks",
                    CHECKS,
                    "--header",
                    f"Authorization: Bearer {key}",
                    "--max-examples",
                    max_examples,
                    "--seed",
                    os.environ.get("API_CHECK_SEED", "1"),
                    # One worker: schemathesis 4.32's coverage phase errors now and then with two.
                    "--workers",
                    "1",
                    "--suppress-health-check",
                    "all",
                    *os.environ.get("API_CHECK_ARGS", "").split(),
                ],
                # Its cache of findings stays in the temporary directory, out of the repository.
                cwd=workdir,
                env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
            )
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        log = Path(f"{workdir}/server.log").read_text()
        if "Traceback" in log:
            print(log, file=sys.stderr)
            return 1
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())

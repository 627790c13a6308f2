"""The floor of a durable write per request: ``python bench/floor.py``.

How far below a bare Flask endpoint must any app fall that commits a row to
PostgreSQL before it answers? Under the settings and load of
``bench/run.py`` (gunicorn, wrk, the same Stripe-signed requests), this
measures side by side, in alternating rounds:

- ``bare``: the baseline, ``bench/bare_app.py``;
- ``commit_each``: a plain WSGI callable (no Flask) that reads the body and
  commits it with one autocommit INSERT into a one-column table before it
  answers (``bench/floor_apps.py``): the least any endpoint that commits
  each request under these settings can cost;
- ``group_commit``: the same rows, the requests of a process that arrive
  while a write is in flight sharing the next one;
- ``ingest``: the real app, as ``bench/run.py`` measures it;
- ``ingest_unwritten``: the real app with the event-log INSERT replaced by
  an id counter (``bench/floor_unwritten.py``): everything ingest does but
  the durable write.

Each is reported with its ratio to the bare endpoint of the same round and
the CPU time per request of the server's process tree and of its PostgreSQL
backends. Writes ``bench/results/floor.json``. Needs what ``bench/run.py``
needs.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

import psycopg2

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import procs, run  # noqa: E402
from bench.floor_apps import APPLICATION_NAME, TABLE  # noqa: E402
from bench.wrk import run_wrk, write_requests  # noqa: E402

SCHEMA = "ks_bench_floor"
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
RESULTS = ROOT / "bench" / "results" / "floor.json"
CASES = (
    ("bare", "bench.bare_app:app"),
    ("commit_each", "bench.floor_apps:commit_each"),
    ("group_commit", "bench.floor_apps:group_commit"),
    ("ingest", "wsgi:app"),
    ("ingest_unwritten", "bench.floor_unwritten:app"),
)


def backends(database_url: str) -> list[int]:
    """The pids of the PostgreSQL backends the measured server has open."""
    connection = psycopg2.connect(database_url)
    try:
        cursor = connection.cursor()
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s AND pid <> pg_backend_pid()",
            (APPLICATION_NAME,),
        )
        return [pid for (pid,) in cursor.fetchall()]
    finally:
        connection.close()


def measure(module: str, env: dict, url_path: str, requests_file: str, database_url: str) -> dict:
    """Serve ``module``, warm it up, load it; return rps, p99 and CPU per request (server tree, backends)."""
    server, port = run.serve(module, env)
    try:
        url = f"http://127.0.0.1:{port}{url_path}"
        run_wrk(url, requests_file, seconds=run.WARMUP, connections=run.CONNECTIONS, threads=2)
        tree, database = procs.tree(server.pid), backends(database_url)
        tree_before, database_before = procs.cpu_seconds(tree), procs.cpu_seconds(database)
        result = run_wrk(url, requests_file, seconds=run.DURATION, connections=run.CONNECTIONS, threads=2)
        if result["errors"]:
            sys.exit(f"{result['errors']} requests to {module} failed")
        served = result["rps"] * result["seconds"]
        return {
            "rps": result["rps"],
            "p99_ms": result["p99_ms"],
            "server_cpu_us_per_request": (procs.cpu_seconds(tree) - tree_before) / served * 1e6,
            "database_cpu_us_per_request": (procs.cpu_seconds(database) - database_before) / served * 1e6,
            "loadgen_cpu_us_per_request": result["loadgen_cpu_seconds"] / served * 1e6,
        }
    finally:
        server.terminate()
        server.wait(timeout=30)


def main():
    """Run the rounds and report each case's median against the bare endpoint."""
    database_url = run.postgres_url(SCHEMA)
    connection = psycopg2.connect(database_url)
    connection.autocommit = True
    connection.cursor().execute(f"CREATE TABLE {TABLE} (id bigserial PRIMARY KEY, body text)")
    connection.close()
    named = f"{database_url}&application_name={APPLICATION_NAME}"
    env = {**run.app_env(named), "FLOOR_DATABASE_URL": named}
    tokens = run.create_sources(run.app_env(database_url))
    requests_file = write_requests(run.stripe_requests(run.REQUEST_POOL, str(int(time.time()))))
    rounds = []
    try:
        for _ in range(ROUNDS):
            figures = {
                name: measure(module, env, "/integrations/receive/" + tokens["stripe"], requests_file, database_url)
                for name, module in CASES
            }
            for figure in figures.values():
                figure["ratio"] = figure["rps"] / figures["bare"]["rps"]
            rounds.append(figures)
            print(" ".join(f"{name} {figure['rps']:.0f} ({figure['ratio']:.3f})" for name, figure in figures.items()))
    finally:
        os.unlink(requests_file)
        run.clear_queue()
    report = {
        name: {key: round(statistics.median(figures[name][key] for figures in rounds), 3) for key in rounds[0][name]}
        for name, _ in CASES
    }
    report["rounds"] = rounds
    report["gunicorn_args"] = run.GUNICORN_ARGS
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    for name, _ in CASES:
        print(f"{name:>13}: " + ", ".join(f"{key} {value}" for key, value in report[name].items()))


if __name__ == "__main__":
    main()

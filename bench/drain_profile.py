"""How fast one process drains a backlog on PostgreSQL, and how many statements each event costs.

A short profile, not the benchmark (``bench/e2e.py`` measures the pipeline
under load): it accepts ``--events`` order events through the ingest path
(the two mappings of ``bench/e2e.py``), lets them wait in the pending set,
then times one ``jobs.drain`` in this process, counts the SQL statements
it sends and reads the CPU time the drain used, in this process and in its
PostgreSQL backend (from ``/proc``: figures a busy machine disturbs less
than the wall clock). ``--compare DIR`` runs the same drain from another checkout (a
copy of ``main``, say) and from this one, alternately, and prints both, so
that the figures come from one run on one machine::

    git archive main | tar -x -C /tmp/ks-main
    .venv/bin/python bench/drain_profile.py --compare /tmp/ks-main

``--profile FILE`` writes a cProfile of the drain (``python -m pstats FILE``),
``--show-statements`` counts its statements by shape, and ``--workers N``
drains with N real ``flask worker --burst`` processes instead (throughput
from the first event processed to the last, and how many batches conflicted).
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import json
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

from peewee import fn

ROOT = Path(__file__).resolve().parents[1]


def drain_once(events: int, profile: str | None, show_statements: bool = False, workers: int = 0) -> dict:
    """Accept ``events`` events, drain them here (or with ``workers`` worker processes); return the figures."""
    sys.path.insert(0, os.getcwd())
    from app import create_app
    from bench.e2e import MAPPINGS
    from bench.procs import cpu_seconds
    from bench.run import REDIS_URL, postgres_url
    from knock_sources import state, store
    from knock_sources.control import sources
    from knock_sources.store import control, schema
    from knock_sources.store.dataplane import Workflow
    from knock_sources.views.api.schemas import SourceBodySchema
    from knock_sources.worker import jobs

    schema_name = f"ks_drain_{uuid.uuid4().hex[:8]}"
    queue_name = f"ks-drain-{uuid.uuid4().hex[:8]}"
    app = create_app(
        {
            "DATABASE_URL": postgres_url(schema_name),
            "REDIS_URL": REDIS_URL,
            "QUEUE_NAME": queue_name,
            "SECRET_KEY": "bench-secret-key",
            "LOAD_PLUGIN_ENTRYPOINTS": False,
        }
    )
    app_state = app.extensions[state.EXTENSION]
    with app.app_context():
        schema.migrate(app.config["ENVIRONMENTS"])
        with store.db.connection_context():
            development = control.Environment.get(slug="development")
            Workflow.create(environment=development, key="receipt", name="Receipt")
            body = SourceBodySchema().load(
                {"name": "orders", "environment_settings": {"development": {"mappings": MAPPINGS}}}
            )
            source = sources.upsert_source(app_state, "orders", body)
            token = control.SourceEnvironment.get(source=source, environment=development).token
    client = app.test_client()
    for index in range(events):
        customer = {"id": f"cus_{index % 50}", "email": f"c{index % 50}@example.com"}
        order = {"type": "order.paid", "id": f"ord_{index}", "customer": customer, "amount": 4200}
        assert client.post(f"/integrations/receive/{token}", json=order).status_code == 204
    assert app_state.dispatcher.flush()

    if workers:
        return _drain_with_workers(app, app_state, workers, schema_name)
    statements = []
    database = store.db.obj
    execute_sql = database.execute_sql

    def counting(sql, params=None, *args, **kwargs):
        statements.append(sql)
        return execute_sql(sql, params, *args, **kwargs)

    profiler = cProfile.Profile() if profile else None
    with app.app_context(), store.db.connection_context():
        backend = [int(store.db.execute_sql("SELECT pg_backend_pid()").fetchone()[0])]
        database.execute_sql = counting
        started, cpu_started, backend_started = time.perf_counter(), time.process_time(), cpu_seconds(backend)
        if profiler:
            profiler.enable()
        drained = jobs.drain(app_state, app_state.queue)
        if profiler:
            profiler.disable()
        seconds = time.perf_counter() - started
        cpu, backend_cpu = time.process_time() - cpu_started, cpu_seconds(backend) - backend_started
        database.execute_sql = execute_sql
        processed = control.EventLog.select().where(control.EventLog.status == "processed").count()
        store.db.execute_sql(f"DROP SCHEMA {schema_name} CASCADE")
    if profiler:
        profiler.dump_stats(profile)
    app_state.queue.connection.delete(jobs.pending_key(app_state.queue), jobs.drain_flag_key(app_state.queue))
    if show_statements:
        shapes = collections.Counter(re.sub(r"SAVEPOINT \S+", "SAVEPOINT", sql)[:90] for sql in statements)
        for shape, count in shapes.most_common():
            print(f"{count / max(drained, 1):8.2f} per event  {shape}", file=sys.stderr)
    return {
        "code": str(Path(jobs.__file__).resolve().parents[2]),
        "events": drained,
        "processed": processed,
        "seconds": round(seconds, 3),
        "events_per_second": round(drained / seconds, 1),
        "statements_per_event": round(len(statements) / max(drained, 1), 2),
        "cpu_ms_per_event": round(1000 * cpu / max(drained, 1), 3),
        "postgres_cpu_ms_per_event": round(1000 * backend_cpu / max(drained, 1), 3),
    }


def _drain_with_workers(app, app_state, workers: int, schema_name: str) -> dict:
    """Let ``workers`` real ``flask worker --burst`` processes drain the queue together.

    Their throughput is measured from the first event processed to the
    last (not from their start-up), and their logs are searched for
    batches that conflicted with one another's.
    """
    from knock_sources import store
    from knock_sources.store import control
    from knock_sources.worker import jobs

    env = {
        **os.environ,
        **{f"KNOCK_SOURCES_{name}": str(app.config[name]) for name in ("DATABASE_URL", "REDIS_URL", "QUEUE_NAME")},
        "KNOCK_SOURCES_SECRET_KEY": app.config["SECRET_KEY"],
        "KNOCK_SOURCES_LOAD_PLUGIN_ENTRYPOINTS": "false",
        "KNOCK_SOURCES_WORKER_METRICS_BIND": "",
    }
    flask = str(Path(sys.executable).with_name("flask"))
    processes = [
        subprocess.Popen(
            [flask, "worker", "--burst"], cwd=os.getcwd(), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        for _ in range(workers)
    ]
    output = b"".join(process.communicate()[0] for process in processes).decode(errors="replace")
    with app.app_context(), store.db.connection_context():
        processed = control.EventLog.select().where(control.EventLog.status == "processed")
        first, last = processed.select(
            fn.MIN(control.EventLog.processed_at), fn.MAX(control.EventLog.processed_at)
        ).scalar(as_tuple=True)
        count = processed.count()
        store.db.execute_sql(f"DROP SCHEMA {schema_name} CASCADE")
    app_state.queue.connection.delete(jobs.pending_key(app_state.queue), jobs.drain_flag_key(app_state.queue))
    seconds = (last - first).total_seconds() if count > 1 else 0.0
    return {
        "code": str(Path(jobs.__file__).resolve().parents[2]),
        "workers": workers,
        "processed": count,
        "seconds": round(seconds, 3),
        "events_per_second": round(count / seconds, 1) if seconds else None,
        "conflicting_batches": output.count("conflicted with another"),
        "deadlocks_logged": output.count("deadlock detected"),
    }


def main():
    """Run one drain here, or compare two checkouts."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--profile", help="write a cProfile of the drain to this file")
    parser.add_argument("--compare", help="another checkout: drain from it and from this one, alternately")
    parser.add_argument("--show-statements", action="store_true", help="count the statements by shape")
    parser.add_argument("--workers", type=int, default=0, help="drain with this many flask worker processes instead")
    parser.add_argument("--rounds", type=int, default=2, help="drains per checkout with --compare")
    args = parser.parse_args()
    if not args.compare:
        print(json.dumps(drain_once(args.events, args.profile, args.show_statements, args.workers)))
        return
    results = []
    for _ in range(args.rounds):
        for checkout in (Path(args.compare).resolve(), ROOT):
            command = [sys.executable, str(ROOT / "bench" / "drain_profile.py"), "--events", str(args.events)]
            command += ["--workers", str(args.workers)]
            env = {**os.environ, "PYTHONPATH": str(checkout)}
            output = subprocess.run(command, cwd=checkout, env=env, capture_output=True, text=True, check=True)
            results.append(json.loads(output.stdout.strip().splitlines()[-1]))
            print(json.dumps(results[-1]), flush=True)


if __name__ == "__main__":
    main()

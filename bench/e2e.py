"""``make bench`` (second part): end-to-end throughput with real workers.

Events with two actions each (identify the user, trigger a workflow) are
posted to a custom source as fast as gunicorn accepts them for
``E2E_SECONDS``, while ``E2E_WORKERS`` ``flask worker`` processes run on the
same machine. Reports accepted and processed events per second, the largest
backlog seen, and the p50/p99 time from receipt to the last action, and
writes them to ``bench/results/e2e.json``.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rq import Queue  # noqa: E402

from bench import run  # noqa: E402
from bench.loadgen import build_request, run_client  # noqa: E402
from knock_sources.worker import jobs  # noqa: E402

SECONDS = float(os.environ.get("E2E_SECONDS", "10"))
WORKERS = int(os.environ.get("E2E_WORKERS", "2"))
RESULTS = ROOT / "bench" / "results" / "e2e.json"
MAPPINGS = [
    {
        "event_type": "order.paid",
        "action_type": "users_identify",
        "action_parameters": {"id": "body.customer.id", "email": "body.customer.email"},
    },
    {
        "event_type": "order.paid",
        "action_type": "workflows_trigger",
        "action_parameters": {"key": "receipt", "recipients": "body.customer.id", "data": "body"},
    },
]


def create_source(env: dict) -> str:
    """Create the workflow and a custom source with two mappings; return its token."""
    os.environ.update(env)
    from app import create_app
    from knock_sources import store
    from knock_sources.control import sources
    from knock_sources.store import control, schema
    from knock_sources.store.dataplane import Workflow
    from knock_sources.views.api.schemas import SourceBodySchema

    app = create_app()
    with app.app_context():
        schema.migrate(app.config["ENVIRONMENTS"])
        with store.db.connection_context():
            development = control.Environment.get(slug="development")
            Workflow.create(environment=development, key="receipt", name="Receipt")
            source_body = {"name": "orders", "environment_settings": {"development": {"mappings": MAPPINGS}}}
            body = SourceBodySchema().load(source_body)
            source = sources.upsert_source(app.extensions["knock_sources"], "orders", body)
            return control.SourceEnvironment.get(source=source, environment=development).token


def order_requests(path: str, count: int, seed: str) -> list[bytes]:
    """Build ``count`` order events for a handful of customers."""
    requests = []
    for index in range(count):
        customer = {"id": f"cus_{index % 50}", "email": f"c{index % 50}@example.com"}
        body = json.dumps({"type": "order.paid", "id": f"ord_{seed}_{index}", "customer": customer, "amount": 4200})
        requests.append(build_request(path, body.encode(), {}, "127.0.0.1"))
    return requests


def client_main(args):
    """One load-generating process."""
    port, path = args
    return run_client("127.0.0.1", port, order_requests(path, 20000, uuid.uuid4().hex[:8]), 4, SECONDS, 0)


def backlog(connection) -> int:
    """Events waiting: ids in the pending set."""
    return connection.zcard(jobs.pending_key(Queue(run.QUEUE, connection=connection)))


def main():
    """Run the end-to-end benchmark and report."""
    env = run.app_env(run.postgres_url())
    token = create_source(env)
    path = f"/integrations/receive/{token}"
    connection = redis.Redis.from_url(run.REDIS_URL)
    connection.delete(f"rq:queue:{run.QUEUE}", jobs.pending_key(Queue(run.QUEUE, connection=connection)))
    flask = str(Path(sys.executable).with_name("flask"))
    workers = [
        subprocess.Popen([flask, "worker"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(WORKERS)
    ]
    server, port = run.serve("wsgi:app", env)
    peak = 0
    try:
        with multiprocessing.Pool(1) as pool:
            pending = pool.map_async(client_main, [(port, path)])
            while not pending.ready():
                peak = max(peak, backlog(connection))
                time.sleep(0.2)
            accepted = len(pending.get()[0][0])
        deadline = time.monotonic() + 120
        while backlog(connection) and time.monotonic() < deadline:
            peak = max(peak, backlog(connection))
            time.sleep(0.2)
    finally:
        server.terminate()
        server.wait(timeout=30)
    report = summarise(env, accepted, peak)
    for worker in workers:
        worker.terminate()
        worker.wait(timeout=30)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    for key, value in report.items():
        print(f"{key:>28}: {value}")


def summarise(env: dict, accepted: int, peak: int) -> dict:
    """Read the event log: throughput and receipt-to-last-action latency."""
    os.environ.update(env)
    from app import create_app
    from knock_sources import store
    from knock_sources.store.control import EventLog

    app = create_app()
    deadline = time.monotonic() + 120
    with app.app_context(), store.db.connection_context():
        while EventLog.select().where(EventLog.status.in_(("pending", "processing"))).exists():
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
        rows = list(EventLog.select(EventLog.received_at, EventLog.processed_at, EventLog.status))
    done = [row for row in rows if row.processed_at is not None]
    latencies = sorted((row.processed_at - row.received_at).total_seconds() for row in done)
    span = (max(row.processed_at for row in done) - min(row.received_at for row in done)).total_seconds()
    quantiles = statistics.quantiles(latencies, n=100)
    return {
        "accepted_per_second": round(accepted / SECONDS, 1),
        "processed_per_second": round(len(done) / span, 1),
        "events": len(rows),
        "processed": sum(1 for row in done if row.status == "processed"),
        "peak_backlog": peak,
        "p50_receipt_to_last_action_ms": round(quantiles[49] * 1000, 1),
        "p99_receipt_to_last_action_ms": round(quantiles[98] * 1000, 1),
        "workers": WORKERS,
    }


if __name__ == "__main__":
    main()

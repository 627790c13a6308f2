"""``make bench`` (second part): the end-to-end rate the pipeline sustains, open loop.

Events with two actions each (identify the user, trigger a workflow) are
offered to a custom source at fixed rates (``loadgen.offer``: requests leave
on schedule whatever the server does), each rate for ``E2E_STEP_SECONDS``,
while ``E2E_WORKERS`` ``flask worker`` processes share the machine's cores
with gunicorn. The rates are fractions of the bare-Flask baseline measured
with wrk in the same run (``E2E_FRACTIONS``; the baseline is measured
before and after the ladder, and the higher figure is the ratio's). A rate is *sustained* when
every request was accepted on time, the backlog at the end of the step is
under two seconds' worth of events and the p99 from receipt to the last
action (``processed_at - received_at`` of the event log: the worker sets
``processed_at`` after the event's last action) is under 2 s. The ladder
stops at the first rate that is not sustained.

Then the memory check, on freshly started processes: events are offered
at the first rate that was not sustained (so the workers run flat out),
pausing whenever ``MEMORY_BACKLOG_CAP`` events wait, until 100,000 have been
processed; the resident memory of every gunicorn worker and ``flask
worker`` is read after 10,000 and after 100,000 events.

Writes ``bench/results/e2e.json`` (``sustained_events_per_second``,
``baseline_rps``, ``e2e_ratio``, the p50/p99 and peak backlog at that rate,
every step, the memory figures) and draws ``docs/benchmarks/e2e.png``.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import psycopg2
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rq import Queue  # noqa: E402

from bench import procs, run  # noqa: E402
from bench.loadgen import build_request, offer  # noqa: E402
from bench.wrk import write_requests  # noqa: E402
from knock_sources.worker import jobs  # noqa: E402

STEP_SECONDS = float(os.environ.get("E2E_STEP_SECONDS", "30"))
FRACTIONS = [
    float(value)
    for value in os.environ.get(
        "E2E_FRACTIONS", "0.025,0.05,0.075,0.1,0.125,0.15,0.165,0.18,0.2,0.25,0.3,0.4,0.5"
    ).split(",")
]
#: Seconds of load before the first step, not measured: processes start cold (imports, caches, pools).
WARMUP_SECONDS = float(os.environ.get("E2E_WARMUP_SECONDS", "10"))
#: The memory phase keeps the workers busy but stops offering while this many events wait.
MEMORY_BACKLOG_CAP = 2000
WORKERS = int(os.environ.get("E2E_WORKERS", "2"))
MEMORY_EVENTS = (int(os.environ.get("E2E_MEMORY_FIRST", "10000")), int(os.environ.get("E2E_MEMORY_LAST", "100000")))
P99_BOUND_SECONDS = 2.0
#: How long the events of a step may take to finish after it before the run gives up on them.
SETTLE_SECONDS = 120
RESULTS = ROOT / "bench" / "results" / "e2e.json"
CHART = ROOT / "docs" / "benchmarks" / "e2e.png"
CUSTOMERS = 5000
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


def order_bodies(count: int, seed: str) -> list[bytes]:
    """``count`` distinct order events for ``CUSTOMERS`` customers."""
    bodies = []
    for index in range(count):
        customer = {"id": f"cus_{index % CUSTOMERS}", "email": f"c{index % CUSTOMERS}@example.com"}
        order = {"type": "order.paid", "id": f"ord_{seed}_{index}", "customer": customer, "amount": 4200}
        bodies.append(json.dumps(order, separators=(",", ":")).encode())
    return bodies


def offer_main(args):
    """The generator's process: build the requests, then offer them at ``rate``."""
    port, path, rate, seconds = args
    bodies = order_bodies(min(int(rate * seconds) + 1, 200_000), uuid.uuid4().hex[:8])
    requests = [build_request(path, body, {}, "127.0.0.1") for body in bodies]
    return offer("127.0.0.1", port, requests, rate, seconds)


class EventLogReader:
    """Reads the benchmark's event log directly: backlog and latencies."""

    def __init__(self, database_url: str):
        self.connection = psycopg2.connect(database_url)
        self.connection.autocommit = True

    def _one(self, sql: str, params=()):
        with self.connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchone()

    def backlog(self) -> int:
        """Events accepted and not finished."""
        return self._one("SELECT count(*) FROM ks_event_log WHERE status IN ('pending', 'processing')")[0]

    def processed(self) -> int:
        """Events finished since the run started."""
        return self._one("SELECT count(*) FROM ks_event_log WHERE processed_at IS NOT NULL")[0]

    def unfinished_between(self, start: datetime, end: datetime) -> int:
        """Events received in ``[start, end)`` not finished yet."""
        sql = "SELECT count(*) FROM ks_event_log WHERE received_at >= %s AND received_at < %s AND processed_at IS NULL"
        return self._one(sql, (start, end))[0]

    def latencies(self, start: datetime, end: datetime) -> dict:
        """p50/p99 receipt to last action of the events received in ``[start, end)``, and their statuses."""
        sql = """
            SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM processed_at - received_at)),
                   percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM processed_at - received_at)),
                   count(*), count(*) FILTER (WHERE status = 'processed')
            FROM ks_event_log WHERE received_at >= %s AND received_at < %s AND processed_at IS NOT NULL
        """
        p50, p99, finished, processed = self._one(sql, (start, end))
        return {"p50_s": p50, "p99_s": p99, "finished": finished, "processed": processed}


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def wait_until(predicate, seconds: float, sample=None) -> bool:
    """Poll ``predicate`` every 0.5 s for up to ``seconds``; call ``sample`` each time."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if sample:
            sample()
        if predicate():
            return True
        time.sleep(0.5)
    return False


def step(pool, reader: EventLogReader, port: int, path: str, rate: float) -> dict:
    """Offer ``rate`` events/s for ``STEP_SECONDS``; return whether it was sustained, and the figures."""
    wait_until(lambda: reader.backlog() == 0, SETTLE_SECONDS)
    peak = [0]
    samples = []

    def sample():
        backlog = reader.backlog()
        peak[0] = max(peak[0], backlog)
        samples.append(backlog)

    start = utcnow()
    pending = pool.apply_async(offer_main, [(port, path, rate, STEP_SECONDS)])
    while not pending.ready():
        sample()
        time.sleep(0.5)
    offered = pending.get()
    end = utcnow()
    final_backlog = samples[-1] if samples else 0
    settled = wait_until(lambda: reader.unfinished_between(start, end) == 0, SETTLE_SECONDS, sample)
    figures = reader.latencies(start, end)
    achieved = offered.succeeded / offered.seconds
    sustained = (
        settled
        and not offered.failures
        and achieved >= 0.95 * rate
        and final_backlog <= rate * P99_BOUND_SECONDS
        and figures["p99_s"] is not None
        and figures["p99_s"] < P99_BOUND_SECONDS
    )
    return {
        "offered_per_second": round(rate, 1),
        "accepted_per_second": round(achieved, 1),
        "failed_requests": len(offered.failures),
        "late_requests": offered.late,
        "p50_receipt_to_last_action_ms": _ms(figures["p50_s"]),
        "p99_receipt_to_last_action_ms": _ms(figures["p99_s"]),
        "peak_backlog": peak[0],
        "backlog_at_end": final_backlog,
        "settled": settled,
        "sustained": bool(sustained),
        "loadgen_cpu_seconds": round(offered.cpu_seconds, 2),
        "seconds": round(offered.seconds, 1),
    }


def _ms(seconds):
    return None if seconds is None else round(seconds * 1000, 1)


def measure_memory(pool, reader: EventLogReader, env: dict, path: str, rate: float) -> dict:
    """RSS of each web worker and ``flask worker``, freshly started, after the first and the last ``MEMORY_EVENTS``."""
    readings = {}
    with pipeline(env) as (server, port, workers):
        already = reader.processed()
        for target in MEMORY_EVENTS:
            while reader.processed() - already < target:
                if reader.backlog() < MEMORY_BACKLOG_CAP:
                    pool.apply(offer_main, [(port, path, rate, 5.0)])
                else:
                    time.sleep(0.5)
            readings[target] = {
                "web_workers_mib": [round(procs.rss_mib(pid), 1) for pid in procs.children(server.pid)],
                "flask_workers_mib": [round(procs.rss_mib(worker.pid), 1) for worker in workers],
            }
    first, last = MEMORY_EVENTS
    growth = {
        kind: round(max(b / a for a, b in zip(readings[first][kind], readings[last][kind], strict=True)) - 1, 3)
        for kind in ("web_workers_mib", "flask_workers_mib")
    }
    return {
        f"rss_after_{first}": readings[first],
        f"rss_after_{last}": readings[last],
        "largest_rss_growth": growth,
        "rate": round(rate, 1),
    }


@contextmanager
def pipeline(env: dict):
    """Serve the app and start ``WORKERS`` ``flask worker`` processes; yield ``(server, port, workers)``."""
    flask = str(Path(sys.executable).with_name("flask"))
    workers = [
        subprocess.Popen([flask, "worker"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(WORKERS)
    ]
    server, port = run.serve("wsgi:app", env)
    try:
        yield server, port, workers
    finally:
        server.terminate()
        server.wait(timeout=30)
        for worker in workers:
            worker.terminate()
            worker.wait(timeout=30)


def draw(steps: list[dict], baseline_rps: float) -> None:
    """Throughput and p99 against the offered rate, to ``CHART``."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    offered = [entry["offered_per_second"] for entry in steps]
    figure, (rates, latency) = pyplot.subplots(1, 2, figsize=(10, 4))
    rates.plot(offered, [entry["accepted_per_second"] for entry in steps], "o-", label="accepted events/s")
    rates.plot(offered, offered, ":", color="grey", label="offered")
    rates.set_xlabel("offered events/s")
    rates.set_ylabel("events/s")
    rates.set_title(f"Throughput and backlog (bare Flask: {baseline_rps:,.0f} req/s)")
    backlog = rates.twinx()
    backlog.plot(offered, [entry["peak_backlog"] for entry in steps], "s--", color="tab:red", label="peak backlog")
    backlog.set_ylabel("events waiting (peak)")
    rates.legend(loc="upper left")
    backlog.legend(loc="lower right")
    latency.plot(offered, [entry["p99_receipt_to_last_action_ms"] or 0 for entry in steps], "o-", label="p99")
    latency.plot(offered, [entry["p50_receipt_to_last_action_ms"] or 0 for entry in steps], "s-", label="p50")
    latency.axhline(P99_BOUND_SECONDS * 1000, color="red", linestyle=":", label="2 s bound")
    latency.set_yscale("log")
    latency.set_xlabel("offered events/s")
    latency.set_ylabel("receipt to last action, ms")
    latency.set_title(f"Latency, 2 actions per event, {WORKERS} workers")
    latency.legend()
    figure.tight_layout()
    CHART.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(CHART, dpi=100)


def measure_baseline(env: dict) -> dict:
    """The bare Flask endpoint under wrk, with the same bodies and gunicorn settings."""
    server, port = run.serve("bench.bare_app:app", env)
    requests_file = write_requests([({}, body) for body in order_bodies(5000, "baseline")])
    try:
        return run.measure(server, f"http://127.0.0.1:{port}/integrations/receive/baseline", requests_file)
    finally:
        os.unlink(requests_file)
        server.terminate()
        server.wait(timeout=30)


def main():
    """Run the end-to-end benchmark and report."""
    database_url = run.postgres_url()
    env = run.app_env(database_url)
    path = f"/integrations/receive/{create_source(env)}"
    connection = redis.Redis.from_url(run.REDIS_URL)
    connection.delete(f"rq:queue:{run.QUEUE}", jobs.pending_key(Queue(run.QUEUE, connection=connection)))
    # Measured before and after the ladder; the higher counts, so that a
    # baseline slowed by something else on the machine cannot flatter the ratio.
    baselines = [measure_baseline(env)]
    reader = EventLogReader(database_url)
    steps = []
    with multiprocessing.Pool(1) as pool:
        with pipeline(env) as (_, port, _workers):
            pool.apply(offer_main, [(port, path, FRACTIONS[0] * baselines[0]["rps"], WARMUP_SECONDS)])
            for fraction in FRACTIONS:
                entry = step(pool, reader, port, path, fraction * baselines[0]["rps"])
                steps.append(entry)
                print(json.dumps(entry), flush=True)
                if not entry["sustained"]:
                    break
        sustained = [entry for entry in steps if entry["sustained"]]
        best = sustained[-1] if sustained else None
        memory_rate = steps[-1]["offered_per_second"]
        memory = measure_memory(pool, reader, env, path, memory_rate)
    baselines.append(measure_baseline(env))
    baseline_rps = max(entry["rps"] for entry in baselines)
    sustained_rate = best["offered_per_second"] if best else 0.0
    report = {
        "sustained_events_per_second": sustained_rate,
        "baseline_rps": round(baseline_rps, 1),
        "baseline_rps_before_and_after": [round(entry["rps"], 1) for entry in baselines],
        "e2e_ratio": round(sustained_rate / baseline_rps, 3),
        "p50_receipt_to_last_action_ms": best["p50_receipt_to_last_action_ms"] if best else None,
        "p99_receipt_to_last_action_ms": best["p99_receipt_to_last_action_ms"] if best else None,
        "peak_backlog": best["peak_backlog"] if best else None,
        # Of the whole machine's CPU while the generator offered the sustained rate.
        "loadgen_cpu_share_at_sustained": (
            round(best["loadgen_cpu_seconds"] / (best["seconds"] * os.cpu_count()), 3) if best else None
        ),
        "workers": WORKERS,
        "step_seconds": STEP_SECONDS,
        "gunicorn_args": run.GUNICORN_ARGS,
        "steps": steps,
        "memory": memory,
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    draw(steps, baseline_rps)
    for key, value in report.items():
        if key not in ("steps", "memory"):
            print(f"{key:>32}: {value}")
    print(json.dumps(memory, indent=2))


if __name__ == "__main__":
    main()

"""``make bench``: ingest throughput against a bare Flask endpoint, side by side.

Needs PostgreSQL (127.0.0.1:5432, database ``test``) and Redis
(127.0.0.1:6379). Both apps run under gunicorn with the settings the README
recommends (``GUNICORN_ARGS`` overrides); the ingest endpoint belongs to a
Stripe source and every request carries a distinct event id signed with
Stripe's scheme. A second case sends one request at a time to a custom
source with and without a typical HMAC-verifying script; the p50 difference
is the script's overhead. Prints requests/s, the ratio and latencies, and
writes them to ``bench/results/latest.json``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import multiprocessing
import os
import shlex
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg2
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rq import Queue  # noqa: E402

from bench.loadgen import build_request, run_client  # noqa: E402
from knock_sources.worker import jobs  # noqa: E402

GUNICORN_ARGS = os.environ.get("GUNICORN_ARGS", "--workers 4 --worker-class gthread --threads 4 --keep-alive 30")
DURATION = float(os.environ.get("BENCH_SECONDS", "10"))
WARMUP = float(os.environ.get("BENCH_WARMUP_SECONDS", "2"))
CLIENTS = int(os.environ.get("BENCH_CLIENTS", "2"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "8"))
REQUESTS_PER_CLIENT = int(os.environ.get("BENCH_REQUESTS", "40000"))
SIGNING_SECRET = "whsec_" + "b" * 32
SCHEMA = "ks_bench"
QUEUE = "ks-bench"
REDIS_URL = "redis://127.0.0.1:6379/0"
RESULTS = ROOT / "bench" / "results" / "latest.json"


def postgres_url(schema: str = SCHEMA) -> str:
    """Create a fresh schema for the run and return a URL using it."""
    for user in ("postgres", "root"):
        try:
            connection = psycopg2.connect(host="127.0.0.1", dbname="test", user=user, connect_timeout=3)
        except psycopg2.OperationalError:
            continue
        connection.autocommit = True
        connection.cursor().execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}")
        connection.close()
        return f"postgresql://{user}@127.0.0.1:5432/test?options=-csearch_path%3D{schema}"
    sys.exit("The benchmark needs PostgreSQL at 127.0.0.1:5432 (database test).")


def app_env(database_url: str) -> dict:
    """The environment of the benchmarked app's processes."""
    return {
        **os.environ,
        "KNOCK_SOURCES_DATABASE_URL": database_url,
        "KNOCK_SOURCES_REDIS_URL": REDIS_URL,
        "KNOCK_SOURCES_QUEUE_NAME": QUEUE,
        "KNOCK_SOURCES_SECRET_KEY": "bench-secret-key",
        "KNOCK_SOURCES_LOAD_PLUGIN_ENTRYPOINTS": "false",
    }


# A typical custom-source script: HMAC-SHA256 of the raw body, secret in vars.
HMAC_SCRIPT = """
export async function main({ headers, rawBody, vars }) {
  const expected = crypto.createHmac("sha256", vars.BENCH_SECRET).update(rawBody).digest("hex");
  const given = headers["x-signature"] || "";
  return { verified: given.length === expected.length &&
    crypto.timingSafeEqual(Buffer.from(given), Buffer.from(expected)) };
}
"""


def create_sources(env: dict) -> dict:
    """Migrate the schema; create a Stripe source and two custom ones (with and without a script).

    Returns their tokens by name.
    """
    os.environ.update(env)
    from app import create_app
    from knock_sources import store
    from knock_sources.control import sources, variables
    from knock_sources.store import control, schema

    app = create_app()
    state = app.extensions["knock_sources"]
    with app.app_context():
        schema.migrate(app.config["ENVIRONMENTS"])
        with store.db.connection_context():
            variables.upsert_variable(state.keyring, "BENCH_SECRET", {"value": SIGNING_SECRET, "secret": True})
            script = {
                "preprocess_script": {"language": "javascript", "source": HMAC_SCRIPT},
                "enforce_verification": True,
            }
            tokens = {}
            for key, provider, settings in (
                ("stripe", "stripe", {"signing_secret": SIGNING_SECRET}),
                ("plain", None, {}),
                ("scripted", None, script),
            ):
                body = {
                    "name": key,
                    "description": None,
                    "preconfigured_provider": provider,
                    "environment_settings": {"development": {"settings": settings, "mappings": None}},
                }
                source = sources.upsert_source(state, key, body)
                development = control.Environment.get(slug="development")
                tokens[key] = control.SourceEnvironment.get(source=source, environment=development).token
            return tokens


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve(module: str, env: dict) -> tuple[subprocess.Popen, int]:
    """Start gunicorn for ``module`` and wait until it accepts connections."""
    port = free_port()
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    command = [gunicorn, "--bind", f"127.0.0.1:{port}", *shlex.split(GUNICORN_ARGS), module]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while True:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return process, port
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            sys.exit(f"gunicorn did not start for {module}")
        time.sleep(0.1)


def stripe_requests(path: str, count: int, seed: str) -> list[bytes]:
    """Build ``count`` Stripe-signed requests, each with its own event id."""
    from plugins.stripe import StripeProvider

    provider = StripeProvider()
    example = provider.example_payloads["invoice.paid"][0]["body"]
    now = int(time.time())
    requests = []
    for index in range(count):
        body = json.dumps({**example, "id": f"evt_{seed}_{index}", "created": now}).encode()
        headers = provider.sign(body, SIGNING_SECRET, timestamp=now)
        requests.append(build_request(path, body, headers, "127.0.0.1"))
    return requests


def hmac_requests(path: str, count: int, seed: str) -> list[bytes]:
    """Build ``count`` requests carrying ``X-Signature``, the hex HMAC of their body."""
    requests = []
    for index in range(count):
        body = json.dumps({"type": "order.paid", "id": f"ord_{seed}_{index}", "amount": 1200}).encode()
        signature = hmac.new(SIGNING_SECRET.encode(), body, hashlib.sha256).hexdigest()
        requests.append(build_request(path, body, {"X-Signature": signature}, "127.0.0.1"))
    return requests


def client_main(args):
    """One load-generating process."""
    port, path, seed, build, connections = args
    requests = build(path, REQUESTS_PER_CLIENT, seed)
    return run_client("127.0.0.1", port, requests, connections, DURATION, WARMUP)


def measure(port: int, path: str, build=stripe_requests, clients=CLIENTS, connections=CONNECTIONS) -> dict:
    """Load the server at ``port`` from ``clients`` processes; return rps and latencies."""
    with multiprocessing.Pool(clients) as pool:
        jobs = [(port, path, uuid.uuid4().hex[:8], build, connections) for _ in range(clients)]
        results = pool.map(client_main, jobs)
    latencies = sorted(latency for result in results for latency in result[0])
    errors = [status for result in results for status in result[1]]
    if errors:
        sys.exit(f"{len(errors)} requests failed, e.g. HTTP {errors[0]}")
    quantiles = statistics.quantiles(latencies, n=100)
    return {"rps": len(latencies) / DURATION, "p50_ms": quantiles[49] * 1000, "p99_ms": quantiles[98] * 1000}


def main():
    """Run the ingest benchmark and report."""
    try:
        redis.Redis.from_url(REDIS_URL).ping()
    except redis.RedisError:
        sys.exit("The benchmark needs Redis at 127.0.0.1:6379.")
    env = app_env(postgres_url())
    tokens = create_sources(env)
    path = f"/integrations/receive/{tokens['stripe']}"
    results = {}
    for name, module in (("baseline", "bench.bare_app:app"), ("ingest", "wsgi:app")):
        process, port = serve(module, env)
        try:
            results[name] = measure(port, path)
            if name == "ingest":
                # One request at a time, so the p50 difference is the script's own cost.
                for source in ("plain", "scripted"):
                    source_path = f"/integrations/receive/{tokens[source]}"
                    results[source] = measure(port, source_path, hmac_requests, clients=1, connections=1)
        finally:
            process.terminate()
            process.wait(timeout=30)
    connection = redis.Redis.from_url(REDIS_URL)
    queue = Queue(QUEUE, connection=connection)
    connection.delete(f"rq:queue:{QUEUE}", jobs.pending_key(queue), jobs.drain_flag_key(queue))
    report = {
        "ingest_rps": round(results["ingest"]["rps"], 1),
        "baseline_rps": round(results["baseline"]["rps"], 1),
        "ratio": round(results["ingest"]["rps"] / results["baseline"]["rps"], 3),
        "p50_ms": round(results["ingest"]["p50_ms"], 2),
        "p99_ms": round(results["ingest"]["p99_ms"], 2),
        "baseline_p50_ms": round(results["baseline"]["p50_ms"], 2),
        "baseline_p99_ms": round(results["baseline"]["p99_ms"], 2),
        "script_overhead_p50_ms": round(results["scripted"]["p50_ms"] - results["plain"]["p50_ms"], 3),
        "plain_p50_ms": round(results["plain"]["p50_ms"], 3),
        "scripted_p50_ms": round(results["scripted"]["p50_ms"], 3),
        "gunicorn_args": GUNICORN_ARGS,
        # gunicorn reads gunicorn.conf.py: Prometheus multiprocess metrics are on unless this is false.
        "metrics_enabled": os.environ.get("KNOCK_SOURCES_METRICS_ENABLED", "true"),
        "clients": CLIENTS,
        "connections_per_client": CONNECTIONS,
        "seconds": DURATION,
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    for key, value in report.items():
        print(f"{key:>24}: {value}")


if __name__ == "__main__":
    main()

"""``make bench``: ingest throughput against a bare Flask endpoint, side by side.

Needs PostgreSQL (127.0.0.1:5432, database ``test``), Redis
(127.0.0.1:6379) and wrk. Both apps run under gunicorn with the settings the
README recommends (``GUNICORN_ARGS`` overrides); the ingest endpoint belongs
to a Stripe source and every request carries a distinct event id signed with
Stripe's scheme. The bare endpoint is measured before and after the app, and
the higher figure counts. wrk loads each for ``BENCH_SECONDS`` after a warm-up; the
CPU time of the server's processes and of wrk are read in the same interval,
so the load generator's share is reported with the figures. A second case
sends one request at a time to a custom source with and without a typical
HMAC-verifying script; the p50 ratio is the script's overhead. Prints
requests/s, the ratios and latencies, and writes them to
``bench/results/latest.json``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import psycopg2
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rq import Queue  # noqa: E402

from bench import procs  # noqa: E402
from bench.wrk import run_wrk, write_requests  # noqa: E402
from knock_sources.worker import jobs  # noqa: E402

GUNICORN_ARGS = os.environ.get("GUNICORN_ARGS", "--workers 2 --worker-class gthread --threads 8 --keep-alive 30")
DURATION = float(os.environ.get("BENCH_SECONDS", "10"))
WARMUP = float(os.environ.get("BENCH_WARMUP_SECONDS", "2"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "16"))
#: Distinct requests wrk cycles through (each with its own event id and signature).
REQUEST_POOL = int(os.environ.get("BENCH_REQUESTS", "20000"))
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


def clear_queue() -> None:
    """Drop what the benchmark's servers pushed to its RQ queue (no worker ran to take it)."""
    connection = redis.Redis.from_url(REDIS_URL)
    queue = Queue(QUEUE, connection=connection)
    connection.delete(f"rq:queue:{QUEUE}", jobs.pending_key(queue), jobs.drain_flag_key(queue))


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


def stripe_requests(count: int, seed: str) -> list[tuple[dict, bytes]]:
    """Build ``count`` Stripe-signed requests, each with its own event id."""
    from plugins.stripe import StripeProvider

    provider = StripeProvider()
    example = provider.example_payloads["invoice.paid"][0]["body"]
    now = int(time.time())
    requests = []
    for index in range(count):
        body = json.dumps({**example, "id": f"evt_{seed}_{index}", "created": now}).encode()
        requests.append((provider.sign(body, SIGNING_SECRET, timestamp=now), body))
    return requests


def hmac_requests(count: int, seed: str) -> list[tuple[dict, bytes]]:
    """Build ``count`` requests carrying ``X-Signature``, the hex HMAC of their body."""
    requests = []
    for index in range(count):
        body = json.dumps({"type": "order.paid", "id": f"ord_{seed}_{index}", "amount": 1200}).encode()
        signature = hmac.new(SIGNING_SECRET.encode(), body, hashlib.sha256).hexdigest()
        requests.append(({"X-Signature": signature}, body))
    return requests


def measure(server: subprocess.Popen, url: str, requests_file: str, connections=CONNECTIONS, threads=2) -> dict:
    """Warm ``url`` up, then load it with wrk; return rps, latencies and both sides' CPU time."""
    run_wrk(url, requests_file, seconds=WARMUP, connections=connections, threads=threads)
    pids = procs.tree(server.pid)
    server_before = procs.cpu_seconds(pids)
    result = run_wrk(url, requests_file, seconds=DURATION, connections=connections, threads=threads)
    if result["errors"]:
        sys.exit(f"{result['errors']} requests to {url} failed")
    server_cpu = procs.cpu_seconds(pids) - server_before
    result["server_cpu_us_per_request"] = server_cpu / (result["rps"] * result["seconds"]) * 1e6
    result["loadgen_cpu_share"] = result["loadgen_cpu_seconds"] / (result["loadgen_cpu_seconds"] + server_cpu)
    return result


def main():
    """Run the ingest benchmark and report."""
    try:
        redis.Redis.from_url(REDIS_URL).ping()
    except redis.RedisError:
        sys.exit("The benchmark needs Redis at 127.0.0.1:6379.")
    env = app_env(postgres_url())
    tokens = create_sources(env)
    seed = str(int(time.time()))
    stripe_file = write_requests(stripe_requests(REQUEST_POOL, seed))
    hmac_file = write_requests(hmac_requests(REQUEST_POOL, seed))
    results = {}
    try:
        # The baseline before and after: the higher counts, so that a moment of
        # noise on the machine cannot flatter the ratio.
        runs = (("baseline", "bench.bare_app:app"), ("ingest", "wsgi:app"), ("baseline_after", "bench.bare_app:app"))
        for name, module in runs:
            process, port = serve(module, env)
            base = f"http://127.0.0.1:{port}/integrations/receive/"
            try:
                results[name] = measure(process, base + tokens["stripe"], stripe_file)
                if name == "ingest":
                    # One request at a time, so the p50 difference is the script's own cost.
                    for source in ("plain", "scripted"):
                        results[source] = measure(process, base + tokens[source], hmac_file, connections=1, threads=1)
            finally:
                process.terminate()
                process.wait(timeout=30)
    finally:
        os.unlink(stripe_file)
        os.unlink(hmac_file)
    clear_queue()
    ingest = results["ingest"]
    baseline = max(results["baseline"], results["baseline_after"], key=lambda result: result["rps"])
    report = {
        "ingest_rps": round(ingest["rps"], 1),
        "baseline_rps": round(baseline["rps"], 1),
        "baseline_rps_before_and_after": [round(results[name]["rps"], 1) for name in ("baseline", "baseline_after")],
        "ratio": round(ingest["rps"] / baseline["rps"], 3),
        "p50_ms": round(ingest["p50_ms"], 2),
        "p99_ms": round(ingest["p99_ms"], 2),
        "baseline_p50_ms": round(baseline["p50_ms"], 2),
        "baseline_p99_ms": round(baseline["p99_ms"], 2),
        "ingest_cpu_us_per_request": round(ingest["server_cpu_us_per_request"], 1),
        "baseline_cpu_us_per_request": round(baseline["server_cpu_us_per_request"], 1),
        "loadgen_cpu_share_ingest": round(ingest["loadgen_cpu_share"], 3),
        "loadgen_cpu_share_baseline": round(baseline["loadgen_cpu_share"], 3),
        "plain_p50_ms": round(results["plain"]["p50_ms"], 3),
        "scripted_p50_ms": round(results["scripted"]["p50_ms"], 3),
        "script_ratio": round(results["scripted"]["p50_ms"] / results["plain"]["p50_ms"], 3),
        "script_overhead_p50_ms": round(results["scripted"]["p50_ms"] - results["plain"]["p50_ms"], 3),
        "gunicorn_args": GUNICORN_ARGS,
        # gunicorn reads gunicorn.conf.py: Prometheus multiprocess metrics are on unless this is false.
        "metrics_enabled": os.environ.get("KNOCK_SOURCES_METRICS_ENABLED", "true"),
        "connections": CONNECTIONS,
        "seconds": DURATION,
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    for key, value in report.items():
        print(f"{key:>28}: {value}")


if __name__ == "__main__":
    main()

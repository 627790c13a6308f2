"""CPU cost per ingest request, robust to a busy machine: ``python bench/cpu.py [--compare REV]``.

Wall-clock throughput swings with whatever else the cores run; the CPU time a
process spends per request does not (much). This drives the WSGI apps
in-process through the same callable gunicorn calls (``app(environ,
start_response)``) and reads the process's CPU time (every thread: the
dispatcher's pushes to Redis count) per request:

- ``bare``: the bare Flask endpoint of ``make bench`` (``bench/bare_app.py``);
- ``ingest``: the Stripe source of ``make bench`` (a distinct signed event per request);
- ``bare_threads``, ``ingest_threads``: the same from ``--threads`` threads
  at once, as a gthread worker serves them;
- ``plain`` and ``scripted``: the custom source without and with the HMAC
  script of ``make bench``, one request at a time like the benchmark's
  script case; the script host's CPU time and the wall-clock p50 are
  reported too.

Each case runs ``--rounds`` times, interleaved, and the least loaded round
counts. gunicorn's own per-request cost (parsing, writing the response) is
the same for every app and not included. Needs the PostgreSQL and Redis of
``make bench``. ``--compare REV`` measures the code of git revision ``REV``
and of the working tree in alternating rounds and prints both side by side;
``--profile FILE`` writes a cProfile of the ingest case. Writes
``bench/results/cpu.json``.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import hmac
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# ``--code DIR``: measure the code in DIR (an exported revision) instead of this tree's.
CODE = Path(sys.argv[sys.argv.index("--code") + 1]) if "--code" in sys.argv else ROOT
sys.path.insert(0, str(CODE))
# As gunicorn.conf.py does, before prometheus-client is imported: multiprocess counters.
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="knock-sources-cpu-metrics-"))

from bench import run  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "cpu.json"
WARMUP = 300
CASES = ("bare", "ingest", "bare_threads", "ingest_threads", "plain", "scripted")


def environ_for(path: str, body: bytes, headers: dict) -> dict:
    """The WSGI environ gunicorn would build for a POST of ``body`` to ``path``."""
    environ = {
        "REQUEST_METHOD": "POST",
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "RAW_URI": path,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_PORT": "50000",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "HTTP_HOST": "127.0.0.1:8000",
        "HTTP_USER_AGENT": "bench-cpu",
        "HTTP_ACCEPT": "*/*",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    for name, value in headers.items():
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    environ["_body"] = body
    return environ


def stripe_environs(path: str, count: int) -> list[dict]:
    """``count`` Stripe-signed requests, each with its own event id."""
    from plugins.stripe import StripeProvider

    provider = StripeProvider()
    example = provider.example_payloads["invoice.paid"][0]["body"]
    now = int(time.time())
    seed = uuid.uuid4().hex[:8]
    environs = []
    for index in range(count):
        body = json.dumps({**example, "id": f"evt_{seed}_{index}", "created": now}).encode()
        environs.append(environ_for(path, body, provider.sign(body, run.SIGNING_SECRET, timestamp=now)))
    return environs


def hmac_environs(path: str, count: int) -> list[dict]:
    """``count`` requests carrying ``X-Signature``, as ``make bench``'s script case sends."""
    seed = uuid.uuid4().hex[:8]
    environs = []
    for index in range(count):
        body = json.dumps({"type": "order.paid", "id": f"ord_{seed}_{index}", "amount": 1200}).encode()
        signature = hmac.new(run.SIGNING_SECRET.encode(), body, hashlib.sha256).hexdigest()
        environs.append(environ_for(path, body, {"X-Signature": signature}))
    return environs


def call(app, environ: dict) -> str:
    """Call ``app`` once, as a WSGI server does, and return the status line."""
    environ = dict(environ)
    environ["wsgi.input"] = io.BytesIO(environ.pop("_body"))
    status = []
    chunks = app(environ, lambda line, headers, exc_info=None: status.append(line))
    try:
        for _ in chunks:
            pass
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
    return status[0]


def host_cpu_seconds(pid: int | None) -> float:
    """User plus system CPU time of process ``pid`` (the script host), 0 without one."""
    if pid is None:
        return 0.0
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def warm(app, environs: list[dict]) -> None:
    """Send ``environs`` untimed (caches, pools, the script host), failing on any error."""
    for environ in environs:
        status = call(app, environ)
        if not status.startswith("2"):
            sys.exit(f"request failed: {status}")


def _send(app, environs: list[dict], latencies: list[float]) -> None:
    for environ in environs:
        started = time.perf_counter()
        status = call(app, environ)
        latencies.append(time.perf_counter() - started)
        if not status.startswith("2"):
            raise RuntimeError(f"request failed: {status}")


def timed(app, environs: list[dict], threads: int, host_pid=lambda: None, profiler=None) -> dict:
    """Send ``environs`` from ``threads`` threads (as gunicorn's gthread workers do); return CPU seconds and latencies.

    CPU seconds of this process (every thread), of the calling thread alone
    and of the script host.
    """
    host_before = host_cpu_seconds(host_pid())
    cpu_before = time.process_time()
    thread_before = time.thread_time()
    latencies: list[float] = []
    if profiler:
        profiler.enable()
    if threads == 1:
        _send(app, environs, latencies)
    else:
        share = len(environs) // threads
        senders = [
            threading.Thread(target=_send, args=(app, environs[n * share : (n + 1) * share], latencies))
            for n in range(threads)
        ]
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join()
    if profiler:
        profiler.disable()
    return {
        "cpu": time.process_time() - cpu_before,
        "host": host_cpu_seconds(host_pid()) - host_before,
        "thread": time.thread_time() - thread_before,
        "latencies": latencies,
    }


def main() -> None:
    """Measure each case in interleaved rounds (so that a burst of load hits all alike) and report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=1000, help="timed requests per case and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=4, help="concurrent threads of the *_threads cases")
    parser.add_argument("--profile", help="write a cProfile of the ingest case to this file")
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated, of: " + ", ".join(CASES))
    parser.add_argument("--compare", metavar="REV", help="measure git revision REV too, side by side")
    parser.add_argument("--code", help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, default=RESULTS, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.compare:
        compare(options)
        return
    env = run.app_env(run.postgres_url("ks_bench_cpu"))
    tokens = run.create_sources(env)
    from bench.bare_app import app as bare
    from wsgi import app as ingest

    state = ingest.extensions["knock_sources"]
    path = "/integrations/receive/{}".format
    count = WARMUP + options.rounds * options.requests
    no_host = lambda: None  # noqa: E731
    apps = {"bare": bare, "ingest": ingest, "plain": ingest, "scripted": ingest}
    sources = {"bare": "stripe", "ingest": "stripe", "plain": "plain", "scripted": "scripted"}
    cases = {}
    for name in options.cases.split(","):
        base = name.removesuffix("_threads")
        build = stripe_environs if sources[base] == "stripe" else hmac_environs
        threads = options.threads if name.endswith("_threads") else 1
        host = (lambda: state.scripts.host_pid) if base == "scripted" else no_host
        cases[name] = (apps[base], build(path(tokens[sources[base]]), count), threads, host)
    profiler = cProfile.Profile() if options.profile else None
    samples: dict[str, list[dict]] = {name: [] for name in cases}
    for app, environs, _, _ in cases.values():
        warm(app, environs[:WARMUP])
    for round_number in range(options.rounds):
        window = slice(WARMUP + round_number * options.requests, WARMUP + (round_number + 1) * options.requests)
        for name, (app, environs, threads, host_pid) in cases.items():
            use = profiler if name == "ingest" else None
            samples[name].append(timed(app, environs[window], threads, host_pid, use))
    if profiler:
        profiler.dump_stats(options.profile)
    state.dispatcher.flush()
    results: dict = {}
    for name, rounds in samples.items():
        # The least loaded round is the closest to the code's own cost.
        results[name] = {
            "cpu_us_per_request": round(min(r["cpu"] for r in rounds) / options.requests * 1e6, 1),
            "main_thread_cpu_us_per_request": round(min(r["thread"] for r in rounds) / options.requests * 1e6, 1),
            "host_cpu_us_per_request": round(min(r["host"] for r in rounds) / options.requests * 1e6, 1),
            "wall_p50_us": round(min(statistics.median(r["latencies"]) for r in rounds) * 1e6, 1),
        }
    for suffix in ("", "_threads"):
        if f"bare{suffix}" in results and f"ingest{suffix}" in results:
            ratio = results[f"ingest{suffix}"]["cpu_us_per_request"] / results[f"bare{suffix}"]["cpu_us_per_request"]
            results[f"ingest{suffix}_cpu_over_bare"] = round(ratio, 2)
    if {"plain", "scripted"} <= set(cases):
        results["script_wall_p50_ratio"] = round(
            results["scripted"]["wall_p50_us"] / results["plain"]["wall_p50_us"], 2
        )
    columns = ("cpu_us_per_request", "main_thread_cpu_us_per_request", "host_cpu_us_per_request", "wall_p50_us")
    print(f"{'case':<16}{'cpu us/req':>13}{'main thread':>13}{'host cpu us':>13}{'wall p50 us':>13}")
    for name in cases:
        print(f"{name:<16}" + "".join(f"{results[name][column]:>13}" for column in columns))
    for key, value in results.items():
        if not isinstance(value, dict):
            print(f"{key}: {value}")
    options.output.parent.mkdir(exist_ok=True)
    options.output.write_text(json.dumps(results, indent=2) + "\n")


def compare(options) -> None:
    """Measure revision ``options.compare`` and the working tree in alternating rounds; print both."""
    figures: dict[str, list[dict]] = {"before": [], "after": []}
    with tempfile.TemporaryDirectory(prefix="knock-sources-cpu-") as scratch:
        before = Path(scratch) / "code"
        before.mkdir()
        archive = subprocess.run(["git", "archive", options.compare], cwd=ROOT, capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(before)], input=archive.stdout, check=True)
        for _ in range(options.rounds):
            for label, code in (("before", before), ("after", ROOT)):
                output = Path(scratch) / f"{label}.json"
                command = [sys.executable, __file__, "--code", str(code), "--output", str(output), "--rounds", "1"]
                command += ["--requests", str(options.requests), "--threads", str(options.threads)]
                subprocess.run([*command, "--cases", options.cases], check=True, stdout=subprocess.DEVNULL)
                figures[label].append(json.loads(output.read_text()))
    results = {}
    print(f"{'case':<16}{'before cpu us':>15}{'after cpu us':>15}{'before p50 us':>15}{'after p50 us':>15}")
    for name in options.cases.split(","):
        row = {
            f"{label}_{key}": min(run[name][key] for run in figures[label])
            for label in figures
            for key in ("cpu_us_per_request", "wall_p50_us")
        }
        results[name] = row
        print(
            f"{name:<16}{row['before_cpu_us_per_request']:>15}{row['after_cpu_us_per_request']:>15}"
            f"{row['before_wall_p50_us']:>15}{row['after_wall_p50_us']:>15}"
        )
    options.output.parent.mkdir(exist_ok=True)
    options.output.write_text(json.dumps({"compared_with": options.compare, **results}, indent=2) + "\n")


if __name__ == "__main__":
    main()

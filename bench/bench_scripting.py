"""Cost of ``ScriptRunner.run`` once a script is compiled: ``python bench/bench_scripting.py``.

Times a trivial ``main``, Knock's default shared-secret script and a
Stripe-style HMAC-SHA256 verification over 1 KiB and 8 KiB bodies, each on a
warm isolate in the runner's script host process (so every figure includes
the round trip over the pipes), plus the one-off cost of compiling a script
and what a script that takes its host down costs: the failed call, and the
next call, which waits for the new host and compiles its script again.
Prints p50/p99 in microseconds and writes them to
``bench/results/scripting.json``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from knock_sources.scripting import ScriptError, ScriptRunner  # noqa: E402
from tests.support.scripts import KNOCK_DEFAULT_SCRIPT, STRIPE_STYLE_SCRIPT  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "scripting.json"
ITERATIONS = 5000
WARMUP = 500
SECRET = "whsec_" + "b" * 32
TRIVIAL_SCRIPT = "export function main(ctx) { return { verified: true }; }"
# A single builtin call that V8 cannot interrupt and that makes it abort the host.
CRASH_SCRIPT = "export function main() { return { n: 'ab'.repeat(2 ** 27).split('').length }; }"


def stripe_ctx(body_bytes: int) -> dict:
    """A Stripe-shaped event of about ``body_bytes`` bytes, signed the way Stripe signs."""
    body = {
        "id": "evt_1NG8Du2eZvKYlo2CUI79vXWy",
        "object": "event",
        "type": "customer.subscription.updated",
        "data": {"object": {"id": "sub_1", "customer": "cus_1", "status": "active", "padding": ""}},
    }
    body["data"]["object"]["padding"] = "x" * max(0, body_bytes - len(json.dumps(body)))
    raw = json.dumps(body)
    timestamp = int(time.time())
    digest = hmac.new(SECRET.encode(), f"{timestamp}.{raw}".encode(), hashlib.sha256).hexdigest()
    return {
        "vars": {"STRIPE_SIGNING_SECRET": SECRET, "CUSTOM_HTTP_SIGNING_SECRET": SECRET},
        "body": body,
        "rawBody": raw,
        "headers": {
            "stripe-signature": f"t={timestamp},v1={digest}",
            "x-webhook-secret": SECRET,
            "content-type": "application/json",
        },
    }


def percentiles(samples: list[float]) -> dict:
    """p50/p99/mean of ``samples`` (seconds), in microseconds."""
    ordered = sorted(samples)
    return {
        "p50_us": round(ordered[len(ordered) // 2] * 1e6, 1),
        "p99_us": round(ordered[int(len(ordered) * 0.99)] * 1e6, 1),
        "mean_us": round(statistics.fmean(ordered) * 1e6, 1),
    }


def time_runs(runner: ScriptRunner, key: str, source: str, ctx: dict) -> dict:
    """Warm the isolate up, then time ``ITERATIONS`` calls."""
    for _ in range(WARMUP):
        result = runner.run(key, source, ctx)
    if result.get("verified") is not True:
        sys.exit(f"{key}: the script did not verify its input: {result}")
    samples = []
    for _ in range(ITERATIONS):
        started = time.perf_counter()
        runner.run(key, source, ctx)
        samples.append(time.perf_counter() - started)
    return percentiles(samples)


def time_compiles(runner: ScriptRunner, source: str, ctx: dict, count: int = 50) -> dict:
    """Time first calls on fresh keys: isolate, runtime, compile and one run."""
    samples = []
    for n in range(count):
        started = time.perf_counter()
        runner.run(("compile", n), source, ctx)
        samples.append(time.perf_counter() - started)
    return percentiles(samples)


def time_crashes(runner: ScriptRunner, ctx: dict, count: int = 10) -> tuple[dict, dict]:
    """Time calls that abort the host, and the healthy call after each one."""
    crashes, recoveries = [], []
    for _ in range(count):
        started = time.perf_counter()
        try:
            runner.run("crash", CRASH_SCRIPT, ctx)
        except ScriptError as error:
            if error.kind != "memory":
                raise
        recovered = time.perf_counter()
        runner.run("after-crash", TRIVIAL_SCRIPT, ctx)
        crashes.append(recovered - started)
        recoveries.append(time.perf_counter() - recovered)
    return percentiles(crashes), percentiles(recoveries)


def main() -> None:
    # Each crash is logged as a warning; the table is what this prints.
    logging.getLogger("knock_sources.scripting").setLevel(logging.ERROR)
    cases = {}
    with ScriptRunner() as runner:
        cases["trivial"] = time_runs(runner, "trivial", TRIVIAL_SCRIPT, stripe_ctx(1024))
        cases["knock_default"] = time_runs(runner, "default", KNOCK_DEFAULT_SCRIPT, stripe_ctx(1024))
        cases["hmac_sha256_1KiB"] = time_runs(runner, "hmac-1k", STRIPE_STYLE_SCRIPT, stripe_ctx(1024))
        cases["hmac_sha256_8KiB"] = time_runs(runner, "hmac-8k", STRIPE_STYLE_SCRIPT, stripe_ctx(8192))
        cases["first_call_hmac"] = time_compiles(runner, STRIPE_STYLE_SCRIPT, stripe_ctx(1024))
        cases["host_crash"], cases["first_call_after_crash"] = time_crashes(runner, stripe_ctx(1024))
    overhead = round(cases["hmac_sha256_1KiB"]["p50_us"] - cases["trivial"]["p50_us"], 1)
    report = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "iterations": ITERATIONS,
        "cases": cases,
        "hmac_1KiB_minus_trivial_p50_us": overhead,
    }
    print(f"{'case':<24}{'p50 us':>10}{'p99 us':>10}{'mean us':>10}")
    for name, figures in cases.items():
        print(f"{name:<24}{figures['p50_us']:>10}{figures['p99_us']:>10}{figures['mean_us']:>10}")
    print(f"HMAC verification over a trivial script, p50: {overhead} us")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()

"""Closed-loop load from wrk (Debian's package), with per-request bodies from a file.

wrk is written in C with an event loop, so it costs a fraction of the
server it loads; a Python generator cost about as much CPU as the bare Flask
baseline and capped the very figure it measured. Its own CPU share is
reported next to every figure.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

LUA = Path(__file__).with_name("wrk_requests.lua")


def require_wrk() -> str:
    """Return wrk's path, or exit saying how to get it (``make bench`` installs it)."""
    path = shutil.which("wrk")
    if path is None:
        sys.exit("The benchmark needs wrk: apt-get install -y wrk (make bench does this).")
    return path


def write_requests(requests: list[tuple[dict, bytes]]) -> str:
    """Write ``(headers, body)`` pairs in the Lua script's format; return the file's path."""
    handle, path = tempfile.mkstemp(prefix="ks-bench-", suffix=".requests")
    with os.fdopen(handle, "w") as out:
        for headers, body in requests:
            text = body.decode()
            if "\t" in text or "\n" in text:
                raise ValueError("bodies must be one line without tabs")
            out.write("\t".join([*(f"{name}: {value}" for name, value in headers.items()), text]) + "\n")
    return path


def run_wrk(url: str, requests_file: str, *, seconds: float, connections: int, threads: int) -> dict:
    """Load ``url`` for ``seconds``; return rps, p50/p99 (ms), errors and wrk's CPU seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    command = [
        require_wrk(),
        f"--threads={threads}",
        f"--connections={connections}",
        f"--duration={max(1, round(seconds))}s",
        "--timeout=10s",
        f"--script={LUA}",
        url,
    ]
    output = subprocess.run(
        command, env={**os.environ, "WRK_REQUESTS": requests_file}, capture_output=True, text=True, check=True
    ).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    figures = json.loads(output.strip().splitlines()[-1])
    seconds_measured = figures["duration_us"] / 1e6
    return {
        "rps": figures["requests"] / seconds_measured,
        "p50_ms": figures["p50_us"] / 1000,
        "p99_ms": figures["p99_us"] / 1000,
        "errors": figures["non_2xx"] + figures["socket_errors"],
        "loadgen_cpu_seconds": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        "seconds": seconds_measured,
    }

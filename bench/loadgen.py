"""A small closed-loop HTTP/1.1 load generator with keep-alive.

Each client process opens several connections (asyncio) and replays
pre-built requests as fast as the server answers, recording each latency.
Written for this benchmark because wrk is not installable from PyPI, and so
that every request can carry its own signed body.
"""

from __future__ import annotations

import asyncio
import time


async def _connection(host, port, requests, deadline, warmup_until, latencies, errors):
    reader, writer = await asyncio.open_connection(host, port)
    index = 0
    try:
        while time.perf_counter() < deadline:
            request = requests[index % len(requests)]
            index += 1
            started = time.perf_counter()
            writer.write(request)
            status, length, close = await _read_response(reader)
            finished = time.perf_counter()
            if finished >= warmup_until:
                if status >= 300:
                    errors.append(status)
                else:
                    latencies.append(finished - started)
            if close:
                writer.close()
                reader, writer = await asyncio.open_connection(host, port)
    finally:
        writer.close()


async def _read_response(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length, close = 0, False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"connection" and value.strip().lower() == b"close":
            close = True
    if length:
        await reader.readexactly(length)
    return status, length, close


def run_client(host, port, requests, connections, duration, warmup):
    """Drive ``connections`` keep-alive connections; return (latencies, errors, seconds measured)."""
    latencies, errors = [], []
    start = time.perf_counter()
    deadline = start + warmup + duration
    warmup_until = start + warmup

    async def main():
        await asyncio.gather(
            *(
                _connection(host, port, requests[i::connections], deadline, warmup_until, latencies, errors)
                for i in range(connections)
            )
        )

    asyncio.run(main())
    return latencies, errors, duration


def build_request(path: str, body: bytes, headers: dict, host: str) -> bytes:
    """Serialise one POST request."""
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}", "Content-Type: application/json", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body

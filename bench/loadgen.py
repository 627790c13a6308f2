"""An open-loop HTTP/1.1 load generator: requests leave at a fixed rate, whatever the server does.

A closed-loop generator (wrk) sends the next request when the previous one
is answered, so a slow server slows the offered load down and hides its own
queueing; the end-to-end benchmark needs the opposite: a rate that is held,
with every request its own body. Requests are scheduled at ``start + i /
rate`` and sent on whichever keep-alive connection is idle; when none is, a
new one is opened (up to ``max_connections``), so a stalled server shows up
as requests sent late, which are counted. Runs in its own process and
reports its CPU time, so its share of the machine is known.
"""

from __future__ import annotations

import asyncio
import resource
from dataclasses import dataclass, field


def build_request(path: str, body: bytes, headers: dict, host: str) -> bytes:
    """Serialise one POST request."""
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}", "Content-Type: application/json", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


@dataclass
class Offered:
    """What one open-loop run did."""

    sent: int = 0
    succeeded: int = 0
    #: Status codes of the requests that did not succeed (connection failures: 0).
    failures: list = field(default_factory=list)
    #: Requests sent more than 100 ms after their scheduled time (no idle connection, or the generator lagged).
    late: int = 0
    connections: int = 0
    cpu_seconds: float = 0.0
    seconds: float = 0.0


async def _read_response(reader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length:
        await reader.readexactly(length)
    return status


async def _offer(host, port, requests, rate, seconds, max_connections) -> Offered:
    result = Offered()
    idle: list = []
    in_flight: set = set()

    async def send(request):
        if idle:
            reader, writer = idle.pop()
        else:
            reader, writer = await asyncio.open_connection(host, port)
            result.connections += 1
        try:
            writer.write(request)
            status = await _read_response(reader)
        except (OSError, asyncio.IncompleteReadError):
            writer.close()
            result.failures.append(0)
            return
        idle.append((reader, writer))
        if status < 300:
            result.succeeded += 1
        else:
            result.failures.append(status)

    loop = asyncio.get_running_loop()
    start = loop.time()
    total = int(rate * seconds)
    for index in range(total):
        due = start + index / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        elif delay < -0.1:
            result.late += 1
        while len(in_flight) >= max_connections:
            # Every connection is busy: the server is not keeping up. Wait, and count the lateness.
            await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
        task = asyncio.ensure_future(send(requests[index % len(requests)]))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
        result.sent += 1
    if in_flight:
        await asyncio.wait(in_flight)
    result.seconds = loop.time() - start
    for _, writer in idle:
        writer.close()
    return result


def offer(host, port, requests: list[bytes], rate: float, seconds: float, max_connections: int = 64) -> Offered:
    """Send ``rate`` requests per second for ``seconds``, cycling ``requests``; report what happened."""
    before = resource.getrusage(resource.RUSAGE_SELF)
    result = asyncio.run(_offer(host, port, requests, rate, seconds, max_connections))
    after = resource.getrusage(resource.RUSAGE_SELF)
    result.cpu_seconds = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return result

"""The script host process, and the pipe protocol between it and its parent.

V8 aborts its whole process when a single builtin call exhausts its heap
(``new Array(2 ** 27).fill(0)``), and mini-racer offers no hook to prevent
it, so scripts run in a child process that the parent can lose and replace.
``HostProcess`` is the parent's end: it starts a host, writes requests, reads
replies before a deadline, and stops it. ``serve`` is the host's end, a loop
over the engines of ``script_engine.py``.

Protocol. Every message in either direction is a frame: three big-endian
32-bit lengths, then that many bytes of a JSON head, a first text and a
second text (UTF-8, lone surrogates passed through). Once V8 is up the host
sends ``{"rss"}``. Then every frame from the parent is a request ``{"op":
"run" | "once" | "check", "slot", "drop"}`` with the script source and the
JSON text of ctx, and the host answers ``{"rss"}`` with the result's JSON
text; or ``{"rss", "error": {kind, message, line, column}}``; or ``{"rss",
"invalid": <type name>}`` when main returned something other than an object;
or ``{"rss", "failed": <text>}`` for an error of the host itself. ``rss`` is
the host's resident memory in bytes after the call (null without ``/proc``),
against which the parent judges a host that stops answering. The host keeps
one isolate per ``slot`` and frees the slots listed in ``drop``.

The host exits when its stdin closes, without tearing V8 down (freeing an
isolate stopped in the middle of a builtin can block for good), and when its
parent dies while a call is stuck.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import select
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from pathlib import Path

FRAME = struct.Struct("!III")
# Starting Python and V8 takes a fraction of a second; this only bounds a broken machine.
_START_SECONDS = 30.0
# A host still busy past its watch time is checked this often for growth.
_WATCH_EVERY_SECONDS = 0.05
# How long a host asked to exit gets before it is killed.
_STOP_SECONDS = 2.0
_PARENT_CHECK_SECONDS = 1.0
# The package's __init__ loads Flask and the plugin API, which a host has no
# use for: a bare module with the package's directory stands in for it, so
# the host's own modules import as usual.
_BOOTSTRAP = """\
import sys, types
package = types.ModuleType("knock_sources")
package.__path__ = [sys.argv[1]]
sys.modules["knock_sources"] = package
from knock_sources.script_host import serve
serve(int(sys.argv[2]), int(sys.argv[3]))
"""


def _encode(head: dict, first: str, second: str) -> bytes:
    parts = [json.dumps(head).encode(), first.encode("utf-8", "surrogatepass"), second.encode("utf-8", "surrogatepass")]
    return FRAME.pack(*map(len, parts)) + b"".join(parts)


def _decode(sizes: tuple[int, int, int], body: bytes) -> tuple[dict, str, str]:
    first_end = sizes[0] + sizes[1]
    return (
        json.loads(body[: sizes[0]]),
        body[sizes[0] : first_end].decode("utf-8", "surrogatepass"),
        body[first_end:].decode("utf-8", "surrogatepass"),
    )


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


# --- the parent's end ------------------------------------------------------------------


class HostLost(Exception):
    """The host closed its pipe (``died``), missed the deadline (``overdue``) or outgrew its limit (``bloated``)."""


def resident_bytes(pid: int | None = None) -> int | None:
    """The resident memory of process ``pid`` (this one by default), or None without ``/proc``."""
    try:
        with open(f"/proc/{pid or 'self'}/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _reap(process: subprocess.Popen, stderr) -> None:
    """Close the host's stdin so it exits, kill it if it does not, wait for it, close its files."""
    with contextlib.suppress(OSError):
        process.stdin.close()
    try:
        process.wait(_STOP_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    process.stdout.close()
    stderr.close()


class HostProcess:
    """One running script host and the pipes to it. Not thread-safe: its runner serialises calls."""

    def __init__(self, timeout_ms: int, memory_mb: int):
        # An unlinked file rather than a pipe: nothing has to drain it, and
        # what V8 printed before aborting can still be read afterwards.
        self._stderr = tempfile.TemporaryFile()
        package = str(Path(__file__).resolve().parent)
        self.process = subprocess.Popen(
            [sys.executable, "-P", "-c", _BOOTSTRAP, package, str(timeout_ms), str(memory_mb)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            bufsize=0,
        )
        # Also at interpreter exit, and when the runner is collected unclosed.
        self._finalizer = weakref.finalize(self, _reap, self.process, self._stderr)
        self._poll = select.poll()
        self._poll.register(self.process.stdout.fileno(), select.POLLIN)
        self._buffer = bytearray()
        self.rss: int | None = None
        self.ready = False

    def send(self, head: dict, first: str, second: str = "") -> None:
        """Write one frame; raises HostLost when the host is gone."""
        try:
            _write_all(self.process.stdin.fileno(), _encode(head, first, second))
        except (BrokenPipeError, ValueError):
            raise HostLost("died") from None

    def receive(self, deadline: float, watch_from: float = math.inf, growth: int = 0) -> tuple[dict, str]:
        """Read one frame before ``deadline`` (monotonic); returns its head and first text.

        From ``watch_from`` on, the host's memory is checked while it has not
        answered, and more than ``growth`` bytes of it raises HostLost.
        """
        sizes = FRAME.unpack(self._read(FRAME.size, deadline, watch_from, growth))
        head, first, _ = _decode(sizes, self._read(sum(sizes), deadline, watch_from, growth))
        if "rss" in head:
            self.rss = head["rss"]
        return head, first

    def _read(self, size: int, deadline: float, watch_from: float, growth: int) -> bytes:
        while len(self._buffer) < size:
            now = time.monotonic()
            if now >= deadline:
                raise HostLost("overdue")
            wake = min(deadline, watch_from)
            if now >= watch_from:
                grew = self.grew_by()
                if grew is not None and grew > growth:
                    raise HostLost("bloated")
                wake = min(deadline, now + _WATCH_EVERY_SECONDS)
            if not self._poll.poll(math.ceil((wake - now) * 1000)):
                continue
            chunk = os.read(self.process.stdout.fileno(), max(size - len(self._buffer), 1 << 16))
            if not chunk:
                raise HostLost("died")
            self._buffer += chunk
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def wait_ready(self) -> None:
        """Wait for the host to report that V8 is up; raises HostLost."""
        if not self.ready:
            self.receive(time.monotonic() + _START_SECONDS)
            self.ready = True

    def grew_by(self) -> int | None:
        """How much the host's memory grew since its last reply, when known."""
        now = resident_bytes(self.process.pid)
        return None if now is None or self.rss is None else now - self.rss

    def stop(self, kill: bool = False) -> str:
        """Make the host exit, reap it, and return the gist of what it printed on stderr."""
        if kill:
            self.process.kill()
        self._stderr.seek(max(0, self._stderr.seek(0, os.SEEK_END) - 8192))
        lines = self._stderr.read().decode("utf-8", "replace").splitlines()
        self._finalizer()
        # V8 frames its fatal message in lines starting with "#"; a Python
        # traceback ends with the exception.
        fatal = [line.lstrip("# ") for line in lines if line.startswith("# Fatal")]
        plain = [line.strip() for line in lines if line.strip()]
        return (fatal or plain or ["nothing on stderr"])[-1][:300]

    def status(self) -> str:
        """How the host ended, for logs."""
        code = self.process.returncode
        if code is not None and code < 0:
            with contextlib.suppress(ValueError):
                return f"was ended by {signal.Signals(-code).name}"
        return f"exited with status {code}"

    def disown(self) -> None:
        """In a forked child: close this copy of the pipes and leave the parent's host alone."""
        self._finalizer.detach()
        for stream in (self.process.stdin, self.process.stdout, self._stderr):
            stream.close()
        # This process did not start it, so it must neither wait for it nor
        # warn, when the Popen is collected, that it is still running.
        self.process.returncode = 0


# --- the host's end ----------------------------------------------------------------------


class _Channel:
    """Frames over stdin and a private copy of stdout."""

    def __init__(self, read_fd: int, write_fd: int):
        self._read_fd, self._write_fd = read_fd, write_fd

    def _read(self, size: int) -> bytes | None:
        chunks, missing = [], size
        while missing:
            chunk = os.read(self._read_fd, missing)
            if not chunk:
                return None
            chunks.append(chunk)
            missing -= len(chunk)
        return b"".join(chunks)

    def receive(self) -> tuple[dict, str, str] | None:
        """Return the next frame as (head, text, text), or None once the parent has gone."""
        header = self._read(FRAME.size)
        if header is None:
            return None
        sizes = FRAME.unpack(header)
        body = self._read(sum(sizes))
        return None if body is None else _decode(sizes, body)

    def send(self, head: dict, text: str = "") -> None:
        """Write one frame with ``head`` and ``text``."""
        _write_all(self._write_fd, _encode(head, text, ""))


def _exit_when_orphaned(parent: int) -> None:
    """Exit once the parent is gone, even while a call is stuck in V8 and stdin goes unread."""
    while os.getppid() == parent:
        time.sleep(_PARENT_CHECK_SECONDS)
    os._exit(0)


def serve(timeout_ms: int, memory_mb: int) -> None:
    """Run as the host: answer the parent's requests until its end of the pipe closes."""
    # Imported here: the parent imports this module for HostProcess and must
    # not load mini-racer.
    from knock_sources.script_engine import MAX_MESSAGE, EngineCache, Failure, Invalid, V8Loop, v8_flags

    # Only the parent decides when the host stops: a Ctrl-C meant for the
    # server must not look like a script that crashed its host.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_when_orphaned, args=(os.getppid(),), daemon=True).start()
    # Replies go to a private copy of stdout; anything else that writes to
    # file descriptor 1 lands on stderr instead of corrupting a frame.
    channel = _Channel(0, os.dup(1))
    os.dup2(2, 1)
    engines = EngineCache(V8Loop(v8_flags(memory_mb)), timeout_ms=timeout_ms, memory_mb=memory_mb)

    def answer(head: dict, source: str, payload: str) -> tuple[dict, str]:
        for slot in head["drop"]:
            engines.dispose(slot)
        try:
            if head["op"] == "run":
                return {}, engines.get(head["slot"], source).call(payload)
            engine = engines.new(source)
            try:
                return {}, "" if head["op"] == "check" else engine.call(payload)
            finally:
                engine.close()
        except Failure as failure:
            return {"error": failure.to_dict()}, ""
        except Invalid as invalid:
            return {"invalid": invalid.args[0]}, ""
        except Exception as exc:
            # Not the script's doing (a mini-racer surprise): the caller gets
            # an error instead of a dead host, and the isolate, whose state is
            # unknown, goes.
            if "slot" in head:
                engines.dispose(head["slot"])
            return {"failed": f"{type(exc).__name__}: {exc}"[:MAX_MESSAGE]}, ""

    channel.send({"rss": resident_bytes()})
    while (request := channel.receive()) is not None:
        reply, text = answer(*request)
        reply["rss"] = resident_bytes()
        channel.send(reply, text)
    # Freeing isolates is pointless at exit and can block for good after a
    # builtin was stopped half-way; the kernel reclaims everything.
    os._exit(0)

"""The parent's end of a script host: starting it, a call with a deadline, stopping it.

V8 aborts its whole process when a single builtin call exhausts its heap
(``new Array(2 ** 27).fill(0)``), and mini-racer offers no hook to prevent
it, so scripts run in a child process (``host.py``) that the parent can lose
and replace. ``HostProcess`` starts a host, writes requests, reads replies
before a deadline, and stops it; the frames are those of ``protocol.py``.
"""

from __future__ import annotations

import contextlib
import math
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
import weakref
from pathlib import Path

from knock_sources.scripting.protocol import FRAME, HostLost, decode, encode, resident_bytes, write_all

# Starting Python and V8 takes a fraction of a second; this only bounds a broken machine.
_START_SECONDS = 30.0
# A host still busy past its watch time is checked this often for growth.
_WATCH_EVERY_SECONDS = 0.05
# How long a host asked to exit gets before it is killed.
_STOP_SECONDS = 2.0
# The package's __init__ loads Flask and the plugin API, which a host has no
# use for: a bare module with the package's directory stands in for it, so
# the host's own modules import as usual.
_BOOTSTRAP = """\
import sys, types
package = types.ModuleType("knock_sources")
package.__path__ = [sys.argv[1]]
sys.modules["knock_sources"] = package
from knock_sources.scripting.host import serve
serve(int(sys.argv[2]), int(sys.argv[3]))
"""


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
        package = str(Path(__file__).resolve().parent.parent)
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-P", "-c", _BOOTSTRAP, package, str(timeout_ms), str(memory_mb)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                bufsize=0,
            )
        except BaseException:
            # No process, so no finalizer to close it later.
            self._stderr.close()
            raise
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
            write_all(self.process.stdin.fileno(), encode(head, first, second))
        except (BrokenPipeError, ValueError):
            raise HostLost("died") from None

    def receive(self, deadline: float, watch_from: float = math.inf, growth: int = 0) -> tuple[dict, str]:
        """Read one frame before ``deadline`` (monotonic); returns its head and first text.

        From ``watch_from`` on, the host's memory is checked while it has not
        answered, and more than ``growth`` bytes of it raises HostLost.
        """
        sizes = FRAME.unpack(self._read(FRAME.size, deadline, watch_from, growth))
        head, first, _ = decode(sizes, self._read(sum(sizes), deadline, watch_from, growth))
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

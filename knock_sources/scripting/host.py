"""The script host process: answers its parent's requests with the engines of ``engine.py``.

Launched by ``process.HostProcess``; speaks the frames of ``protocol.py``
over stdin and a private copy of stdout. Only this process imports the
engine (and so mini-racer).

The host exits when its stdin closes, without tearing V8 down (freeing an
isolate stopped in the middle of a builtin can block for good), and when its
parent dies while a call is stuck.
"""

from __future__ import annotations

import os
import signal
import threading
import time

from knock_sources.scripting.protocol import FRAME, MAX_MESSAGE, ScriptError, decode, encode, resident_bytes, write_all

_PARENT_CHECK_SECONDS = 1.0
_READ_AHEAD = 1 << 16


class _Channel:
    """Frames over stdin and a private copy of stdout."""

    def __init__(self, read_fd: int, write_fd: int):
        self._read_fd, self._write_fd = read_fd, write_fd
        # Read ahead, so that a frame usually costs one read, not one per part.
        self._buffer = bytearray()

    def _read(self, size: int) -> bytes | None:
        while len(self._buffer) < size:
            chunk = os.read(self._read_fd, max(size - len(self._buffer), _READ_AHEAD))
            if not chunk:
                return None
            self._buffer += chunk
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def receive(self) -> tuple[dict, str, str] | None:
        """Return the next frame as (head, text, text), or None once the parent has gone."""
        header = self._read(FRAME.size)
        if header is None:
            return None
        sizes = FRAME.unpack(header)
        body = self._read(sum(sizes))
        return None if body is None else decode(sizes, body)

    def send(self, head: dict, text: str = "") -> None:
        """Write one frame with ``head`` and ``text``."""
        write_all(self._write_fd, encode(head, text, ""))


def _exit_when_orphaned(parent: int) -> None:
    """Exit once the parent is gone, even while a call is stuck in V8 and stdin goes unread."""
    while os.getppid() == parent:
        time.sleep(_PARENT_CHECK_SECONDS)
    os._exit(0)


def serve(timeout_ms: int, memory_mb: int) -> None:
    """Run as the host: answer the parent's requests until its end of the pipe closes."""
    # Imported here, not at the top, so that importing the package never loads mini-racer.
    from knock_sources.scripting.engine import EngineCache
    from knock_sources.scripting.v8 import V8Loop, v8_flags

    # Only the parent decides when the host stops: a Ctrl-C meant for the
    # server must not look like a script that crashed its host.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_when_orphaned, args=(os.getppid(),), daemon=True).start()
    # Replies go to a private copy of stdout; anything else that writes to
    # file descriptor 1 lands on stderr instead of corrupting a frame.
    channel = _Channel(0, os.dup(1))
    os.dup2(2, 1)
    engines = EngineCache(V8Loop(v8_flags(memory_mb)), timeout_ms=timeout_ms, memory_mb=memory_mb)

    def answer(head: dict, source: str, payload: str, rss: int | None) -> tuple[dict, str]:
        for slot in head["drop"]:
            engines.dispose(slot)
        try:
            if head["op"] == "run":
                # Compiling grows the host too: then the growth is measured from after it.
                reused = engines.ready(head["slot"], source)
                return {}, engines.get(head["slot"], source).call(payload, rss if reused else None)
            engine = engines.new(source)
            try:
                return {}, "" if head["op"] == "check" else engine.call(payload)
            finally:
                engine.close()
        except ScriptError as error:
            return {"error": error.to_dict()}, ""
        except Exception as exc:
            # Not the script's doing (a mini-racer surprise): the caller gets
            # an error instead of a dead host, and the isolate, whose state is
            # unknown, goes.
            if "slot" in head:
                engines.dispose(head["slot"])
            return {"failed": f"{type(exc).__name__}: {exc}"[:MAX_MESSAGE]}, ""

    rss = resident_bytes()
    channel.send({"rss": rss})
    while (request := channel.receive()) is not None:
        # The memory after the last call is where this one's growth is measured from.
        reply, text = answer(*request, rss)
        reply["rss"] = rss = resident_bytes()
        channel.send(reply, text)
    # Freeing isolates is pointless at exit and can block for good after a
    # builtin was stopped half-way; the kernel reclaims everything.
    os._exit(0)

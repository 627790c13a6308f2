"""The pipe between a script runner and its host process, and the one error shape both sides use.

Every message in either direction is a frame: three big-endian 32-bit
lengths, then that many bytes of a JSON head, a first text and a second text
(UTF-8, lone surrogates passed through). Once V8 is up the host sends
``{"rss"}``. Then every frame from the parent is a request ``{"op": "run" |
"once" | "check", "slot", "drop"}`` with the script source and the JSON text
of ctx, and the host answers ``{"rss"}`` with the result's JSON text; or
``{"rss", "error": {kind, message, line, column}}`` (a ``ScriptError``); or
``{"rss", "failed": <text>}`` for an error of the host itself. ``rss`` is the
host's resident memory in bytes after the call (null without ``/proc``),
against which the parent judges a host that stops answering. The host keeps
one isolate per ``slot`` and frees the slots listed in ``drop``.

Standard library only: the host process imports this without the rest of
the package.
"""

from __future__ import annotations

import json
import os
import struct

FRAME = struct.Struct("!III")
#: Error messages are cut to this many characters.
MAX_MESSAGE = 1000


def encode(head: dict, first: str, second: str) -> bytes:
    """Return one frame: the three lengths, then the JSON head and the two texts."""
    parts = [json.dumps(head).encode(), first.encode("utf-8", "surrogatepass"), second.encode("utf-8", "surrogatepass")]
    return FRAME.pack(*map(len, parts)) + b"".join(parts)


def decode(sizes: tuple[int, int, int], body: bytes) -> tuple[dict, str, str]:
    """Split a frame's body, whose lengths are ``sizes``, into (head, first text, second text)."""
    first_end = sizes[0] + sizes[1]
    return (
        json.loads(body[: sizes[0]]),
        body[sizes[0] : first_end].decode("utf-8", "surrogatepass"),
        body[first_end:].decode("utf-8", "surrogatepass"),
    )


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd``, however many writes it takes."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class ScriptError(Exception):
    """A script failed to compile, to run, or to return a usable result.

    ``kind`` is one of ``KINDS``; ``line`` and ``column`` (1-based) point into
    the script when known. ``message`` never contains a variable's value: any
    value of ``ctx["vars"]`` that appears in it is replaced by ``[redacted]``.
    """

    KINDS = frozenset({"syntax", "runtime", "timeout", "memory", "invalid_result", "no_main"})

    def __init__(self, kind: str, message: str, line: int | None = None, column: int | None = None):
        if kind not in self.KINDS:
            raise ValueError(f"unknown ScriptError kind {kind!r}")
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.line = line
        self.column = column

    def __str__(self) -> str:
        if self.line is None:
            return self.message
        where = f"line {self.line}" if self.column is None else f"line {self.line}, column {self.column}"
        return f"{self.message} ({where})"

    def __reduce__(self):
        # Exceptions pickle their args by default, which would lose the kind
        # when an error crosses a process boundary (RQ stores failures).
        return (type(self), (self.kind, self.message, self.line, self.column))

    def to_dict(self) -> dict:
        """Return the error as JSON-ready ``{"kind", "message", "line", "column"}``."""
        return {"kind": self.kind, "message": self.message, "line": self.line, "column": self.column}

    def copy(self) -> ScriptError:
        """Return a fresh instance, so a cached error is never re-raised twice."""
        return ScriptError(self.kind, self.message, self.line, self.column)


def invalid_result(got: str) -> ScriptError:
    """The error for a ``main`` that returned ``got`` (a JavaScript type name) instead of an object."""
    return ScriptError("invalid_result", f"main must return an object such as {{verified: true}}, not {got}")


class HostLost(Exception):
    """The host closed its pipe (``died``), missed the deadline (``overdue``) or outgrew its limit (``bloated``)."""


def memory_thresholds(memory_mb: int) -> tuple[int, int]:
    """How much a script host may grow during one call, in bytes: ``(stop, kill)``.

    The isolate's heap limit is ``memory_mb``, but a host grows by more than
    its heap before V8 notices (its young generation, compiled code, parser
    zones) and by what the heap does not see at all (ICU objects behind
    ``Intl``, WebAssembly-like external memory). Past ``stop`` the host ends
    the script itself, as the heap limit would: a ``memory`` error, the host
    kept. Past ``kill`` (twice as far, for a builtin V8 cannot interrupt) the
    parent kills the host. Both are derived from the limit with a margin, so
    they never beat the heap limit to a script the heap limit would stop,
    whatever the machine.
    """
    limit = memory_mb << 20
    stop = limit + max(limit, 32 << 20)
    return stop, 2 * stop


_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
# This process's /proc/self/statm, kept open: a host reads it after every call,
# and reading an open file again costs a quarter of opening it. A forked child
# forgets it (the copy would still describe its parent), so no call pays a
# getpid() to find out whether it is still the process that opened it.
_own_statm: int | None = None


def _forget_own_statm() -> None:
    global _own_statm
    if _own_statm is not None:
        os.close(_own_statm)
        _own_statm = None


os.register_at_fork(after_in_child=_forget_own_statm)


def _statm(pid: int | None) -> bytes:
    global _own_statm
    if pid is not None and pid != os.getpid():
        with open(f"/proc/{pid}/statm", "rb") as statm:
            return statm.read()
    if _own_statm is None:
        _own_statm = os.open("/proc/self/statm", os.O_RDONLY | os.O_CLOEXEC)
    return os.pread(_own_statm, 256, 0)


def resident_bytes(pid: int | None = None) -> int | None:
    """The resident memory of process ``pid`` (this one by default), or None without ``/proc``."""
    try:
        return int(_statm(pid).split()[1]) * _PAGE_SIZE
    except (OSError, ValueError, IndexError):
        return None

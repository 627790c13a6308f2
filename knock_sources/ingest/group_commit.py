"""Group commit: concurrent requests of one process share one durable write.

Every accepted request waits for a commit before its 2xx, and on a machine
where web processes, workers and PostgreSQL share the cores, a commit's cost
is mostly per statement (parsing, the commit record, the round trip and the
thread wake-ups around it), not per row. ``GroupCommit`` lets the request
threads of a process share statements: a thread that finds no write in
flight leads one with everything queued so far, the others wait for it, and
when it ends the oldest thread still queued leads the next. No thread is
added, a lone request writes at once, and a write carries at most as many
rows as the process has request threads. It pays with gunicorn's
recommended 8 threads per process; with 4 the batches were too small to pay
for the hand-offs (``docs/benchmarks.md`` has both measurements).
"""

from __future__ import annotations

import os
import threading
from typing import Any, Callable

from peewee import InterfaceError

#: A slot's result before its write has given one (``None`` can be a result).
_UNSET = object()


class _Slot:
    """One submitted value, the result written for it, and how its thread is woken."""

    __slots__ = ("value", "result", "leads", "_waking")

    def __init__(self, value: Any):
        self.value = value
        self.result: Any = _UNSET
        self.leads = False
        # Held until the slot's thread is woken, once: a bare lock is a
        # cheaper wake-up than an Event, whose wait builds a lock of its own.
        self._waking = threading.Lock()
        self._waking.acquire()

    def wait(self) -> None:
        """Block until ``wake``."""
        self._waking.acquire()

    def wake(self) -> None:
        """Let the slot's thread go on (its result is in, or it leads the next write)."""
        self._waking.release()


class GroupCommit:
    """Leader and followers in front of ``write``, which commits a batch of values at once.

    ``write(values)`` returns one result per value, in order; a result that
    is an exception is raised in that value's thread only. An exception
    from ``write`` itself is raised in every thread of the batch. Safe to
    share between threads; a forked child starts with an empty queue.
    """

    def __init__(self, write: Callable[[list], list]):
        self._write = write
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._queued: list[_Slot] = []
        self._writing = False

    def submit(self, value: Any) -> Any:
        """Return what ``write`` gave for ``value`` once it is committed, or raise what it gave."""
        slot = _Slot(value)
        with self._lock:
            self._queued.append(slot)
            leads = not self._writing
            self._writing = True
        if not leads:
            slot.wait()
            leads = slot.leads
        if leads:
            self._lead()
        if isinstance(slot.result, BaseException):
            raise slot.result
        return slot.result

    def _lead(self) -> None:
        with self._lock:
            batch, self._queued = self._queued, []
        # Whatever happens, every thread of the batch gets a result and the
        # next leader is woken: a follower waits without a timeout.
        interrupted: BaseException = InterfaceError("the write of this event was interrupted; retry")
        try:
            results = self._write([slot.value for slot in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"the write gave {len(results)} results for {len(batch)} values")
            for slot, result in zip(batch, results, strict=True):
                slot.result = result
        except Exception as exc:
            interrupted = exc
        finally:
            for slot in batch:
                if slot.result is _UNSET:
                    slot.result = interrupted
            with self._lock:
                successor = self._queued[0] if self._queued else None
                self._writing = successor is not None
            for slot in batch:
                slot.wake()
            if successor is not None:
                successor.leads = True
                successor.wake()

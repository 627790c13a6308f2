"""How the script host drives mini-racer: V8's flags, the loop isolates are made on, evaluations.

Only the script host process (``host.py``, ``engine.py``) imports this
module. ``Evaluations`` reaches into mini-racer's context, which the dependency pin
(``mini-racer<0.15``) holds still: what it uses is named in its docstring.
"""

from __future__ import annotations

import _thread
import asyncio
import ctypes
import threading
from typing import Any

from py_mini_racer import DEFAULT_V8_FLAGS, init_mini_racer


def v8_flags(memory_mb: int) -> tuple[str, ...]:
    """V8's flags for a host whose isolates may use ``memory_mb`` each.

    With mini-racer 0.14, creating an isolate while another one collects
    garbage on its own thread crashes in
    Isolate::InitializeBuiltinJSDispatchTable; the two ``--no-`` flags stop
    idle isolates from scheduling that work. The heap is sized from the limit
    rather than from the machine: left alone, V8 sizes its young generation
    by the machine's physical memory, so a bomb outgrew its limit by a
    different amount on every machine before a collection let the heap limit
    see it. The old-space ceiling is where V8 gives up and aborts the host:
    at four times the per-isolate limit, since nearer (1.5 times) V8 aborted
    on growth the isolate's limit stops gracefully (a loop keeping strings),
    and without it a bomb V8 cannot interrupt grows for gigabytes before V8
    dies.
    """
    ceiling = max(4 * memory_mb, 128)
    semi_space = max(1, min(16, memory_mb // 16))
    return (
        *DEFAULT_V8_FLAGS,
        "--no-incremental-marking",
        "--no-memory-reducer",
        f"--max-old-space-size={ceiling}",
        f"--min-semi-space-size={semi_space}",
        f"--max-semi-space-size={semi_space}",
    )


class V8Loop:
    """The host's asyncio loop, which mini-racer creates and frees isolates on, with V8 started.

    It runs on the thread that serves the parent, and only while an isolate
    is created or freed; calls bypass it (``Evaluations``). Sharing one loop
    keeps every isolate's setup on that thread however many scripts the host
    caches (mini-racer otherwise starts a loop thread per isolate).
    """

    def __init__(self, flags: tuple[str, ...]):
        self.loop = asyncio.new_event_loop()
        self.call(init_mini_racer, flags=flags)

    def call(self, function, *args, **kwargs):
        """Run ``function`` on the loop and return its result."""

        async def on_loop():
            return function(*args, **kwargs)

        return self.loop.run_until_complete(on_loop())


class Evaluations:
    """Batches of evaluations on one isolate's thread whose results are read without the asyncio loop.

    mini-racer's cancellable evaluation (``eval_cancelable``) hands each
    result over through an asyncio loop: a self-pipe write, loop turns and
    a task switch, about half of what a call cost. This starts evaluations
    as mini-racer's synchronous ``eval`` does (``mr_eval`` with callback 0,
    whose results V8's thread hands over in the order the evaluations ran)
    but keeps their task ids: one past its limit is stopped by V8's own
    termination (``mr_cancel_task``), as ``eval_cancelable`` stops it.
    Results are numbered as they arrive, so those of a stopped batch, which
    still come later, are dropped; the waiting thread is woken once, when
    the last result of its batch is in. The flag it waits on is a bare lock,
    held while the batch is unfinished: ``threading.Event`` goes through a
    condition and a waiter lock made for every wait, about two more futex
    calls per call of a script, partly on V8's thread.

    V8's thread hands results over by calling into Python, and a thread
    Python did not start gets a new thread state for every call (allocated,
    mapped and freed each time, a third of a call's cost). So the first
    result pins one on that thread for as long as the isolate lives, and
    ``release`` unpins it on the same thread before the isolate goes.

    What this uses of mini-racer's context: ``_dll``, ``_ctx``,
    ``_wrap_raw_handle``, ``_python_to_value_handle``,
    ``_value_handle_to_python`` and ``handle_callback_from_v8``.
    """

    def __init__(self, racer):
        self._context = racer._ctx
        # Evaluations started and results received since the isolate began;
        # the current batch's results are those numbered from ``_first`` on.
        self._started = self._received = self._first = 0
        self._answers: list[Any] = []
        # Released once per started batch, by the handler below, when its
        # last result is in; taken back by the wait that sees it, or by the
        # next start when the batch was stopped after all its results came.
        self._done = _thread.allocate_lock()
        self._done.acquire()
        # (thread, its PyGILState) while V8's thread holds a pinned thread state.
        self._pinned: tuple[int, int] | None = None
        self._unpin = False
        deliver = self._context.handle_callback_from_v8

        def handle(callback_id: int, raw: Any) -> None:
            # Runs on V8's thread, holding the GIL.
            if self._pinned is None and not self._unpin:
                self._pinned = (threading.get_ident(), _gil_ensure())
            elif self._unpin and self._pinned is not None and self._pinned[0] == threading.get_ident():
                _gil_release(self._pinned[1])
                self._pinned = None
            if callback_id != 0:
                deliver(callback_id, raw)
                return
            answer = self._context._wrap_raw_handle(raw)
            number, self._received = self._received, self._received + 1
            if number >= self._first:
                self._answers.append(answer)
                if self._received == self._started:
                    self._done.release()

        # The context's callback looks the handler up on the instance; the
        # dataclass is frozen, hence object.__setattr__.
        object.__setattr__(self._context, "handle_callback_from_v8", handle)

    def start(self, codes: list[str]) -> list[tuple[int, Any]]:
        """Queue ``codes`` for evaluation in turn, as the new batch; return their task ids and code handles."""
        # The handles first: once the first evaluation runs, V8's thread
        # wants the GIL to hand its result over.
        handles = [self._context._python_to_value_handle(code) for code in codes]
        # In this order, so that a late result of the last batch is never taken for this one's.
        self._first = self._started
        self._answers = []
        self._done.acquire(False)
        self._started += len(codes)
        return [(self._context._dll.mr_eval(self._context._ctx, handle.raw, 0), handle) for handle in handles]

    def wait(self, timeout: float | None) -> list[Any] | None:
        """The batch's raw results once all are in, waiting up to ``timeout`` seconds; None if they are not."""
        return self._answers if self._done.acquire(timeout=-1 if timeout is None else timeout) else None

    def value(self, raw: Any) -> Any:
        """Convert a raw result, raising mini-racer's exception for a failed evaluation."""
        return self._context._value_handle_to_python(raw)

    def stop(self, tasks: list[tuple[int, Any]]) -> None:
        """Terminate the batch's ``tasks``; their results, when they come, are dropped."""
        for task, _ in tasks:
            self._context._dll.mr_cancel_task(self._context._ctx, task)
        self._first = self._started

    def release(self) -> None:
        """Unpin the thread state of V8's thread, in the handler of one more evaluation's result."""
        if self._pinned is not None:
            self._unpin = True
            tasks = self.start(["0"])
            self.wait(None)
            del tasks


# PyDLL functions: called with the GIL held, as the handler above is.
_gil_ensure = ctypes.pythonapi.PyGILState_Ensure
_gil_ensure.restype = ctypes.c_int
_gil_release = ctypes.pythonapi.PyGILState_Release
_gil_release.argtypes = [ctypes.c_int]

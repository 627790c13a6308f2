"""V8 isolates for the script host: compiling a script, calling its ``main``, reporting failures.

Only the script host process (``host.py``) imports this module; the
web worker never loads mini-racer. An ``Engine`` is one isolate with the
runtime (``runtime.js``) and one compiled script, rewritten from the ES
module Knock accepts into a classic script by ``module_syntax``.

The engine is V8 through mini-racer: it JIT-compiles, so a pure-JavaScript
HMAC over a webhook body costs microseconds, and it stops a runaway call on a
wall-clock deadline. The isolate's hard heap limit catches growing arrays,
objects and strings, and the runtime counts ArrayBuffer memory, which lives
outside that heap, against the same limit; what neither sees (ICU's memory
behind ``Intl``, V8's own overhead) is caught by the host's growth during
the evaluation, which stops it the same way (``Engine._guarded``). A single builtin call that
materialises an enormous array cannot be interrupted and makes V8 abort the
process; that is why engines live in a host process at all.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import time
from pathlib import Path
from typing import Any

from py_mini_racer import JSEvalException, JSOOMException, JSParseException, JSTimeoutException, mini_racer

from knock_sources.scripting.module_syntax import SCRIPT_URL, to_classic_script
from knock_sources.scripting.protocol import MAX_MESSAGE, ScriptError, invalid_result, memory_thresholds, resident_bytes
from knock_sources.scripting.v8 import Evaluations, V8Loop

# The runtime every isolate evaluates before the script: a function expression,
# called as ``(RUNTIME_JS)(globalThis, <memory limit in bytes>, <token>)``. It
# removes what mini-racer adds that could outlive a call, counts ArrayBuffer
# memory against the limit (V8's heap limit does not see it), installs the
# Node-style helpers and the ``__knock`` call protocol, which only a caller
# holding the token can drive. Package data, read by path.
RUNTIME_JS = (Path(__file__).parent / "runtime.js").read_text(encoding="utf-8")

RUNTIME_URL = "knock-runtime.js"

# Kinds after which an isolate's state cannot be trusted, so it is freed.
DISPOSE_KINDS = frozenset({"timeout", "memory"})
# The runtime is trusted code; it only needs a bound so a broken machine fails.
_RUNTIME_SETUP_SECONDS = 10.0
# How often a running evaluation's memory is looked at.
_MEMORY_CHECK_SECONDS = 0.01


# --- engines ----------------------------------------------------------------------

_V8_HEADER = re.compile(r"^(?P<origin>.*?):(?P<line>\d+): (?P<message>.*)$")
_SCRIPT_FRAME = re.compile(re.escape(SCRIPT_URL) + r":(\d+):(\d+)")


class _OverMemory(Exception):
    """The host grew past what one call may use while an evaluation ran."""


def _v8_error(kind: str, text: str) -> ScriptError:
    """Turn mini-racer's error text into a ScriptError without the source excerpt."""
    lines = text.split("\n")
    header = _V8_HEADER.match(lines[0])
    message = header["message"] if header else lines[0]
    line = column = None
    frame = _SCRIPT_FRAME.search(text)
    if frame:
        line, column = int(frame[1]), int(frame[2])
    elif header and header["origin"] != RUNTIME_URL:
        line = int(header["line"])
        if len(lines) > 2 and re.fullmatch(r" *\^+", lines[2]):
            column = lines[2].index("^") + 1
    return ScriptError(kind, message[:MAX_MESSAGE], line, column)


class Engine:
    """One V8 isolate holding the runtime and one compiled script.

    An engine stopped by the time or memory limit frees its isolate and is
    closed from then on.
    """

    def __init__(self, loop: V8Loop, source: str, *, timeout_ms: int, memory_mb: int):
        self.source = source
        self._loop = loop
        self._timeout_ms = timeout_ms
        self._memory_mb = memory_mb
        self._growth_limit = memory_thresholds(memory_mb)[0]
        self._token = secrets.token_hex(16)
        self._exit = contextlib.ExitStack()
        self.closed = False
        self._racer = loop.call(self._exit.enter_context, mini_racer(loop.loop))
        self._evaluations = Evaluations(self._racer)
        # Set once main returned a promise: its settled report is then asked for with each call.
        self._asynchronous = False
        try:
            loop.call(self._racer.set_hard_memory_limit, memory_mb << 20)
            arguments = f"globalThis, {memory_mb << 20}, {json.dumps(self._token)}"
            self._eval(f"{RUNTIME_JS}({arguments});\n//# sourceURL={RUNTIME_URL}\n", _RUNTIME_SETUP_SECONDS)
            deadline = time.monotonic() + timeout_ms / 1000
            self._eval(to_classic_script(source), deadline - time.monotonic())
            found = self._eval(f'__knock.resolve("{self._token}")', deadline - time.monotonic())
        except BaseException:
            self.close()
            raise
        if found != "ok":
            self.close()
            raise ScriptError("no_main", "the script defines no main function (export function main(ctx) { ... })")

    def _limit(self, kind: str) -> ScriptError:
        """The failure of a call stopped by the time or memory limit."""
        if kind == "memory":
            return ScriptError("memory", f"the script exceeded the memory limit of {self._memory_mb} MB")
        return ScriptError("timeout", f"the script exceeded the time limit of {self._timeout_ms} ms")

    def _within_source(self, failure: ScriptError) -> ScriptError:
        # Errors at the end of input (an unclosed brace) or in the export
        # assignments appended by to_classic_script point past the user's
        # last line; they belong at its end.
        lines = self.source.split("\n")
        if failure.line is not None and failure.line > len(lines):
            failure.line, failure.column = len(lines), len(lines[-1]) + 1
        return failure

    def _guarded(self, codes: list[str], deadline: float, baseline: int | None) -> list[Any]:
        """Evaluate ``codes`` in turn, stopping them past ``deadline`` (monotonic) or the host's growth limit.

        The heap limit sees only V8's heap; the host's resident memory also
        counts what the heap does not (see ``protocol.memory_thresholds``):
        its growth since ``baseline`` (taken when the call began). Stopping
        is V8's own termination, as for the time limit, so the isolate ends
        cleanly and the host carries on. All of them are queued at once, so
        V8's thread runs them one after the other without waiting for this one.
        """
        tasks = self._evaluations.start(codes)
        while True:
            answers = self._evaluations.wait(max(0.0, min(_MEMORY_CHECK_SECONDS, deadline - time.monotonic())))
            if answers is not None:
                return [self._evaluations.value(answer) for answer in answers]
            now = resident_bytes()
            over = baseline is not None and now is not None and now - baseline > self._growth_limit
            if over or time.monotonic() >= deadline:
                self._evaluations.stop(tasks)
                raise _OverMemory() if over else JSTimeoutException()

    def _eval(self, code: str, remaining: float) -> Any:
        """Evaluate ``code`` within ``remaining`` seconds, translating V8 failures."""
        return self._evaluate([code], time.monotonic() + remaining, resident_bytes())[0]

    def _evaluate(self, codes: list[str], deadline: float, baseline: int | None) -> list[Any]:
        """Evaluate ``codes`` before ``deadline`` (monotonic) and return their values, translating V8 failures."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise self._limit("timeout")
        # ``from None`` everywhere: V8's own text quotes source lines and can
        # quote values, and a chained exception would carry it along.
        try:
            results = self._guarded(codes, deadline, baseline)
        except _OverMemory:
            raise self._limit("memory") from None
        except JSTimeoutException:
            raise self._limit("memory" if self._racer.was_hard_memory_limit_reached() else "timeout") from None
        except JSOOMException:
            raise self._limit("memory") from None
        except JSParseException as exc:
            raise self._within_source(_v8_error("syntax", str(exc))) from None
        except JSEvalException as exc:
            if self._racer.was_hard_memory_limit_reached():
                raise self._limit("memory") from None
            raise self._within_source(_v8_error("runtime", str(exc))) from None
        if self._racer.was_hard_memory_limit_reached():
            raise self._limit("memory")
        return results

    def _invoke(self, payload: str, deadline: float, baseline: int | None) -> str:
        """Run ``main`` on ``payload``; return the runtime's report.

        A main that returns a promise settles in the promise jobs V8 runs
        after the evaluation, so its report is read by an evaluation of its
        own; once main has returned a promise, that one is queued with every
        call, so V8 runs both without a round trip in between.
        """
        invoke = f'__knock.invoke("{self._token}",{json.dumps(payload)})'
        settled = f'__knock.settled("{self._token}")'
        if self._asynchronous:
            report, later = self._evaluate([invoke, settled], deadline, baseline)
        else:
            (report,), later = self._evaluate([invoke], deadline, baseline), None
        if report == "":
            if not self._asynchronous:
                self._asynchronous = True
                (later,) = self._evaluate([settled], deadline, baseline)
            # Scripts have no timers or I/O, so a promise unsettled once its
            # jobs have run never settles.
            if later is None:
                raise ScriptError("timeout", "main returned a promise that never settles")
            report = later
        return report

    def call(self, payload: str, baseline: int | None = None) -> str:
        """Run ``main`` on ``payload`` (the JSON text of ctx) and return its result's JSON text.

        ``baseline`` is the host's resident memory the call's growth is
        measured from (by default, read now). Raises ``ScriptError``, of kind
        ``invalid_result`` when main returned no plain object.
        """
        if self.closed:
            raise RuntimeError("this engine is closed")
        deadline = time.monotonic() + self._timeout_ms / 1000
        try:
            raw = self._invoke(payload, deadline, resident_bytes() if baseline is None else baseline)
        except ScriptError as failure:
            if failure.kind in DISPOSE_KINDS:
                self.close()
            raise
        # The runtime puts the result's JSON on a line of its own after the
        # report, so it reaches the parent without being parsed here.
        report, _, result = raw.partition("\n")
        outcome = json.loads(report)
        if outcome["live"] > self._memory_mb << 19:
            # ArrayBuffers are credited back once collected, and V8 may not
            # collect before the next call needs the room. The evaluation
            # after it waits until the collection is over.
            self._loop.call(self._racer.low_memory_notification)
            self._eval("0", _RUNTIME_SETUP_SECONDS)
        if outcome["oom"]:
            raise self._limit("memory")
        if "error" in outcome:
            error = outcome["error"]
            message = f"{error['name']}: {error['message']}" if error["name"] else error["message"]
            raise self._within_source(ScriptError("runtime", message[:MAX_MESSAGE], error["line"], error["column"]))
        if "unserializable" in outcome:
            message = f"main's result cannot be converted to JSON: {outcome['unserializable']['message']}"
            raise ScriptError("invalid_result", message[:MAX_MESSAGE])
        if "invalid" in outcome:
            raise invalid_result(outcome["invalid"])
        return result

    def close(self) -> None:
        """Free the isolate."""
        if not self.closed:
            self.closed = True
            self._evaluations.release()
            self._loop.call(self._exit.close)


class EngineCache:
    """The engines of one host by slot number, and the compile failures of their sources."""

    def __init__(self, loop: V8Loop, *, timeout_ms: int, memory_mb: int):
        self._loop = loop
        self._limits = {"timeout_ms": timeout_ms, "memory_mb": memory_mb}
        self._engines: dict[int, Engine] = {}
        self._failures: dict[int, tuple[str, ScriptError]] = {}

    def new(self, source: str) -> Engine:
        """Compile ``source`` in an isolate of its own, which the caller closes."""
        return Engine(self._loop, source, **self._limits)

    def ready(self, slot: int, source: str) -> bool:
        """Whether the slot holds a usable engine for ``source`` (``get`` compiles nothing)."""
        engine = self._engines.get(slot)
        return engine is not None and not engine.closed and engine.source == source

    def get(self, slot: int, source: str) -> Engine:
        """Return the slot's engine for ``source``, compiling it when the slot has none for it."""
        if self.ready(slot, source):
            return self._engines[slot]
        failure = self._failures.get(slot)
        if failure is not None and failure[0] == source:
            raise failure[1].copy()
        self.dispose(slot)
        try:
            engine = self._engines[slot] = self.new(source)
        except ScriptError as error:
            # A script that does not compile fails the same way every time;
            # limits may depend on load, so those are retried.
            if error.kind not in DISPOSE_KINDS:
                self._failures[slot] = (source, error)
            raise
        return engine

    def dispose(self, slot: int) -> None:
        """Free the slot's isolate and forget its failure."""
        self._failures.pop(slot, None)
        engine = self._engines.pop(slot, None)
        if engine is not None:
            engine.close()

"""Sandboxed JavaScript runtime for custom source scripts (``main(ctx)``).

Scripts are written for Knock, so they arrive as ES modules (``export function
main``, ``export default async (ctx) => ...``). The module syntax is rewritten
into an equivalent classic script that keeps every line and, where possible,
every column where it was, so error locations point at the user's source.

The engine is V8 through mini-racer: it JIT-compiles, so a pure-JavaScript
HMAC over a webhook body costs microseconds, and it stops a runaway call on a
wall-clock deadline from another thread. Each cache key gets its own isolate,
which is the unit V8 isolates memory and globals by, so nothing a script does
is visible to another key's script. The runtime adds a Node-style ``crypto``
subset, ``Buffer``, ``atob``/``btoa`` and ``TextEncoder``/``TextDecoder``
(``scripting_runtime.py``); V8 itself has no filesystem, network, process,
module loader or timers, and the runtime removes the ``setTimeout`` that
mini-racer installs.

Limits. The isolate's hard heap limit catches growing arrays, objects and
strings. ArrayBuffer memory lives outside that heap, so the runtime counts
every typed-array and ArrayBuffer allocation against the same limit. A single
builtin call that materialises an enormous array in one step (for example
``new Array(2 ** 27).fill(0)``) cannot be interrupted by V8 and, past V8's own
heap ceiling, aborts the whole process: V8 treats that as fatal by design. Keep
script authors trusted, or run the web workers under a supervisor that
restarts them, as gunicorn does.

Every V8 operation of the process is serialised and isolates are created on
one long-lived thread: mini-racer 0.14 crashes otherwise (see ``_v8_lock``
and ``_v8_call``). A script stopped at its time limit therefore delays the
other scripts of its process by up to that limit.

V8 does not survive ``fork()``: a process forked after it ran a script gets
a RuntimeError from the runner, so run no script in a gunicorn master. A
process forked before any script ran is unaffected.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import json
import os
import re
import secrets
import threading
import time
import weakref
from collections import OrderedDict
from typing import Any, Hashable

from py_mini_racer import (
    DEFAULT_V8_FLAGS,
    JSEvalException,
    JSOOMException,
    JSParseException,
    JSTimeoutException,
    init_mini_racer,
    mini_racer,
)

from knock_sources.scripting_runtime import RUNTIME_JS

SCRIPT_URL = "script.js"
RUNTIME_URL = "knock-runtime.js"

# Kinds after which the engine's state cannot be trusted, so it is disposed.
_DISPOSE_KINDS = frozenset({"timeout", "memory"})
_PENDING = "P"
# What a result's toJSON() turned into, named the way JavaScript names it.
_JSON_TYPES = {type(None): "null", str: "string", int: "number", float: "number", bool: "boolean", list: "array"}
_MAX_MESSAGE = 1000
# The runtime is trusted code; it only needs a bound so a broken machine fails.
_RUNTIME_SETUP_SECONDS = 10.0


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


# --- module syntax -> classic script -------------------------------------------

# Comments and string literals come first so that ``export`` inside them is
# skipped; template literals with nested backticks are not recognised, which
# only matters if one contains the word export.
_MODULE_SYNTAX = re.compile(
    r"""
    (?P<skip>//[^\n]*|/\*.*?\*/|"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*'|`(?:\\.|[^`\\])*`)
    | (?<![\w$.])(?P<default>export\s+default)(?![\w$])
      (?=\s+(?:async\s+)?function\b\s*\*?\s*(?P<function>[A-Za-z_$][\w$]*)|\s+class\s+(?P<cls>[A-Za-z_$][\w$]*)|)
    | (?<![\w$.])(?P<export>export)(?=\s+(?:async\s+function|function|class|const|let|var)(?![\w$]))
    | (?<![\w$.])(?P<list>export\s*\{(?P<names>[^}]*)\}\s*;?)
    """,
    re.S | re.X,
)
_IDENTIFIER = re.compile(r"[A-Za-z_$][\w$]*")


def _blank(text: str) -> str:
    """Replace ``text`` by spaces of the same length, keeping its newlines."""
    return re.sub(r"[^\n]", " ", text)


def to_classic_script(source: str) -> str:
    """Rewrite the ES module syntax Knock accepts into a classic script.

    ``export`` before a declaration is dropped, ``export default`` of a named
    function or class becomes that declaration, any other ``export default``
    expression and ``export {a as b}`` lists are recorded on the ``__kx``
    exports object. ``import`` is left alone, so V8 reports it as a syntax
    error at its own line.
    """
    appended: list[str] = []

    def rewrite(match: re.Match) -> str:
        text = match.group(0)
        if match.group("skip"):
            return text
        if match.group("default"):
            name = match.group("function") or match.group("cls")
            if name:
                appended.append(f"__kx.default = {name};")
                return _blank(text)
            target = "__kx.default="
            newlines = text.count("\n")
            return target.ljust(len(text) - newlines) + "\n" * newlines
        if match.group("export"):
            return _blank(text)
        for item in match.group("names").split(","):
            parts = item.split()
            if len(parts) == 1 and _IDENTIFIER.fullmatch(parts[0]):
                appended.append(f"__kx[{json.dumps(parts[0])}] = {parts[0]};")
            elif len(parts) == 3 and parts[1] == "as" and _IDENTIFIER.fullmatch(parts[0]):
                exported = json.dumps(parts[2].strip("'\""))
                appended.append(f"__kx[{exported}] = {parts[0]};")
        return _blank(text)

    body = _MODULE_SYNTAX.sub(rewrite, source)
    tail = "\n;" + " ".join(appended) if appended else ""
    return f"{body}{tail}\n//# sourceURL={SCRIPT_URL}\n"


# --- engines ----------------------------------------------------------------------

_V8_HEADER = re.compile(r"^(?P<origin>.*?):(?P<line>\d+): (?P<message>.*)$")
_SCRIPT_FRAME = re.compile(re.escape(SCRIPT_URL) + r":(\d+):(\d+)")

_loop_lock = threading.Lock()
_loop_state: tuple[int, asyncio.AbstractEventLoop, threading.Thread] | None = None
_started_before_fork = False
_live_engines: weakref.WeakSet[_Engine] = weakref.WeakSet()

# With mini-racer 0.14 (V8 14.4), creating an isolate while another isolate
# does work on its own thread crashes the process inside
# Isolate::InitializeBuiltinJSDispatchTable. That work includes garbage
# collection tasks V8 schedules on idle isolates, which these flags turn off
# (stop-the-world collection of a heap of a few MB costs little), and the
# evaluations themselves, which the lock below serialises. Serialising costs
# nothing in one thread and little under gunicorn's threads, which share the
# GIL anyway; the price is that a script stopped at its time limit delays the
# other scripts of the process by that long. Each of the three measures was
# needed for tests/test_scripting.py's thread test to stop crashing.
V8_FLAGS = (*DEFAULT_V8_FLAGS, "--no-incremental-marking", "--no-memory-reducer")
_v8_lock = threading.RLock()


async def _on_loop(function, *args, **kwargs):
    """Run ``function`` as a coroutine, so that the loop thread runs it."""
    return function(*args, **kwargs)


def _v8_call(function, *args, **kwargs):
    """Run ``function`` on the loop thread and return its result.

    Starting V8, creating and freeing isolates and collecting garbage all
    happen on that one long-lived thread (mini-racer already evaluates there):
    done from request threads, which come and go, creating an isolate
    crashes inside Isolate::InitializeBuiltinJSDispatchTable.
    """
    return asyncio.run_coroutine_threadsafe(_on_loop(function, *args, **kwargs), _event_loop()).result()


def _event_loop() -> asyncio.AbstractEventLoop:
    """Return the process's asyncio loop that mini-racer delivers results on.

    mini-racer otherwise starts one loop thread per isolate; sharing one keeps
    a process with hundreds of cached scripts at one extra Python thread.
    """
    global _loop_state
    with _loop_lock:
        if _started_before_fork:
            raise RuntimeError(
                "V8 was started before this process was forked and cannot be used here: run no script "
                "in a gunicorn master (preload_app) or any process before it forks"
            )
        if _loop_state is None:
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="knock-sources-scripting", daemon=True)
            thread.start()
            # A no-op when V8 is already running; nothing else in the
            # project starts it.
            asyncio.run_coroutine_threadsafe(_on_loop(init_mini_racer, flags=V8_FLAGS, ignore_duplicate_init=True),
                                             loop).result()
            _loop_state = (os.getpid(), loop, thread)
        return _loop_state[1]


def _forget_parent_engines() -> None:
    """In a forked child, drop the parent's isolates and loop: their threads did not survive.

    The engines are marked closed without being freed (freeing would wait
    for threads that do not exist here). V8 itself cannot be used again: it
    must create isolates on the thread that started it, which is gone.
    """
    global _loop_state, _live_engines, _v8_lock, _started_before_fork
    _started_before_fork = _started_before_fork or _loop_state is not None
    for engine in list(_live_engines):
        engine.abandon()
    _live_engines = weakref.WeakSet()
    _loop_state = None
    _v8_lock = threading.RLock()


os.register_at_fork(after_in_child=_forget_parent_engines)


@atexit.register
def _shutdown() -> None:
    """Dispose engines and stop the loop before the interpreter tears down."""
    for engine in list(_live_engines):
        engine.close()
    with _loop_lock:
        if _loop_state is None or _loop_state[0] != os.getpid():
            return
        _, loop, thread = _loop_state
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=1)
    if not thread.is_alive() and not _live_engines:
        loop.close()


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
    return ScriptError(kind, message[:_MAX_MESSAGE], line, column)


class _Engine:
    """One V8 isolate holding the runtime and one compiled script.

    An engine stopped by the time or memory limit frees its isolate before
    it lets go of the V8 lock, and is closed from then on.
    """

    def __init__(self, source: str, *, timeout_ms: int, memory_mb: int):
        self.source = source
        self._timeout_ms = timeout_ms
        self._memory_mb = memory_mb
        self._token = secrets.token_hex(16)
        self._exit = contextlib.ExitStack()
        self._closed = False
        with _v8_lock:
            self._racer = _v8_call(self._exit.enter_context, mini_racer(_event_loop()))
            _live_engines.add(self)
            try:
                _v8_call(self._racer.set_hard_memory_limit, memory_mb << 20)
                arguments = f"globalThis, {memory_mb << 20}, {json.dumps(self._token)}"
                runtime = f"{RUNTIME_JS}({arguments});\n//# sourceURL={RUNTIME_URL}\n"
                self._eval(runtime, time.monotonic() + _RUNTIME_SETUP_SECONDS)
                deadline = time.monotonic() + timeout_ms / 1000
                self._eval(to_classic_script(source), deadline)
                found = self._eval(f'__knock.resolve("{self._token}")', deadline)
            except BaseException:
                self.close()
                raise
        if found != "ok":
            self.close()
            raise ScriptError("no_main", "the script defines no main function (export function main(ctx) { ... })")

    def _limit(self, kind: str) -> ScriptError:
        """The error for a call stopped by the time or memory limit."""
        if kind == "memory":
            return ScriptError("memory", f"the script exceeded the memory limit of {self._memory_mb} MB")
        return ScriptError("timeout", f"the script exceeded the time limit of {self._timeout_ms} ms")

    def _within_source(self, error: ScriptError) -> ScriptError:
        # Errors at the end of input (an unclosed brace) or in the export
        # assignments appended by to_classic_script point past the user's
        # last line; they belong at its end.
        lines = self.source.split("\n")
        if error.line is not None and error.line > len(lines):
            error.line, error.column = len(lines), len(lines[-1]) + 1
        return error

    def _eval(self, code: str, deadline: float) -> Any:
        """Evaluate ``code`` before ``deadline``, translating V8 failures into ScriptErrors.

        The caller holds the V8 lock.
        """
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise self._limit("timeout")
        # ``from None`` everywhere: V8's own text quotes source lines and can
        # quote values, and a chained exception would carry it into logs.
        try:
            result = self._racer.eval(code, timeout_sec=remaining)
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
        return result

    def call(self, payload: str) -> dict:
        """Run ``main`` on ``payload`` (the JSON text of ctx) and return its result."""
        literal = json.dumps(payload)
        with _v8_lock:
            if self._closed:
                raise RuntimeError("this engine is closed")
            deadline = time.monotonic() + self._timeout_ms / 1000
            try:
                outcome = self._invoke(literal, deadline)
            except ScriptError as error:
                if error.kind in _DISPOSE_KINDS:
                    self.close()
                raise
        if outcome["oom"]:
            raise self._limit("memory")
        if "error" in outcome:
            error = outcome["error"]
            message = f"{error['name']}: {error['message']}" if error["name"] else error["message"]
            raise self._within_source(ScriptError("runtime", message[:_MAX_MESSAGE], error["line"], error["column"]))
        if "unserializable" in outcome:
            error = outcome["unserializable"]
            message = f"main's result cannot be converted to JSON: {error['message']}"
            raise ScriptError("invalid_result", message[:_MAX_MESSAGE])
        result = outcome.get("ok")
        if not isinstance(result, dict):
            got = outcome.get("invalid") or _JSON_TYPES[type(result)]
            raise ScriptError("invalid_result", f"main must return an object such as {{verified: true}}, not {got}")
        return result

    def _invoke(self, literal: str, deadline: float) -> dict:
        """Call main and return the runtime's report of the outcome."""
        self._eval(f'__knock.invoke("{self._token}",{literal})', deadline)
        # Promise jobs have all run by the time the next evaluation starts,
        # and scripts have no timers or I/O: still pending means never.
        raw = self._eval(f'__knock.settle("{self._token}")', deadline)
        if raw == _PENDING:
            raise ScriptError("timeout", "main returned a promise that never settles")
        outcome = json.loads(raw)
        if outcome["live"] > self._memory_mb << 19:
            # ArrayBuffers are credited back once collected, and V8 may not
            # collect before the next call needs the room. The evaluation
            # after it waits until the collection is over.
            _v8_call(self._racer.low_memory_notification)
            self._eval("0", time.monotonic() + _RUNTIME_SETUP_SECONDS)
        return outcome

    def close(self) -> None:
        """Free the isolate. Blocks while V8 finishes a builtin it cannot interrupt."""
        with _v8_lock:
            if self._closed:
                return
            self._closed = True
            _live_engines.discard(self)
            _v8_call(self._exit.close)

    @property
    def closed(self) -> bool:
        """Whether the isolate was freed or abandoned."""
        return self._closed

    def abandon(self) -> None:
        """Mark the isolate unusable without freeing it (in a forked child).

        Freeing waits for the isolate's thread, which only exists in the
        parent, and so does the context generator's ``finally`` if it is ever
        finalised: the popped exit stack is leaked on purpose.
        """
        self._closed = True
        ctypes.pythonapi.Py_IncRef(ctypes.py_object(self._exit.pop_all()))


# --- redaction --------------------------------------------------------------------

def _variable_values(value: Any, found: set[str]) -> set[str]:
    """Collect every string and number inside ``value`` as text."""
    if isinstance(value, dict):
        for item in value.values():
            _variable_values(item, found)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _variable_values(item, found)
    elif isinstance(value, str) and value:
        found.add(value)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        found.add(json.dumps(value))
    return found


def _redact(error: ScriptError, variables: Any) -> ScriptError:
    """Return ``error`` with every variable value in its message replaced."""
    message = error.message
    for value in sorted(_variable_values(variables, set()), key=len, reverse=True):
        if len(value) >= 4:
            message = message.replace(value, "[redacted]")
        else:
            # Short values are replaced only as whole words, so a variable
            # holding "e" does not turn "TypeError" into nonsense.
            message = re.sub(rf"(?<![\w$]){re.escape(value)}(?![\w$])", "[redacted]", message)
    return ScriptError(error.kind, message, error.line, error.column)


def _payload(ctx: dict) -> str:
    """Serialise ctx once; the runtime parses it into fresh objects per call."""
    return json.dumps(ctx, separators=(",", ":"), ensure_ascii=False)


# --- public entry points --------------------------------------------------------


def check_script(source: str, *, timeout_ms: int = 250, memory_mb: int = 32) -> None:
    """Compile ``source`` and evaluate its top level in a throwaway isolate.

    Raises ScriptError: kind ``syntax`` (with line and column) when it does
    not compile, ``no_main`` when it defines no ``main`` function, or
    ``runtime``/``timeout``/``memory`` when its top-level code fails.
    """
    _Engine(source, timeout_ms=timeout_ms, memory_mb=memory_mb).close()


class _Slot:
    """A cache entry: the engine of one key, and the lock that serialises it."""

    def __init__(self):
        self.lock = threading.Lock()
        self.engine: _Engine | None = None
        self.failure: tuple[str, ScriptError] | None = None
        self.evicted = False

    def dispose(self) -> None:
        """Free the slot's isolate."""
        engine, self.engine = self.engine, None
        if engine is not None:
            engine.close()


class ScriptRunner:
    """Runs scripts' ``main(ctx)``, one cached V8 isolate per cache key.

    ``timeout_ms`` bounds each call by wall-clock time and ``memory_mb`` the
    heap and array-buffer memory of each isolate; at most ``max_cached``
    isolates are kept, least recently used first out. Safe to share between
    threads: calls for one key are serialised, different keys run in parallel.
    """

    def __init__(self, timeout_ms: int = 250, memory_mb: int = 32, max_cached: int = 256):
        if timeout_ms <= 0 or memory_mb <= 0 or max_cached <= 0:
            raise ValueError("timeout_ms, memory_mb and max_cached must be positive")
        self.timeout_ms = timeout_ms
        self.memory_mb = memory_mb
        self.max_cached = max_cached
        self._slots: OrderedDict[Hashable, _Slot] = OrderedDict()
        self._lock = threading.Lock()
        self._closed = False

    def run(self, cache_key: Hashable, source: str, ctx: dict) -> dict:
        """Call the script's ``main(ctx)`` and return the object it returned.

        ``cache_key`` identifies the compiled script, for example
        ``(source_environment_id, script_version)``: a script is compiled once
        per process and key, and two keys never share an isolate. ``ctx`` is
        ``{"vars", "body", "rawBody", "headers"}`` with lower-cased header
        names; it must be JSON-serialisable. Interpreting ``verified`` and the
        other keys is the caller's job. Raises ScriptError.
        """
        payload = _payload(ctx)
        while True:
            slot = self._slot(cache_key)
            with slot.lock:
                if slot.evicted:
                    continue
                try:
                    return self._engine(slot, source).call(payload)
                except ScriptError as error:
                    raise _redact(error, ctx.get("vars")) from None

    def run_once(self, source: str, ctx: dict) -> dict:
        """Run ``source`` in a fresh isolate that is disposed afterwards.

        For "Test script" and rehearsals of unsaved scripts, which should not
        take a cache slot. Raises ScriptError.
        """
        try:
            engine = _Engine(source, timeout_ms=self.timeout_ms, memory_mb=self.memory_mb)
        except ScriptError as error:
            raise _redact(error, ctx.get("vars")) from None
        try:
            return engine.call(_payload(ctx))
        except ScriptError as error:
            raise _redact(error, ctx.get("vars")) from None
        finally:
            engine.close()

    def discard(self, cache_key: Hashable) -> None:
        """Dispose the isolate of ``cache_key``, for example when its source is deleted."""
        with self._lock:
            slot = self._slots.pop(cache_key, None)
        if slot is not None:
            self._evict(slot)

    def close(self) -> None:
        """Dispose every isolate; the runner cannot be used afterwards."""
        with self._lock:
            self._closed = True
            slots = list(self._slots.values())
            self._slots.clear()
        for slot in slots:
            self._evict(slot)

    def __enter__(self) -> ScriptRunner:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _slot(self, cache_key: Hashable) -> _Slot:
        evicted = []
        with self._lock:
            if self._closed:
                raise RuntimeError("this ScriptRunner is closed")
            slot = self._slots.get(cache_key)
            if slot is None:
                slot = self._slots[cache_key] = _Slot()
            self._slots.move_to_end(cache_key)
            while len(self._slots) > self.max_cached:
                evicted.append(self._slots.popitem(last=False)[1])
        for old in evicted:
            self._evict(old)
        return slot

    @staticmethod
    def _evict(slot: _Slot) -> None:
        # Waits for a call in progress on that slot, so an isolate is never
        # freed under a running script.
        with slot.lock:
            slot.evicted = True
            slot.dispose()

    def _engine(self, slot: _Slot, source: str) -> _Engine:
        if slot.engine is not None and not slot.engine.closed and slot.engine.source == source:
            return slot.engine
        if slot.failure is not None and slot.failure[0] == source:
            raise slot.failure[1].copy()
        slot.dispose()
        slot.failure = None
        try:
            slot.engine = _Engine(source, timeout_ms=self.timeout_ms, memory_mb=self.memory_mb)
        except ScriptError as error:
            # A script that does not compile fails the same way every time;
            # limits may depend on load, so those are retried.
            if error.kind not in _DISPOSE_KINDS:
                slot.failure = (source, error)
            raise
        return slot.engine

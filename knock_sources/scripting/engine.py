"""V8 isolates for the script host: compiling a script, calling its ``main``, reporting failures.

Only the script host process (``host.py``) imports this module; the
web worker never loads mini-racer. An ``Engine`` is one isolate with the
runtime (``runtime.js``) and one compiled script. Scripts arrive as
the ES modules Knock accepts (``export function main``, ``export default async
(ctx) => ...``); ``to_classic_script`` rewrites the module syntax into an
equivalent classic script that keeps every line and, where possible, every
column where it was, so error locations point at the user's source.

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

import asyncio
import contextlib
import json
import re
import secrets
import time
from pathlib import Path
from typing import Any

from py_mini_racer import (
    DEFAULT_V8_FLAGS,
    JSEvalException,
    JSOOMException,
    JSParseException,
    JSTimeoutException,
    init_mini_racer,
    mini_racer,
)

from knock_sources.scripting.protocol import MAX_MESSAGE, ScriptError, invalid_result, memory_thresholds, resident_bytes

# The runtime every isolate evaluates before the script: a function expression,
# called as ``(RUNTIME_JS)(globalThis, <memory limit in bytes>, <token>)``. It
# removes what mini-racer adds that could outlive a call, counts ArrayBuffer
# memory against the limit (V8's heap limit does not see it), installs the
# Node-style helpers and the ``__knock`` call protocol, which only a caller
# holding the token can drive. Package data, read by path.
RUNTIME_JS = (Path(__file__).parent / "runtime.js").read_text(encoding="utf-8")

SCRIPT_URL = "script.js"
RUNTIME_URL = "knock-runtime.js"

# Kinds after which an isolate's state cannot be trusted, so it is freed.
DISPOSE_KINDS = frozenset({"timeout", "memory"})
# The runtime is trusted code; it only needs a bound so a broken machine fails.
_RUNTIME_SETUP_SECONDS = 10.0
# How often a running evaluation's memory is looked at.
_MEMORY_CHECK_SECONDS = 0.01


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
    error at its own line. Every line, and where possible every column, stays
    where it was, so error locations point at the user's source.
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


class _OverMemory(Exception):
    """The host grew past what one call may use while an evaluation ran."""


class V8Loop:
    """The host's asyncio loop, which mini-racer delivers results on, with V8 started.

    It runs on the thread that serves the parent, and only while a call is
    answered: a result reaches the thread waiting for it with no hop through
    a loop thread, which cost a wake-up of another thread each way per call.
    Sharing one loop keeps every isolate's work on that thread however many
    scripts the host caches (mini-racer otherwise starts a loop thread per
    isolate): starting V8 and creating and freeing isolates all happen on it.
    What mini-racer delivers between calls waits in the loop for the next one.
    """

    def __init__(self, flags: tuple[str, ...]):
        self.loop = asyncio.new_event_loop()
        self.call(init_mini_racer, flags=flags)

    def call(self, function, *args, **kwargs):
        """Run ``function`` on the loop and return its result."""

        async def on_loop():
            return function(*args, **kwargs)

        return self.run(on_loop())

    def run(self, coroutine):
        """Run ``coroutine`` on the loop until it is done and return its result."""
        return self.loop.run_until_complete(coroutine)


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

    async def _guarded(self, code: str, remaining: float, baseline: int | None) -> Any:
        """Evaluate ``code`` on the loop, stopping it past ``remaining`` seconds or the host's growth limit.

        The heap limit sees only V8's heap; the host's resident memory also
        counts what the heap does not (see ``protocol.memory_thresholds``):
        its growth since ``baseline`` (taken when the call began). Stopping
        is V8's own termination, as for the time limit, so the isolate ends
        cleanly and the host carries on.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + remaining
        task = asyncio.ensure_future(self._racer.eval_cancelable(code))
        while True:
            done, _ = await asyncio.wait({task}, timeout=max(0.0, min(_MEMORY_CHECK_SECONDS, deadline - loop.time())))
            if done:
                return task.result()
            now = resident_bytes()
            over = baseline is not None and now is not None and now - baseline > self._growth_limit
            if over or loop.time() >= deadline:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                raise _OverMemory() if over else JSTimeoutException()

    def _eval(self, code: str, remaining: float) -> Any:
        """Evaluate ``code`` within ``remaining`` seconds, translating V8 failures (from the host's thread)."""
        return self._loop.run(self._evaluate(code, time.monotonic() + remaining, resident_bytes()))

    async def _evaluate(self, code: str, deadline: float, baseline: int | None) -> Any:
        """Evaluate ``code`` before ``deadline`` (monotonic), on the loop, translating V8 failures."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise self._limit("timeout")
        # ``from None`` everywhere: V8's own text quotes source lines and can
        # quote values, and a chained exception would carry it along.
        try:
            result = await self._guarded(code, remaining, baseline)
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
        return result

    async def _invoke(self, payload: str, deadline: float, baseline: int | None) -> str:
        """Run ``main`` on ``payload``; return the runtime's report (one trip to the loop for the whole call)."""
        raw = await self._evaluate(f'__knock.invoke("{self._token}",{json.dumps(payload)})', deadline, baseline)
        if not isinstance(raw, str):
            # An async main: the call's state, which its promise jobs filled
            # in when the evaluation ended (read without another evaluation;
            # scripts have no timers or I/O, so unfilled means never).
            raw = raw["json"]
            if raw is None:
                raise ScriptError("timeout", "main returned a promise that never settles")
        return raw

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
            raw = self._loop.run(self._invoke(payload, deadline, resident_bytes() if baseline is None else baseline))
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

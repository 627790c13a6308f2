"""The parent side of the script sandbox: ``ScriptRunner`` and ``check_script``.

Scripts are written for Knock: modules whose ``main(ctx)`` gets ``vars``,
``body``, ``rawBody`` and ``headers`` and returns ``{verified, ...}``. They
run in V8 through mini-racer, which JIT-compiles, so a pure-JavaScript HMAC
over a webhook body costs microseconds, next to a Node-style ``crypto``
subset, ``Buffer``, ``atob``/``btoa`` and ``TextEncoder``/``TextDecoder``
(``runtime.js``) and without filesystem, network, process, module
loader or timers.

Process model. V8 runs in a script host process (``host.py``, with
the engines of ``engine.py``) that each runner starts on first use,
never in the calling process: a single builtin call that materialises an
enormous array (``new Array(2 ** 27).fill(0)``) cannot be interrupted, and
V8 answers it by aborting its whole process. The host stops scripts at their
limits itself, the memory limit counting what V8's heap does not see
(``protocol.memory_thresholds``). A host that dies during a call, or is
still busy after the time limit and has grown by twice what a call may use,
is reported as ``memory``; one that does not answer within twice the time
limit plus a second is killed and reported as ``timeout`` (``memory`` if it
had grown by more than a call may use). Either way the next call gets
a fresh host, which compiles the cached scripts again as they are used; a
host that died between calls is replaced without an error.

Each cache key gets its own isolate in the host, the unit V8 separates memory
and globals by, so nothing a script does is visible to another key's script.
The isolate's heap limit catches growing arrays, objects and strings; the
runtime counts ArrayBuffer memory against the same limit.

A runner's calls are serialised, as all V8 work of a process has to be with
mini-racer 0.14 (see ``engine.v8_flags``): a script stopped at its time
limit delays the runner's other calls by as long. A forked process (a gunicorn
worker) starts a host of its own on its first call and leaves its parent's
alone. A host exits when its runner is closed or collected, at interpreter
exit, and when the process that started it dies.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import re
import threading
import time
import weakref
from collections import OrderedDict
from typing import Any, Hashable

from knock_sources.errors import ScriptUnavailable
from knock_sources.scripting.process import HostProcess
from knock_sources.scripting.protocol import HostLost, ScriptError, invalid_result, memory_thresholds

log = logging.getLogger(__name__)

# Beyond the script's own limits, which apply to its top-level code and to
# main separately: for creating an isolate and its runtime on a busy machine.
_GRACE_SECONDS = 1.0
# A host still busy this long after the script's time limit is watched for
# growth beyond what a script may use (protocol.memory_thresholds).
_WATCH_AFTER_SECONDS = 0.05
# What a result's toJSON() turned into, named the way JavaScript names it.
_JSON_TYPES = {type(None): "null", str: "string", int: "number", float: "number", bool: "boolean", list: "array"}


# --- redaction --------------------------------------------------------------------

REDACTED = "[redacted]"
# Values shorter than this are replaced only as whole words, so a variable
# holding "e" does not turn "TypeError" into nonsense.
_WHOLE_WORD_BELOW = 4


def variable_values(value: Any, found: set[str] | None = None) -> set[str]:
    """Collect every string and number inside ``value`` as text (what redaction looks for)."""
    found = set() if found is None else found
    if isinstance(value, dict):
        for item in value.values():
            variable_values(item, found)
    elif isinstance(value, (list, tuple)):
        for item in value:
            variable_values(item, found)
    elif isinstance(value, str) and value:
        found.add(value)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        found.add(json.dumps(value))
    return found


def redact_text(text: str, values: set[str]) -> str:
    """Return ``text`` with each of ``values`` replaced by ``[redacted]``, longest first."""
    for value in sorted(values, key=len, reverse=True):
        if len(value) >= _WHOLE_WORD_BELOW:
            text = text.replace(value, REDACTED)
        elif value in text:
            text = re.sub(rf"(?<![\w$]){re.escape(value)}(?![\w$])", REDACTED, text)
    return text


def redact_json(value: Any, values: set[str]) -> Any:
    """Return a copy of JSON ``value`` with ``values`` redacted from every string, key and number."""
    if not values:
        return value
    if isinstance(value, dict):
        return {redact_text(key, values): redact_json(item, values) for key, item in value.items()}
    if isinstance(value, list):
        return [redact_json(item, values) for item in value]
    if isinstance(value, str):
        return redact_text(value, values)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and json.dumps(value) in values:
        return REDACTED
    return value


def _redact(error: ScriptError, variables: Any) -> ScriptError:
    """Return ``error`` with every variable value in its message replaced."""
    message = redact_text(error.message, variable_values(variables))
    return ScriptError(error.kind, message, error.line, error.column)


# Built once: json.dumps with options other than the defaults builds an encoder per call.
_encode_ctx = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


def _ctx_json(ctx: dict) -> str:
    """Serialise ctx as standard JSON, which is all ``JSON.parse`` in the isolate reads.

    ``NaN`` or ``Infinity`` (a value JSON cannot carry) fails the call as a
    runtime error rather than every script of the environment.
    """
    try:
        return _encode_ctx(ctx)
    except ValueError:
        raise ScriptError("runtime", "ctx holds a number JSON cannot carry (NaN or Infinity)") from None


# --- runners ----------------------------------------------------------------------------


def _unavailable(why: str) -> ScriptUnavailable:
    """Log a host failure (the operator's problem, not the script's) and return the error for the caller."""
    log.error("%s", why)
    return ScriptUnavailable("The script could not be run; retry later.")


_runners: weakref.WeakSet[ScriptRunner] = weakref.WeakSet()


#: A script that takes the host down twice within ``CRASH_WINDOW_SECONDS`` is
#: refused for ``QUARANTINE_SECONDS``, unless its source changes. Once may be
#: one hostile payload; twice is a script that would keep costing every other
#: script of the process a host restart and a recompile.
CRASH_WINDOW_SECONDS = 60
QUARANTINE_SECONDS = 30


class ScriptRunner:
    """Runs scripts' ``main(ctx)`` in a script host process, one cached isolate per cache key.

    ``timeout_ms`` bounds each call by wall-clock time and ``memory_mb`` the
    heap and array-buffer memory of each isolate; at most ``max_cached``
    isolates are kept, least recently used first out. Safe to share between
    threads; calls are serialised. Nothing a script does can harm the calling
    process (see the module's documentation).
    """

    def __init__(self, timeout_ms: int = 250, memory_mb: int = 32, max_cached: int = 256):
        if timeout_ms <= 0 or memory_mb <= 0 or max_cached <= 0:
            raise ValueError("timeout_ms, memory_mb and max_cached must be positive")
        self.timeout_ms = timeout_ms
        self.memory_mb = memory_mb
        self.max_cached = max_cached
        self._stop_growth, self._kill_growth = memory_thresholds(memory_mb)
        self._lock = threading.Lock()
        self._host: HostProcess | None = None
        # The host knows scripts by slot number: cache keys need not be JSON.
        self._slots: OrderedDict[Hashable, int] = OrderedDict()
        self._numbers = itertools.count(1)
        self._drops: list[int] = []
        # Keys whose script took the host down: (source, last crash, quarantined until, error).
        self._crashes: dict[Hashable, tuple[str, float, float, ScriptError]] = {}
        self._host_lost = False
        self._closed = False
        _runners.add(self)

    def run(self, cache_key: Hashable, source: str, ctx: dict) -> dict:
        """Call the script's ``main(ctx)`` and return the object it returned.

        ``cache_key`` identifies the compiled script, for example
        ``(source_environment_id, script_version)``: a script is compiled once
        per host and key, and two keys never share an isolate. ``ctx`` is
        ``{"vars", "body", "rawBody", "headers"}`` with lower-cased header
        names; it must be JSON-serialisable. Interpreting ``verified`` and the
        other keys is the caller's job. Raises ScriptError.
        """
        payload = _ctx_json(ctx)
        with self._lock:
            self._check_open()
            crashed = self._crashes.get(cache_key)
            if crashed is not None and crashed[0] == source and crashed[2] > time.monotonic():
                raise crashed[3].copy()
            slot = self._slots.get(cache_key)
            if slot is None:
                slot = self._slots[cache_key] = next(self._numbers)
            self._slots.move_to_end(cache_key)
            while len(self._slots) > self.max_cached:
                self._drops.append(self._slots.popitem(last=False)[1])
            self._host_lost = False
            try:
                return self._result(self._call({"op": "run", "slot": slot}, source, payload, ctx.get("vars")))
            except ScriptError as error:
                if self._host_lost:
                    self._record_crash(cache_key, source, error)
                raise

    def _record_crash(self, cache_key: Hashable, source: str, error: ScriptError) -> None:
        now = time.monotonic()
        previous = self._crashes.get(cache_key)
        again = previous is not None and previous[0] == source and now - previous[1] < CRASH_WINDOW_SECONDS
        until = now + QUARANTINE_SECONDS if again else 0.0
        self._crashes[cache_key] = (source, now, until, error.copy())

    def run_once(self, source: str, ctx: dict) -> dict:
        """Run ``source`` in a fresh isolate that is disposed afterwards.

        For "Test script" and rehearsals of unsaved scripts, which should not
        take a cache slot. Raises ScriptError.
        """
        payload = _ctx_json(ctx)
        with self._lock:
            self._check_open()
            return self._result(self._call({"op": "once"}, source, payload, ctx.get("vars")))

    def check(self, source: str) -> None:
        """Compile ``source`` and evaluate its top level in a throwaway isolate; see ``check_script``."""
        with self._lock:
            self._check_open()
            self._call({"op": "check"}, source, "", None)

    def close(self) -> None:
        """Stop the host process; the runner cannot be used afterwards."""
        with self._lock:
            self._closed = True
            self._slots.clear()
            host, self._host = self._host, None
        if host is not None:
            host.stop()

    @property
    def host_pid(self) -> int | None:
        """The process id of the running script host, or None before the first call."""
        host = self._host
        return None if host is None else host.process.pid

    def __enter__(self) -> ScriptRunner:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this ScriptRunner is closed")

    def _ready_host(self, check_alive: bool = True) -> HostProcess:
        """Return a host that has started, replacing one that died since the last call (``check_alive``)."""
        if check_alive and self._host is not None and self._host.process.poll() is not None:
            host, self._host = self._host, None
            log.warning("script host %d %s between calls: %s", host.process.pid, host.status(), host.stop())
        if self._host is None:
            self._drops.clear()
            try:
                self._host = HostProcess(self.timeout_ms, self.memory_mb)
            except OSError as exc:
                raise _unavailable(f"the script host could not be started: {exc}") from None
        try:
            self._host.wait_ready()
        except HostLost:
            host, self._host = self._host, None
            raise _unavailable(f"the script host did not start: {host.stop(kill=True)}") from None
        return self._host

    def _call(self, head: dict, source: str, payload: str, variables: Any) -> tuple[dict, str]:
        """Send one request and return the reply; raises ScriptError (with the lock held)."""
        # Whether the host died since the last call is not asked (a system
        # call): writing to a dead host fails, and none of the call reached it.
        host = self._ready_host(check_alive=False)
        head["drop"], self._drops = self._drops, []
        try:
            host.send(head, source, payload)
        except HostLost:
            host = self._ready_host()
            try:
                host.send(head, source, payload)
            except HostLost:
                raise _unavailable("the script host exited before it took the call") from None
        # The host stops scripts at their time limit itself; one still busy
        # after that is stuck in a builtin V8 cannot interrupt, usually one
        # that allocates until V8 aborts, which the watch catches early.
        started, limit = time.monotonic(), self.timeout_ms / 1000
        try:
            reply, text = host.receive(
                started + 2 * limit + _GRACE_SECONDS, started + limit + _WATCH_AFTER_SECONDS, self._kill_growth
            )
        except HostLost as lost:
            raise _redact(self._lost(host, str(lost)), variables) from None
        if "error" in reply:
            raise _redact(ScriptError(**reply["error"]), variables) from None
        if "failed" in reply:
            raise _unavailable(f"the script host failed: {_redact(ScriptError('runtime', reply['failed']), variables)}")
        return reply, text

    def _lost(self, host: HostProcess, how: str) -> ScriptError:
        """Replace a host that died or hung during a call; return the call's error."""
        self._host_lost = True
        grew = host.grew_by() if how == "overdue" else None
        summary = host.stop(kill=True)
        memory = how != "overdue" or (grew is not None and grew > self._stop_growth)
        log.warning("script host %d %s during a call (%s): %s", host.process.pid, host.status(), how, summary)
        # Started now so that it is up by the next call.
        self._host = None
        with contextlib.suppress(OSError):
            self._host = HostProcess(self.timeout_ms, self.memory_mb)
        if memory:
            return ScriptError("memory", f"the script exceeded the memory limit of {self.memory_mb} MB")
        return ScriptError("timeout", f"the script exceeded the time limit of {self.timeout_ms} ms")

    @staticmethod
    def _result(reply: tuple[dict, str]) -> dict:
        result = json.loads(reply[1])
        if not isinstance(result, dict):
            raise invalid_result(_JSON_TYPES[type(result)])
        return result


def _forget_hosts_after_fork() -> None:
    """In a forked child, drop every runner's host and lock: they belong to the parent."""
    global _shared_lock
    _shared_lock = threading.Lock()
    for runner in list(_runners):
        runner._lock = threading.Lock()
        runner._drops = []
        host, runner._host = runner._host, None
        if host is not None:
            host.disown()


os.register_at_fork(after_in_child=_forget_hosts_after_fork)

_shared: dict[tuple[int, int], ScriptRunner] = {}
_shared_lock = threading.Lock()


def shared_runner(timeout_ms: int = 250, memory_mb: int = 32) -> ScriptRunner:
    """Return this process's runner for these limits, created on first use.

    Requests and ``check_script`` share it, so a web worker runs one script
    host per set of limits. It lives until the interpreter exits.
    """
    with _shared_lock:
        runner = _shared.get((timeout_ms, memory_mb))
        if runner is None:
            runner = _shared[(timeout_ms, memory_mb)] = ScriptRunner(timeout_ms=timeout_ms, memory_mb=memory_mb)
        return runner


def check_script(source: str, *, timeout_ms: int = 250, memory_mb: int = 32) -> None:
    """Compile ``source`` and evaluate its top level in a throwaway isolate.

    Raises ScriptError: kind ``syntax`` (with line and column) when it does
    not compile, ``no_main`` when it defines no ``main`` function, or
    ``runtime``/``timeout``/``memory`` when its top-level code fails.
    """
    shared_runner(timeout_ms, memory_mb).check(source)

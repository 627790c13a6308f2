"""Caching, isolation between cache keys, and the sandbox's missing capabilities."""

import threading

import pytest

from knock_sources.scripting import ScriptRunner
from tests.support.scripts import (
    COUNTER,
    SECRET,
    make_ctx,
    run,
    run_error,
)

# --- caching and isolation ---------------------------------------------------------------


def test_script_is_compiled_once_per_key(runner):
    assert [run(runner, COUNTER, key="a")["calls"] for _ in range(3)] == [1, 2, 3]


def test_changed_source_under_the_same_key_is_recompiled(runner):
    run(runner, COUNTER, key="a")
    assert run(runner, COUNTER + "\n", key="a") == {"calls": 1}


def test_least_recently_used_key_is_evicted():
    with ScriptRunner(max_cached=2) as small:
        for key in ["a", "b", "a", "c", "a", "b"]:
            last = small.run(key, COUNTER, make_ctx())
    assert last == {"calls": 1}


def test_global_set_by_one_key_is_invisible_to_another(runner):
    run(runner, "globalThis.leak = 'A'; Object.prototype.polluted = 1;\nfunction main() { return {}; }", key="A")
    seen = run(runner, "function main() { return {leak: typeof leak, polluted: typeof ({}).polluted}; }", key="B")
    assert seen == {"leak": "undefined", "polluted": "undefined"}


def test_ctx_is_fresh_for_every_call(runner):
    source = "function main(ctx) { const seen = ctx.body.mark; ctx.body.mark = 'set'; return {seen: seen ?? null}; }"
    assert [run(runner, source, key="k")["seen"] for _ in range(2)] == [None, None]


def test_run_once_does_not_take_a_cache_slot(runner):
    assert runner.run_once(COUNTER, make_ctx()) == {"calls": 1}
    assert runner.run_once(COUNTER, make_ctx()) == {"calls": 1}


def test_concurrent_runs_from_many_threads_are_correct(runner):
    source = "function main(ctx) { return {n: ctx.body.n * 2, key: ctx.body.key}; }"
    failures = []

    def work(thread):
        for n in range(30):
            key = f"k{(thread + n) % 4}"
            result = runner.run(key, source, make_ctx(body={"n": n, "key": key}))
            if result != {"n": n * 2, "key": key}:
                failures.append(result)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


# --- sandbox ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "require",
        "process",
        "fetch",
        "XMLHttpRequest",
        "setTimeout",
        "setInterval",
        "WebAssembly",
        "SharedArrayBuffer",
        "Deno",
        "Bun",
        "module",
        "exports",
    ],
)
def test_host_facilities_are_absent(runner, name):
    assert run(runner, f"function main() {{ return {{type: typeof {name}}}; }}") == {"type": "undefined"}


def test_static_import_is_a_syntax_error(runner):
    error = run_error(runner, "import fs from 'fs';\nexport function main() { return {}; }")
    assert (error.kind, error.line) == ("syntax", 1)
    assert "import" in error.message


def test_dynamic_import_fails(runner):
    error = run_error(runner, "export async function main() { await import('fs'); return {}; }")
    assert error.kind == "runtime"


def test_scripts_cannot_drive_the_runtime(runner):
    source = """function main() {
      try { __knock.invoke('guess', '{}'); } catch (e) { return {invoke: e.message}; }
    }"""
    assert run(runner, source) == {"invoke": "the script runtime is not available to scripts"}


@pytest.mark.parametrize(
    "source",
    [
        "function main(ctx) { throw new Error('bad secret ' + ctx.vars.SECRET); }",
        "function main(ctx) { JSON.parse(ctx.vars.SECRET); }",
        "function main(ctx) { return null[ctx.vars.SECRET]; }",
        "async function main(ctx) { throw ctx.vars.SECRET; }",
    ],
    ids=["thrown message", "JSON.parse message", "property name", "thrown value"],
)
def test_error_messages_never_contain_variable_values(runner, source):
    error = run_error(runner, source)
    assert SECRET not in error.message
    assert "[redacted]" in error.message


def test_short_variable_values_are_redacted_as_whole_words(runner):
    ctx = make_ctx(variables={"PIN": "e", "CODE": 4711})
    error = run_error(runner, "function main(ctx) { throw new TypeError('e 4711 x'); }", ctx)
    assert error.message == "TypeError: [redacted] [redacted] x"


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_ctx_json_cannot_carry_fails_the_call_not_the_isolate(runner, value):
    source = "function main(ctx) { return {verified: true, n: ctx.vars.N}; }"
    error = run_error(runner, source, make_ctx(variables={"N": value}), key="strict")
    assert (error.kind, error.message) == ("runtime", "ctx holds a number JSON cannot carry (NaN or Infinity)")
    assert run(runner, source, make_ctx(variables={"N": 1}), key="strict") == {"verified": True, "n": 1}

"""Time and memory limits, including builtin calls V8 cannot interrupt."""

import os
import signal
import threading
import time

import pytest

from knock_sources.scripting import ScriptError, ScriptRunner
from knock_sources.scripting.protocol import resident_bytes
from tests.support.scripts import (
    COUNTER,
    ONE_LINE_BOMBS,
    PrivateKeys,
    bombs_when_asked,
    make_ctx,
    process_state,
    run,
    run_error,
    wait_until_ended,
)

# --- limits ---------------------------------------------------------------------------

LOOPS_WHEN_ASKED = "function main(ctx) { if (ctx.body.loop) { while (true) {} } return {verified: true}; }"
BOMBS_WHEN_ASKED = """\
function main(ctx) {
  const kept = [];
  if (ctx.body.bomb === "array") while (true) kept.push({n: kept.length});
  if (ctx.body.bomb === "string") while (true) kept.push("x".repeat(1000) + kept.length);
  if (ctx.body.bomb === "typed") while (true) kept.push(new Uint8Array(1 << 20));
  if (ctx.body.bomb === "buffer") return {size: Buffer.alloc(64 * 1024 * 1024).length};
  // Memory outside V8's heap, which its heap limit does not see: ICU's, behind Intl.
  const euros = {style: "currency", currency: "EUR"};
  if (ctx.body.bomb === "intl") while (true) kept.push(new Intl.NumberFormat("en", euros));
  return {verified: true};
}
"""


@pytest.mark.parametrize(
    "source",
    [
        "function main() { while (true) {} }",
        "async function main() { await null; while (true) {} }",
        "const spin = async () => { for (;;) await 0; };\nasync function main() { await spin(); }",
        "async function main() { await new Promise(() => {}); }",
        "let i = 0;\nwhile (true) { i++; }\nfunction main() { return {}; }",
    ],
    ids=["loop", "loop after await", "endless promise jobs", "promise never settles", "top-level loop"],
)
def test_endless_script_times_out(runner, source):
    assert run_error(runner, source).kind == "timeout"
    assert run(runner, "function main() { return {verified: true}; }") == {"verified": True}


def test_runner_recovers_after_a_timeout_for_the_same_key(runner):
    assert run_error(runner, LOOPS_WHEN_ASKED, make_ctx(body={"loop": True})).kind == "timeout"
    assert run(runner, LOOPS_WHEN_ASKED, make_ctx(body={"loop": False})) == {"verified": True}


def test_runner_serves_other_keys_after_a_timeout(runner):
    assert run_error(runner, LOOPS_WHEN_ASKED, make_ctx(body={"loop": True})).kind == "timeout"
    assert run(runner, "function main() { return {verified: true}; }") == {"verified": True}


@pytest.fixture(scope="module")
def patient_runner():
    """A runner whose time limit no memory bomb reaches on any machine: the memory limit is what stops it."""
    with ScriptRunner(timeout_ms=20_000) as script_runner:
        yield script_runner


@pytest.fixture
def patient(patient_runner, request):
    return PrivateKeys(patient_runner, request.node.nodeid)


@pytest.mark.parametrize("bomb", ["array", "string", "typed", "buffer", "intl"])
def test_memory_bomb_is_a_memory_error_and_the_next_calls_are_served(patient, bomb):
    assert patient.run("bombs", BOMBS_WHEN_ASKED, make_ctx(body={"bomb": None})) == {"verified": True}
    for _ in range(2):
        with pytest.raises(ScriptError) as caught:
            patient.run("bombs", BOMBS_WHEN_ASKED, make_ctx(body={"bomb": bomb}))
        # What the sender's log shows, whichever limit stopped it.
        assert (caught.value.kind, caught.value.message) == ("memory", "the script exceeded the memory limit of 32 MB")
    # The script's other payloads are still served: a bomb its limits stop is
    # not a script that takes the host down (which is refused for a while).
    assert patient.run("bombs", BOMBS_WHEN_ASKED, make_ctx(body={"bomb": None})) == {"verified": True}
    assert patient.run("other", "function main() { return {verified: true}; }", make_ctx()) == {"verified": True}


def test_array_buffers_freed_between_runs_are_credited_back(runner):
    source = "function main() { Buffer.alloc(20 * 1024 * 1024); return {verified: true}; }"
    for _ in range(5):
        assert run(runner, source, key="reuse") == {"verified": True}


@pytest.mark.parametrize("bomb", ONE_LINE_BOMBS.values(), ids=ONE_LINE_BOMBS.keys())
def test_one_line_bomb_is_a_memory_error_and_the_caller_survives(patient, bomb):
    error = run_error(patient, f"function main() {{ return {bomb}; }}")
    assert (error.kind, error.message) == ("memory", "the script exceeded the memory limit of 32 MB")
    assert run(patient, "function main() { return {verified: true}; }") == {"verified": True}


@pytest.mark.parametrize("bomb", ONE_LINE_BOMBS.values(), ids=ONE_LINE_BOMBS.keys())
def test_same_and_other_keys_work_after_a_bomb(patient, bomb):
    source = bombs_when_asked(bomb)
    assert run(patient, COUNTER, key="counter") == {"calls": 1}
    assert run(patient, source, make_ctx(body={"bomb": False}), key="bomb") == {"verified": True}
    before = patient.host_pid
    assert run_error(patient, source, make_ctx(body={"bomb": True}), key="bomb").kind == "memory"
    assert run(patient, source, make_ctx(body={"bomb": False}), key="bomb") == {"verified": True}
    # The host either stopped the bomb itself or was lost and replaced, which
    # depends on how fast the machine allocates; what a user sees is the same:
    # the other key keeps working (compiled again, so starting over, in a new host).
    calls = run(patient, COUNTER, key="counter")["calls"]
    assert calls == (2 if patient.host_pid == before else 1)
    assert run(patient, COUNTER, key="counter") == {"calls": calls + 1}
    if patient.host_pid != before:
        # A lost host is killed and reaped, never left behind.
        assert process_state(before) is None


def test_keys_stay_isolated_after_the_host_was_replaced(patient):
    run(patient, "globalThis.leak = 'A';\nfunction main() { return {}; }", key="A")
    assert run_error(patient, f"function main() {{ return {ONE_LINE_BOMBS['split']}; }}", key="bomb").kind == "memory"
    run(patient, "globalThis.leak = 'A';\nfunction main() { return {}; }", key="A")
    assert run(patient, "function main() { return {leak: typeof leak}; }", key="B") == {"leak": "undefined"}


def test_a_host_killed_between_calls_is_replaced_without_an_error(runner):
    assert run(runner, COUNTER, key="a") == {"calls": 1}
    killed = runner.host_pid
    os.kill(killed, signal.SIGKILL)
    wait_until_ended(killed)
    assert run(runner, COUNTER, key="a") == {"calls": 1}
    assert runner.host_pid not in (None, killed)
    assert process_state(killed) is None


def test_a_host_that_stops_answering_is_replaced_and_the_call_times_out():
    # Long enough for the first call to pass on a loaded machine.
    with ScriptRunner(timeout_ms=500) as quick:
        assert quick.run("a", COUNTER, make_ctx()) == {"calls": 1}
        stuck = quick.host_pid
        os.kill(stuck, signal.SIGSTOP)
        with pytest.raises(ScriptError) as caught:
            quick.run("a", COUNTER, make_ctx())
        assert (caught.value.kind, caught.value.message) == ("timeout", "the script exceeded the time limit of 500 ms")
        assert process_state(stuck) is None
        assert quick.run("a", COUNTER, make_ctx()) == {"calls": 1}


def test_a_host_holding_what_a_script_may_use_is_not_taken_for_a_memory_bomb():
    # 28 MB of buffer and a few MB of objects: within the 32 MB limit, though
    # the host grows by more than 32 MB. Stopped once it has, the host looks
    # exactly like one busy in a builtin past the time limit; what it grew by
    # is no bomb's, so the call ends as the timeout it is.
    source = (
        "const kept = [];\n"
        "function main() { kept.push(new Uint8Array(28 << 20).fill(1));"
        " for (let i = 0; i < 300000; i++) kept.push({i}); while (true) {} }"
    )
    with ScriptRunner(timeout_ms=2000) as runner:
        assert runner.run("warm", COUNTER, make_ctx()) == {"calls": 1}
        host = runner.host_pid
        baseline = resident_bytes(host)
        outcome = []
        call = threading.Thread(target=lambda: outcome.append(run_error(runner, source, key="holds")))
        call.start()
        deadline = time.monotonic() + 30
        while call.is_alive() and (resident_bytes(host) or 0) - baseline < 40 << 20:
            assert time.monotonic() < deadline, "the script never grew the host"
            time.sleep(0.005)
        os.kill(host, signal.SIGSTOP)
        call.join()
        assert (outcome[0].kind, outcome[0].message) == ("timeout", "the script exceeded the time limit of 2000 ms")
        assert runner.run("warm", COUNTER, make_ctx()) == {"calls": 1}

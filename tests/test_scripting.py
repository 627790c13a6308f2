"""The sandboxed JavaScript runtime: script syntax, results, limits, isolation, helpers."""

import base64
import gc
import hashlib
import hmac
import json
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from knock_sources.scripting import ScriptError, ScriptRunner, check_script
from knock_sources.scripting.engine import to_classic_script
from tests.script_support import KNOCK_DEFAULT_SCRIPT

SECRET = "whsec_s3cr3t-value"

STRIPE_STYLE_SCRIPT = """\
export async function main(ctx) {
  const { headers, rawBody, vars } = ctx;
  const parts = Object.fromEntries((headers["stripe-signature"] || "").split(",").map((kv) => kv.split("=")));
  const expected = crypto.createHmac("sha256", vars.STRIPE_SIGNING_SECRET)
    .update(`${parts.t}.${rawBody}`)
    .digest("hex");
  const given = Buffer.from(parts.v1 || "", "hex");
  const wanted = Buffer.from(expected, "hex");
  const verified = given.length === wanted.length && crypto.timingSafeEqual(given, wanted);
  return { verified, expected, event_type: ctx.body.type };
}
"""

# The seed's preprocessing example, fed a Supabase database webhook.
SUPABASE_PREPROCESS_SCRIPT = """\
function main(ctx) {
  const { body } = ctx;
  return {
    verified: true,
    normalized_event: `${body.schema}.${body.table}:${body.type}`,
    item_idempotency_key: `${body.record.id}_${body.record.updated_at}`,
  };
}
"""


def make_ctx(body=None, headers=None, variables=None, raw_body=None):
    body = {"type": "test.event"} if body is None else body
    return {
        "vars": {"SECRET": SECRET} if variables is None else variables,
        "body": body,
        "rawBody": json.dumps(body) if raw_body is None else raw_body,
        "headers": headers or {},
    }


class PrivateKeys:
    """A runner shared by a module's tests, seen through cache keys private to one test.

    One host serves the whole module, as it serves a web worker, instead of
    one started per test; the runner's LRU frees the isolates of finished tests.
    """

    def __init__(self, shared, test):
        self._shared, self._test = shared, test

    def run(self, key, source, ctx):
        return self._shared.run((self._test, key), source, ctx)

    def __getattr__(self, name):
        return getattr(self._shared, name)


@pytest.fixture(scope="module")
def module_runner():
    with ScriptRunner() as script_runner:
        yield script_runner


@pytest.fixture
def runner(module_runner, request):
    return PrivateKeys(module_runner, request.node.nodeid)


def run(runner, source, ctx=None, key=None):
    return runner.run(key or source, source, ctx or make_ctx())


def run_error(runner, source, ctx=None, key=None):
    with pytest.raises(ScriptError) as caught:
        run(runner, source, ctx, key)
    return caught.value


# --- how main may be written -------------------------------------------------------

MAIN_VARIANTS = {
    "export function": "export function main(ctx) { return {verified: true, type: ctx.body.type}; }",
    "export async function": "export async function main(ctx) { return {verified: true, type: ctx.body.type}; }",
    "async function": "async function main(ctx) { return {verified: true, type: ctx.body.type}; }",
    "function": "function main(ctx) { return {verified: true, type: ctx.body.type}; }",
    "export default function main": "export default function main(ctx) {"
    " return {verified: true, type: ctx.body.type}; }",
    "export default async function": "export default async function (ctx) {"
    " return {verified: true, type: ctx.body.type}; }",
    "export default arrow": "export default (ctx) => ({verified: true, type: ctx.body.type});",
    "export default async arrow": "export default async ({ body }) => ({verified: true, type: body.type});",
    "export const arrow": "export const main = async (ctx) => ({verified: true, type: ctx.body.type});",
    "export list": "const main = (ctx) => ({verified: true, type: ctx.body.type});\nexport { main };",
    "export list alias": "function handler(ctx) { return {verified: true, type: ctx.body.type}; }\n"
    "export { handler as main };",
    "export default named": "export default function handler(ctx) { return {verified: true, type: ctx.body.type}; }",
    "export list default": "function handler(ctx) { return {verified: true, type: ctx.body.type}; }\n"
    "export { handler as default };",
}


@pytest.mark.parametrize("source", MAIN_VARIANTS.values(), ids=MAIN_VARIANTS.keys())
def test_main_syntax_variant_runs(runner, source):
    assert run(runner, source) == {"verified": True, "type": "test.event"}


@pytest.mark.parametrize(
    "returned, expected",
    [("{verified: true}", {"verified": True}), ("{verified: false}", {"verified": False}), ("{}", {})],
    ids=["true", "false", "missing"],
)
def test_result_is_returned_as_is(runner, returned, expected):
    assert run(runner, f"export function main() {{ return {returned}; }}") == expected


def test_extra_keys_are_returned_for_preprocess(runner):
    body = {
        "type": "INSERT",
        "table": "users",
        "schema": "auth",
        "record": {"id": "3f1c", "updated_at": "2025-01-02T03:04:05Z", "email": "a@example.com"},
        "old_record": None,
    }
    assert run(runner, SUPABASE_PREPROCESS_SCRIPT, make_ctx(body=body)) == {
        "verified": True,
        "normalized_event": "auth.users:INSERT",
        "item_idempotency_key": "3f1c_2025-01-02T03:04:05Z",
    }


def test_raw_body_reaches_the_script_unchanged(runner):
    raw = '{"text": "caf\u00e9 \U0001f600 \u2028 \\"quoted\\""}'
    assert run(runner, "function main(ctx) { return {raw: ctx.rawBody}; }", make_ctx(raw_body=raw)) == {"raw": raw}


def test_export_inside_strings_and_comments_is_left_alone(runner):
    source = '// export default nothing\nfunction main() { return {text: "export default x", other: `export {a}`}; }'
    assert run(runner, source) == {"text": "export default x", "other": "export {a}"}


def test_rewriting_keeps_line_and_column_positions():
    source = "export default async function (ctx) {\n  export_me();\n}"
    rewritten = to_classic_script(source).split("\n")
    assert [len(line) for line in rewritten[:3]] == [len(line) for line in source.split("\n")]
    assert rewritten[1] == "  export_me();"


# --- failures ------------------------------------------------------------------------


def test_throw_is_a_runtime_error_with_location(runner):
    error = run_error(runner, "function main(ctx) {\n  const x = 1;\n  throw new Error('boom');\n}")
    assert (error.kind, error.message, error.line, error.column) == ("runtime", "Error: boom", 3, 9)


def test_async_rejection_is_a_runtime_error_with_location(runner):
    error = run_error(runner, "export async function main(ctx) {\n  await null;\n  ctx.body.missing.field;\n}")
    assert error.kind == "runtime"
    assert error.message == "TypeError: Cannot read properties of undefined (reading 'field')"
    assert (error.line, error.column) == (3, 20)


def test_throwing_a_non_error_value_is_a_runtime_error(runner):
    error = run_error(runner, "function main() { throw 'nope'; }")
    assert (error.kind, error.message, error.line) == ("runtime", "Uncaught nope", None)


def test_error_inside_a_helper_points_at_the_script_line(runner):
    error = run_error(
        runner, "function main() {\n  return crypto.timingSafeEqual(Buffer.from('a'), Buffer.from('ab'));\n}"
    )
    assert (error.kind, error.line) == ("runtime", 2)
    assert error.message == "RangeError: Input buffers must have the same byte length"


def test_syntax_error_has_line_and_column(runner):
    error = run_error(runner, "function main(ctx) {\n  return {verified: true,,};\n}")
    assert (error.kind, error.message, error.line, error.column) == (
        "syntax",
        "SyntaxError: Unexpected token ','",
        2,
        26,
    )


def test_unclosed_brace_is_reported_at_the_end_of_the_script(runner):
    error = run_error(runner, "function main(ctx) {\n  return {verified: true};")
    assert (error.kind, error.line, error.column) == ("syntax", 2, 27)


def test_top_level_error_is_a_runtime_error(runner):
    error = run_error(runner, "const config = undefined.value;\nfunction main() { return {}; }")
    assert (error.kind, error.line, error.column) == ("runtime", 1, 26)


def test_script_without_main_is_no_main(runner):
    error = run_error(runner, "export function handler(ctx) { return {verified: true}; }")
    assert (error.kind, error.line) == ("no_main", None)


@pytest.mark.parametrize(
    "returned, described",
    [
        ("5", "number"),
        ("'yes'", "string"),
        ("null", "null"),
        ("[1]", "array"),
        ("undefined", "undefined"),
        ("true", "boolean"),
        ("new Map()", "Map"),
    ],
)
def test_non_object_result_is_invalid(runner, returned, described):
    error = run_error(runner, f"async function main() {{ return {returned}; }}")
    assert error.kind == "invalid_result"
    assert error.message.endswith(f"not {described}")


@pytest.mark.parametrize("json_value, described", [("undefined", "null"), ("'text'", "string")])
def test_result_whose_to_json_is_not_an_object_is_invalid(runner, json_value, described):
    error = run_error(runner, f"function main() {{ return {{toJSON() {{ return {json_value}; }}}}; }}")
    assert (error.kind, error.message.split()[-1]) == ("invalid_result", described)


def test_unserializable_result_is_invalid(runner):
    error = run_error(runner, "function main() { return {verified: true, big: 10n}; }")
    assert error.kind == "invalid_result"
    assert "BigInt" in error.message


def test_failed_compile_is_cached_per_key(runner):
    source = "function main( {"
    first = run_error(runner, source, key="broken")
    second = run_error(runner, source, key="broken")
    assert second is not first
    assert (second.kind, second.line) == (first.kind, first.line)


# --- limits ---------------------------------------------------------------------------

LOOPS_WHEN_ASKED = "function main(ctx) { if (ctx.body.loop) { while (true) {} } return {verified: true}; }"
BOMBS_WHEN_ASKED = """\
function main(ctx) {
  const kept = [];
  if (ctx.body.bomb === "array") while (true) kept.push({n: kept.length});
  if (ctx.body.bomb === "string") while (true) kept.push("x".repeat(1000) + kept.length);
  if (ctx.body.bomb === "typed") while (true) kept.push(new Uint8Array(1 << 20));
  if (ctx.body.bomb === "buffer") return {size: Buffer.alloc(64 * 1024 * 1024).length};
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
    started = time.monotonic()
    error = run_error(runner, source)
    assert error.kind == "timeout"
    assert time.monotonic() - started < 2


def test_runner_recovers_after_a_timeout_for_the_same_key(runner):
    assert run_error(runner, LOOPS_WHEN_ASKED, make_ctx(body={"loop": True})).kind == "timeout"
    assert run(runner, LOOPS_WHEN_ASKED, make_ctx(body={"loop": False})) == {"verified": True}


def test_runner_serves_other_keys_after_a_timeout(runner):
    assert run_error(runner, LOOPS_WHEN_ASKED, make_ctx(body={"loop": True})).kind == "timeout"
    assert run(runner, "function main() { return {verified: true}; }") == {"verified": True}


@pytest.mark.parametrize("bomb", ["array", "string", "typed", "buffer"])
def test_memory_bomb_hits_the_memory_limit(runner, bomb):
    run(runner, BOMBS_WHEN_ASKED, make_ctx(body={"bomb": None}))
    host = runner.host_pid
    error = run_error(runner, BOMBS_WHEN_ASKED, make_ctx(body={"bomb": bomb}))
    assert (error.kind, error.message) == ("memory", "the script exceeded the memory limit of 32 MB")
    # Stopped by the isolate's limit, not by losing the host.
    assert runner.host_pid == host


def test_runner_recovers_after_a_memory_bomb_for_the_same_key(runner):
    assert run_error(runner, BOMBS_WHEN_ASKED, make_ctx(body={"bomb": "array"})).kind == "memory"
    assert run(runner, BOMBS_WHEN_ASKED, make_ctx(body={"bomb": None})) == {"verified": True}


def test_runner_serves_other_keys_after_a_memory_bomb(runner):
    assert run_error(runner, BOMBS_WHEN_ASKED, make_ctx(body={"bomb": "array"})).kind == "memory"
    assert run(runner, "function main() { return {verified: true}; }") == {"verified": True}


def test_array_buffers_freed_between_runs_are_credited_back(runner):
    source = "function main() { Buffer.alloc(20 * 1024 * 1024); return {verified: true}; }"
    for _ in range(5):
        assert run(runner, source, key="reuse") == {"verified": True}


# Single builtin calls V8 cannot interrupt: they allocate until V8 aborts the
# process they run in, which is the script host, never the caller.
ONE_LINE_BOMBS = {
    "fill": "new Array(2 ** 27).fill(1.5)",
    "split": "'ab'.repeat(2 ** 27).split('')",
}


def bombs_when_asked(bomb):
    return f"function main(ctx) {{ if (ctx.body.bomb) return {{n: {bomb}.length}}; return {{verified: true}}; }}"


def process_state(pid):
    """The state letter of process ``pid`` ("Z" for a zombie), or None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return None


def has_ended(pid):
    """Whether every thread of ``pid`` has exited (it may be left as a zombie)."""
    state = process_state(pid)
    try:
        # A zombie's main thread waits there until its other threads are gone too.
        return state is None or (state == "Z" and os.listdir(f"/proc/{pid}/task") == [str(pid)])
    except FileNotFoundError:
        return True


def wait_until_ended(pid, seconds=10):
    deadline = time.monotonic() + seconds
    while not has_ended(pid):
        assert time.monotonic() < deadline, f"process {pid} is still running"
        time.sleep(0.02)


@pytest.mark.parametrize("bomb", ONE_LINE_BOMBS.values(), ids=ONE_LINE_BOMBS.keys())
def test_one_line_bomb_is_a_memory_error_and_the_caller_survives(runner, bomb):
    started = time.monotonic()
    error = run_error(runner, f"function main() {{ return {bomb}; }}")
    assert (error.kind, error.message) == ("memory", "the script exceeded the memory limit of 32 MB")
    assert time.monotonic() - started < 5
    assert run(runner, "function main() { return {verified: true}; }") == {"verified": True}


@pytest.mark.parametrize("bomb", ONE_LINE_BOMBS.values(), ids=ONE_LINE_BOMBS.keys())
def test_same_and_other_keys_work_after_a_bomb_took_the_host_down(runner, bomb):
    source = bombs_when_asked(bomb)
    assert run(runner, COUNTER, key="counter") == {"calls": 1}
    assert run(runner, source, make_ctx(body={"bomb": False}), key="bomb") == {"verified": True}
    lost = runner.host_pid
    assert run_error(runner, source, make_ctx(body={"bomb": True}), key="bomb").kind == "memory"
    # The lost host was killed or reaped, and a new one took over.
    assert process_state(lost) is None
    assert runner.host_pid not in (None, lost)
    assert run(runner, source, make_ctx(body={"bomb": False}), key="bomb") == {"verified": True}
    # Compiled again in the new host, so its state starts over.
    assert run(runner, COUNTER, key="counter") == {"calls": 1}
    assert run(runner, COUNTER, key="counter") == {"calls": 2}


def test_keys_stay_isolated_after_the_host_was_replaced(runner):
    run(runner, "globalThis.leak = 'A';\nfunction main() { return {}; }", key="A")
    assert run_error(runner, f"function main() {{ return {ONE_LINE_BOMBS['split']}; }}", key="bomb").kind == "memory"
    run(runner, "globalThis.leak = 'A';\nfunction main() { return {}; }", key="A")
    assert run(runner, "function main() { return {leak: typeof leak}; }", key="B") == {"leak": "undefined"}


def test_a_host_killed_between_calls_is_replaced_without_an_error(runner):
    assert run(runner, COUNTER, key="a") == {"calls": 1}
    killed = runner.host_pid
    os.kill(killed, signal.SIGKILL)
    wait_until_ended(killed)
    assert run(runner, COUNTER, key="a") == {"calls": 1}
    assert runner.host_pid not in (None, killed)
    assert process_state(killed) is None


def test_a_host_that_stops_answering_is_replaced_and_the_call_times_out():
    with ScriptRunner(timeout_ms=50) as quick:
        assert quick.run("a", COUNTER, make_ctx()) == {"calls": 1}
        stuck = quick.host_pid
        os.kill(stuck, signal.SIGSTOP)
        started = time.monotonic()
        with pytest.raises(ScriptError) as caught:
            quick.run("a", COUNTER, make_ctx())
        assert (caught.value.kind, caught.value.message) == ("timeout", "the script exceeded the time limit of 50 ms")
        assert time.monotonic() - started < 3
        assert process_state(stuck) is None
        assert quick.run("a", COUNTER, make_ctx()) == {"calls": 1}


# --- caching and isolation ---------------------------------------------------------------

COUNTER = "let calls = 0;\nfunction main() { calls += 1; return {calls}; }"


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


# --- Knock's scripts --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "variables, headers, verified",
    [
        ({"CUSTOM_HTTP_SIGNING_SECRET": SECRET}, {"x-webhook-secret": SECRET}, True),
        ({"CUSTOM_HTTP_SIGNING_SECRET": SECRET}, {"x-webhook-secret": "wrong"}, False),
        ({"CUSTOM_HTTP_SIGNING_SECRET": SECRET}, {}, False),
        ({}, {"x-webhook-secret": SECRET}, False),
    ],
    ids=["matching", "wrong secret", "no header", "no variable"],
)
def test_knock_default_script(runner, variables, headers, verified):
    result = run(runner, KNOCK_DEFAULT_SCRIPT, make_ctx(headers=headers, variables=variables))
    assert result == {"verified": verified}


def stripe_header(raw_body, secret, timestamp=1700000000):
    digest = hmac.new(secret.encode(), f"{timestamp}.{raw_body}".encode(), hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def test_hmac_script_verifies_a_python_signature(runner):
    body = {"id": "evt_1", "type": "customer.created", "data": {"object": {"name": "Zoë"}}}
    raw = json.dumps(body, ensure_ascii=False)
    ctx = make_ctx(
        body=body,
        raw_body=raw,
        variables={"STRIPE_SIGNING_SECRET": SECRET},
        headers={"stripe-signature": stripe_header(raw, SECRET)},
    )
    result = run(runner, STRIPE_STYLE_SCRIPT, ctx)
    assert result["verified"] is True
    assert result["expected"] == stripe_header(raw, SECRET).split("v1=")[1]
    assert result["event_type"] == "customer.created"


def test_hmac_script_rejects_a_tampered_body(runner):
    raw = json.dumps({"type": "customer.created"})
    ctx = make_ctx(
        raw_body=raw.replace("created", "deleted"),
        variables={"STRIPE_SIGNING_SECRET": SECRET},
        headers={"stripe-signature": stripe_header(raw, SECRET)},
    )
    assert run(runner, STRIPE_STYLE_SCRIPT, ctx)["verified"] is False


# --- crypto, Buffer and friends against Python ------------------------------------------------

# Block boundaries of both block sizes, multi-byte characters and a lone surrogate.
MESSAGES = ["", "abc", "caf\u00e9 \u20ac \U0001f600", "\ud800 lone surrogate"]
MESSAGES += ["a" * n for n in (55, 56, 63, 64, 111, 112, 127, 128, 1000)]


def python_encode(digest, encoding):
    return digest.hex() if encoding == "hex" else base64.b64encode(digest).decode()


def utf8(text):
    return text.encode("utf-8", "replace").replace(b"?", "\ufffd".encode())


@pytest.mark.parametrize("encoding", ["hex", "base64"])
@pytest.mark.parametrize("algorithm", ["sha1", "sha256", "sha512"])
def test_create_hash_matches_hashlib(runner, algorithm, encoding):
    source = """function main(ctx) {
      return {out: ctx.body.map((m) => crypto.createHash(ctx.headers.alg).update(m).digest(ctx.headers.enc))};
    }"""
    result = run(runner, source, make_ctx(body=MESSAGES, headers={"alg": algorithm, "enc": encoding}))
    assert result["out"] == [python_encode(hashlib.new(algorithm, utf8(m)).digest(), encoding) for m in MESSAGES]


@pytest.mark.parametrize("encoding", ["hex", "base64"])
@pytest.mark.parametrize("algorithm", ["sha1", "sha256", "sha512"])
def test_create_hmac_matches_python(runner, algorithm, encoding):
    keys = [SECRET, "k", "\u00e9\u00e8", "long key " * 30]
    source = """function main(ctx) {
      const out = [];
      for (const key of ctx.vars.keys) {
        for (const m of ctx.body) out.push(crypto.createHmac(ctx.headers.alg, key).update(m).digest(ctx.headers.enc));
      }
      return {out};
    }"""
    ctx = make_ctx(body=MESSAGES, variables={"keys": keys}, headers={"alg": algorithm, "enc": encoding})
    expected = [python_encode(hmac.new(utf8(k), utf8(m), algorithm).digest(), encoding) for k in keys for m in MESSAGES]
    assert run(runner, source, ctx)["out"] == expected


def test_update_can_be_called_in_pieces(runner):
    source = """function main() {
      return {hex: crypto.createHash('sha256').update('ab').update(Buffer.from('c')).digest('hex')};
    }"""
    assert run(runner, source) == {"hex": hashlib.sha256(b"abc").hexdigest()}


def test_digest_without_encoding_returns_a_buffer(runner):
    source = """function main(ctx) {
      const digest = crypto.createHmac('sha256', Buffer.from(ctx.vars.SECRET)).update(ctx.rawBody).digest();
      return {isBuffer: Buffer.isBuffer(digest), length: digest.length, hex: digest.toString('hex')};
    }"""
    ctx = make_ctx(raw_body="payload")
    expected = hmac.new(SECRET.encode(), b"payload", hashlib.sha256).hexdigest()
    assert run(runner, source, ctx) == {"isBuffer": True, "length": 32, "hex": expected}


def test_digest_twice_throws_like_node(runner):
    error = run_error(runner, "function main() { const h = crypto.createHash('sha1'); h.digest(); h.digest(); }")
    assert error.message == "Error: Digest already called"


def test_unknown_digest_is_rejected(runner):
    assert (
        run_error(runner, "function main() { crypto.createHmac('md4', 'k'); }").message == "Error: Invalid digest: md4"
    )


@pytest.mark.parametrize(
    "text, encoding, expected",
    [
        ("h\u00e9llo \U0001f600", "utf8", "h\u00e9llo \U0001f600".encode()),
        ("68656c6c6f", "hex", b"hello"),
        ("68656c6c6fzz00", "hex", b"hello"),
        ("aGVsbG8gd29ybGQ=", "base64", b"hello world"),
        ("aGVsbG8gd29ybGQ", "base64", b"hello world"),
        ("aGVs bG8g\nd29y bGQ=", "base64", b"hello world"),
        ("-_8", "base64url", b"\xfb\xff"),
        ("caf\u00e9", "latin1", b"caf\xe9"),
    ],
)
def test_buffer_from_string_matches_node(runner, text, encoding, expected):
    source = "function main(ctx) { return {hex: Buffer.from(ctx.body.text, ctx.body.encoding).toString('hex')}; }"
    assert run(runner, source, make_ctx(body={"text": text, "encoding": encoding})) == {"hex": expected.hex()}


@pytest.mark.parametrize(
    "encoding, expected",
    [
        ("utf8", b"\x00\xff\xfeabc\xe2\x82\xac".decode("utf-8", "replace")),
        ("hex", "00fffe616263e282ac"),
        ("base64", base64.b64encode(b"\x00\xff\xfeabc\xe2\x82\xac").decode()),
        ("base64url", base64.urlsafe_b64encode(b"\x00\xff\xfeabc\xe2\x82\xac").decode().rstrip("=")),
        ("latin1", b"\x00\xff\xfeabc\xe2\x82\xac".decode("latin1")),
    ],
)
def test_buffer_to_string_matches_python(runner, encoding, expected):
    source = "function main(ctx) { return {text: Buffer.from(ctx.body.hex, 'hex').toString(ctx.body.encoding)}; }"
    assert run(runner, source, make_ctx(body={"hex": "00fffe616263e282ac", "encoding": encoding})) == {"text": expected}


@pytest.mark.parametrize("hex_bytes", ["c328", "e282", "f09f98", "eda080", "f4908080", "80bf", "c0af", "ff"])
def test_invalid_utf8_is_replaced_like_python(runner, hex_bytes):
    source = "function main(ctx) { return {text: new TextDecoder().decode(Buffer.from(ctx.body.hex, 'hex'))}; }"
    raw = bytes.fromhex(hex_bytes) + b"z"
    assert run(runner, source, make_ctx(body={"hex": raw.hex()})) == {"text": raw.decode("utf-8", "replace")}


def test_buffer_length_helpers(runner):
    source = """function main() {
      const b = Buffer.from('\u00e9t\u00e9');
      return {length: b.length, byteLength: Buffer.byteLength('\u00e9t\u00e9'), isBuffer: Buffer.isBuffer(b),
              plain: Buffer.isBuffer(new Uint8Array(2)), hexLength: Buffer.byteLength('abcd', 'hex')};
    }"""
    assert run(runner, source) == {"length": 5, "byteLength": 5, "isBuffer": True, "plain": False, "hexLength": 2}


@pytest.mark.parametrize("left, right, expected", [("ab", "ab", 0), ("ab", "b", -1), ("b", "ab", 1), ("ab", "a", 1)])
def test_buffer_compare_orders_bytes_like_node(runner, left, right, expected):
    source = (
        "function main(ctx) { return {order: Buffer.compare(Buffer.from(ctx.body[0]), Buffer.from(ctx.body[1]))}; }"
    )
    assert run(runner, source, make_ctx(body=[left, right])) == {"order": expected}


def test_buffer_concat_equals_and_slice(runner):
    source = """function main() {
      const joined = Buffer.concat([Buffer.from('ab'), Buffer.from('cd')]);
      return {text: joined.toString(), equal: joined.equals(Buffer.from('abcd')), slice: joined.slice(1, 3).toString()};
    }"""
    assert run(runner, source) == {"text": "abcd", "equal": True, "slice": "bc"}


@pytest.mark.parametrize(
    "left, right, expected", [("'abc'", "'abc'", True), ("'abc'", "'abd'", False)], ids=["equal", "different"]
)
def test_timing_safe_equal(runner, left, right, expected):
    source = (
        f"function main() {{ return {{equal: crypto.timingSafeEqual(Buffer.from({left}), Buffer.from({right}))}}; }}"
    )
    assert run(runner, source) == {"equal": expected}


def test_timing_safe_equal_throws_on_length_mismatch_like_node(runner):
    source = """function main() {
      try { crypto.timingSafeEqual(Buffer.from('a'), Buffer.from('ab')); }
      catch (e) { return {name: e.name, code: e.code}; }
    }"""
    assert run(runner, source) == {"name": "RangeError", "code": "ERR_CRYPTO_TIMING_SAFE_EQUAL_LENGTH"}


def test_timing_safe_equal_rejects_strings(runner):
    assert run_error(runner, "function main() { crypto.timingSafeEqual('a', 'a'); }").message.startswith("TypeError")


def test_atob_and_btoa(runner):
    source = "function main() { return {encoded: btoa('hi\u00ff'), decoded: atob('aGn/')}; }"
    assert run(runner, source) == {"encoded": base64.b64encode(b"hi\xff").decode(), "decoded": "hi\u00ff"}


def test_text_encoder_and_decoder_round_trip(runner):
    source = """function main() {
      const bytes = new TextEncoder().encode('\u00e9\U0001f600');
      return {bytes: Array.from(bytes), text: new TextDecoder().decode(bytes), plain: bytes instanceof Uint8Array};
    }"""
    assert run(runner, source) == {
        "bytes": list("\u00e9\U0001f600".encode()),
        "text": "\u00e9\U0001f600",
        "plain": True,
    }


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


# --- check_script and ScriptError --------------------------------------------------------------------


def test_check_script_accepts_a_valid_script():
    assert check_script(KNOCK_DEFAULT_SCRIPT) is None


@pytest.mark.parametrize(
    "source, kind, line, column",
    [
        ("function main(ctx) {\n  return {verified: true,,};\n}", "syntax", 2, 26),
        ("export function handler() {}", "no_main", None, None),
        ("const main = 42;", "no_main", None, None),
    ],
    ids=["syntax", "no main", "main not a function"],
)
def test_check_script_rejects(source, kind, line, column):
    with pytest.raises(ScriptError) as caught:
        check_script(source)
    assert (caught.value.kind, caught.value.line, caught.value.column) == (kind, line, column)


def test_script_error_survives_pickling():
    error = pickle.loads(pickle.dumps(ScriptError("syntax", "SyntaxError: x", 2, 5)))
    assert error.to_dict() == {"kind": "syntax", "message": "SyntaxError: x", "line": 2, "column": 5}


def test_script_error_rejects_unknown_kinds():
    with pytest.raises(ValueError):
        ScriptError("crash", "x")


# --- process lifecycle ------------------------------------------------------------------------------------

EXIT_PROGRAM = textwrap.dedent(
    """
    from knock_sources.scripting import ScriptError, ScriptRunner
    runner = ScriptRunner()
    ctx = {"vars": {}, "body": {}, "rawBody": "{}", "headers": {}}
    print(runner.run("a", "export async function main() { return {verified: true}; }", ctx))
    print(runner.run("b", "const kept = [];\\nfunction main() { return {verified: false}; }", ctx))
    try:
        runner.run("c", "function main() { while (true) {} }", ctx)
    except ScriptError as error:
        print(error.kind)
    print(runner.host_pid)
    """
)


def test_interpreter_exits_cleanly_with_a_host_running_and_stops_it():
    done = subprocess.run([sys.executable, "-c", EXIT_PROGRAM], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stderr) == (0, "")
    *printed, host = done.stdout.split()
    assert printed == ["{'verified':", "True}", "{'verified':", "False}", "timeout"]
    wait_until_ended(int(host))


ORPHAN_PROGRAM = textwrap.dedent(
    """
    import os, signal
    from knock_sources.scripting import ScriptRunner
    runner = ScriptRunner()
    runner.run("a", "function main() { return {}; }", {"vars": {}, "body": {}, "rawBody": "", "headers": {}})
    print(runner.host_pid, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_host_exits_when_the_process_that_started_it_dies():
    done = subprocess.run([sys.executable, "-c", ORPHAN_PROGRAM], capture_output=True, text=True, timeout=60)
    assert done.returncode == -signal.SIGKILL
    wait_until_ended(int(done.stdout))


def children_of_this_process():
    """Pids and states of this process's children, zombies included."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError):
                continue
            if int(fields[1]) == os.getpid():
                children[int(entry)] = fields[0]
    return children


def test_close_stops_the_host_and_leaves_no_zombie():
    runner = ScriptRunner()
    runner.run("a", COUNTER, make_ctx())
    host = runner.host_pid
    assert children_of_this_process().get(host) not in (None, "Z")
    runner.close()
    assert process_state(host) is None
    assert "Z" not in children_of_this_process().values()
    with pytest.raises(RuntimeError):
        runner.run("a", COUNTER, make_ctx())


def test_a_runner_collected_without_close_stops_its_host():
    runner = ScriptRunner()
    runner.run("a", COUNTER, make_ctx())
    host = runner.host_pid
    del runner
    gc.collect()
    assert process_state(host) is None


def test_a_host_that_cannot_start_is_an_error_of_the_runner(monkeypatch):
    monkeypatch.setattr(sys, "executable", "/bin/false")
    with ScriptRunner() as broken:
        with pytest.raises(RuntimeError, match="the script host did not start"):
            broken.run("a", COUNTER, make_ctx())
        assert broken.host_pid is None
    assert "Z" not in children_of_this_process().values()


def test_no_host_is_started_before_the_first_call():
    with ScriptRunner() as idle:
        assert idle.host_pid is None


FORK_PROGRAM = textwrap.dedent(
    """
    import os
    from knock_sources.scripting import ScriptRunner
    runner = ScriptRunner()
    ctx = {"vars": {}, "body": {}, "rawBody": "{}", "headers": {}}
    source = "let calls = 0;\\nfunction main() { calls += 1; return {calls}; }"
    runner.run("a", source, ctx)
    parent_host = runner.host_pid
    pid = os.fork()
    if pid == 0:
        print(runner.run("a", source, ctx), runner.host_pid not in (None, parent_host), flush=True)
        runner.close()
        os._exit(0)
    os.waitpid(pid, 0)
    print(runner.run("a", source, ctx), runner.host_pid == parent_host)
    """
)


def test_forked_child_starts_its_own_host_and_the_parent_carries_on():
    done = subprocess.run([sys.executable, "-c", FORK_PROGRAM], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.split("\n")[:2] == ["{'calls': 1} True", "{'calls': 2} True"]


MIXED_SOURCE = f"""function main(ctx) {{
  const kept = [];
  if (ctx.body.mode === "loop") while (true) {{}}
  if (ctx.body.mode === "bomb") while (true) kept.push({{n: kept.length}});
  if (ctx.body.mode === "crash") return {{n: {ONE_LINE_BOMBS["split"]}.length}};
  return {{verified: true, key: ctx.body.key}};
}}"""


def test_threads_mixing_results_timeouts_and_bombs_each_get_their_own_outcome():
    outcomes = []

    def work(runner, thread):
        for n in range(8):
            mode = ("ok", "loop", "ok", "bomb", "ok", "crash")[(thread + n) % 6]
            # Host-crashing calls get keys of their own: a key that crashes
            # the host twice is quarantined (see the quarantine tests).
            key = f"crash-{thread}" if mode == "crash" else (thread + n) % 5
            ctx = make_ctx(body={"mode": mode, "key": key})
            try:
                result = runner.run(key, MIXED_SOURCE, ctx)
                outcomes.append((mode, "ok" if result == {"verified": True, "key": key} else repr(result)))
            except ScriptError as error:
                outcomes.append((mode, error.kind))

    with ScriptRunner(timeout_ms=50, max_cached=3) as runner:
        threads = [threading.Thread(target=work, args=(runner, i)) for i in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    seen = {mode: {kind for named, kind in outcomes if named == mode} for mode in ("ok", "loop", "bomb", "crash")}
    assert len(outcomes) == 48
    # A bomb may reach the 50 ms limit before it fills 32 MB.
    assert seen["ok"] == {"ok"} and seen["loop"] == {"timeout"} and seen["crash"] == {"memory"}
    assert seen["bomb"] and seen["bomb"] <= {"memory", "timeout"}


def test_a_script_that_takes_the_host_down_twice_is_quarantined(runner):
    bomb = f"function main() {{ return {ONE_LINE_BOMBS['split']}; }}"
    assert run_error(runner, bomb, key="crashy").kind == "memory"
    assert run_error(runner, bomb, key="crashy").kind == "memory"
    host = runner.host_pid
    started = time.monotonic()
    error = run_error(runner, bomb, key="crashy")
    # Refused at once, without costing the host (and every other script) a restart.
    assert error.kind == "memory"
    assert time.monotonic() - started < 0.5
    assert runner.host_pid == host
    assert run(runner, "function main() { return {ok: true}; }", key="neighbour") == {"ok": True}
    # A fixed script runs again straight away.
    assert run(runner, "function main() { return {fixed: true}; }", key="crashy") == {"fixed": True}


def test_quarantine_refuses_even_harmless_payloads_of_that_script(runner):
    # The trade-off, stated: a script that keeps crashing the host is refused
    # for a while as a whole, not payload by payload.
    source = bombs_when_asked(ONE_LINE_BOMBS["split"])
    for _ in range(2):
        assert run_error(runner, source, make_ctx(body={"bomb": True}), key="q").kind == "memory"
    assert run_error(runner, source, make_ctx(body={"bomb": False}), key="q").kind == "memory"

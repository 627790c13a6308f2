"""Helpers of the script sandbox tests: sample scripts, ctx builders and a per-test view of a shared runner."""

import json
import os
import time

import pytest

from knock_sources.scripting import ScriptError

# Knock's default script for new Custom HTTP sources, as published (https://docs.knock.app/integrations/sources/custom).
KNOCK_DEFAULT_SCRIPT = """\
/**
 * Custom HTTP webhook verification.
 * Compares the X-Webhook-Secret header against the configured secret.
 * Customize this function to implement your own verification logic.
 */
async function verify({ headers, secret }) {
  if (!secret) { return false; }
  const signatureHeader = headers["x-webhook-secret"] ?? headers["X-Webhook-Secret"];
  if (!signatureHeader) { return false; }
  return signatureHeader === secret;
}
async function main({ headers, body, vars }) {
  const verified = await verify({ headers, secret: vars["CUSTOM_HTTP_SIGNING_SECRET"] });
  return { verified };
}
"""

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


def run(runner, source, ctx=None, key=None):
    return runner.run(key or source, source, ctx or make_ctx())


def run_error(runner, source, ctx=None, key=None):
    with pytest.raises(ScriptError) as caught:
        run(runner, source, ctx, key)
    return caught.value


COUNTER = "let calls = 0;\nfunction main() { calls += 1; return {calls}; }"


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

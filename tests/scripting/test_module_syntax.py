"""How ``main`` may be written: module syntax, sync and async, export forms."""

import pytest

from knock_sources.scripting.engine import to_classic_script
from tests.support.scripts import (
    SUPABASE_PREPROCESS_SCRIPT,
    make_ctx,
    run,
)

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

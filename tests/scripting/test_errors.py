"""Failures a script reports: syntax, runtime errors with locations, invalid results, check_script."""

import pickle

import pytest

from knock_sources.scripting import ScriptError, check_script
from tests.support.scripts import (
    KNOCK_DEFAULT_SCRIPT,
    run_error,
)

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

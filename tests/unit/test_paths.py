"""Path resolution and parameter specs (docs/architecture.md 3.1, 3.2)."""

import pytest

from knock_sources.paths import (
    MISSING,
    InvalidPath,
    json_type,
    parse_path,
    resolve,
    resolve_parameter,
    validate_parameter_spec,
)

SCOPE = {
    "body": {
        "type": "task.assigned",
        "data": {
            "assigned_to": ["u1", "u2"],
            "items": [{"id": "i0"}, {"id": "i1"}],
            "project": {"name": "Apollo"},
            "0": "key named zero",
            "flag": False,
            "nothing": None,
        },
        "headers": {"inside": "the body"},
    },
    "headers": {"svix-id": "msg_1", "x-shopify-topic": "orders/create"},
    "preprocess": {"normalized_event": "auth.users:INSERT"},
}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("body.type", "task.assigned"),
        ("type", "task.assigned"),
        ("data.project.name", "Apollo"),
        ("body.data.items[1].id", "i1"),
        ("body.data.items.1.id", "i1"),
        ("data.assigned_to[0]", "u1"),
        ("data.assigned_to.0", "u1"),
        ("body.data.0", "key named zero"),
        ("body.data.flag", False),
        ("body.data.nothing", None),
        ("headers.svix-id", "msg_1"),
        ("headers.Svix-Id", "msg_1"),
        ("headers.X-Shopify-Topic", "orders/create"),
        ("preprocess.normalized_event", "auth.users:INSERT"),
        ("body.data.project", {"name": "Apollo"}),
        ("body", SCOPE["body"]),
        ("headers", SCOPE["headers"]),
    ],
)
def test_resolve(path, expected):
    assert resolve(path, SCOPE) == expected


@pytest.mark.parametrize(
    "path",
    [
        "body.missing",
        "Type",  # paths are case-sensitive outside headers
        "body.data.items[5].id",
        "body.data.items.x",
        "body.type.length",
        "body.data.flag.x",
        "headers.absent",
        "preprocess.absent",
        "body..type",
        "",
    ],
)
def test_unresolvable_paths_are_missing(path):
    assert resolve(path, SCOPE) is MISSING


def test_namespace_wins_over_a_body_key_of_the_same_name():
    assert resolve("headers.inside", SCOPE) is MISSING
    assert resolve("body.headers.inside", SCOPE) == "the body"


@pytest.mark.parametrize("path", ["", " ", "a..b", ".a", "a.", "a[x]", "a[0", "[0]", "a]b"])
def test_malformed_paths_are_refused(path):
    with pytest.raises(InvalidPath):
        parse_path(path)


def test_parse_path_splits_namespace_and_segments():
    assert parse_path("body.data.items[2].id") == ("body", ("data", "items", 2, "id"))
    assert parse_path("data.x") == ("body", ("data", "x"))
    assert parse_path("headers.svix-id") == ("headers", ("svix-id",))


def test_literal_parameter_is_not_resolved():
    assert resolve_parameter({"value": "body.type"}, SCOPE).value == "body.type"
    assert resolve_parameter({"value": [1, 2]}, SCOPE).value == [1, 2]


def test_literal_marked_parameter_takes_a_plain_string_as_is():
    resolved = resolve_parameter("invoice-created", SCOPE, literal=True)
    assert resolved.value == "invoice-created"
    assert resolved.origin == "literal value"


def test_object_of_paths_resolves_each_field_and_drops_missing_ones():
    spec = {"task": "body.type", "project": "data.project.name", "gone": "body.nope", "fixed": {"value": 3}}
    assert resolve_parameter(spec, SCOPE).value == {"task": "task.assigned", "project": "Apollo", "fixed": 3}


def test_origin_names_the_path_for_error_messages():
    assert resolve_parameter("body.nope", SCOPE).origin == "path 'body.nope'"
    assert resolve_parameter(None, SCOPE).value is MISSING


@pytest.mark.parametrize(
    ("spec", "problems"),
    [
        ("body.ok", 0),
        ("body..bad", 1),
        ({"a": "body.ok", "b": "a[x]"}, 1),
        ({"value": "a..b"}, 0),
        (None, 0),
    ],
)
def test_validate_parameter_spec(spec, problems):
    assert len(validate_parameter_spec(spec)) == problems


@pytest.mark.parametrize(
    ("value", "name"),
    [
        (MISSING, "nothing"),
        (None, "null"),
        (True, "boolean"),
        (1, "number"),
        (1.5, "number"),
        ("s", "string"),
        ([], "array"),
        ({}, "object"),
    ],
)
def test_json_type(value, name):
    assert json_type(value) == name

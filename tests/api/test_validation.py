"""One error shape, and every key, id and flag checked by the store's rules before anything is written.

A 422 lists ``{"field", "in", "message"}`` per problem, the field written as
the client wrote it (``source.environment_settings.development.settings.x``,
no marshmallow ``value`` level), ``in`` saying whether it is the body, the
query string or the URL.
"""

import pytest

from knock_sources.store.control import Source

LONG = "k" * 3000


def errors_of(response, status=422):
    """Return ``{field: in}`` of a refused request, after checking the shape of its body."""
    assert response.status_code == status, response.get_json()
    body = response.get_json()
    assert body["code"] == "invalid_params"
    assert set(body) == {"code", "message", "errors"}
    for error in body["errors"]:
        assert set(error) == {"field", "in", "message"} and error["message"]
    return {error["field"]: error["in"] for error in body["errors"]}


def source_body(**environment):
    return {"source": {"name": "S", "environment_settings": {"development": environment}}}


DEV = "source.environment_settings.development"
IDENTIFY = {"event_type": "a", "action_type": "users_identify", "action_parameters": {"id": "body.id"}}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"source": {}}, "source.name"),
        ({"source": {"name": 5}}, "source.name"),
        (source_body(settings={"event_type_path": "a..b"}), f"{DEV}.settings.event_type_path"),
        (source_body(settings={"typo_path": "a"}), f"{DEV}.settings.typo_path"),
        (source_body(settings={"enforce_verification": "yes"}), f"{DEV}.settings.enforce_verification"),
        (source_body(settings={"enforce_idempotency": 1}), f"{DEV}.settings.enforce_idempotency"),
        (source_body(settings={"tolerance_seconds": "300"}), f"{DEV}.settings.tolerance_seconds"),
        (source_body(settings={"tolerance_seconds": True}), f"{DEV}.settings.tolerance_seconds"),
        (source_body(settings={"secret_header": "X Token"}), f"{DEV}.settings.secret_header"),
        (source_body(active="no"), f"{DEV}.active"),
        (source_body(mappings=[{"event_type": "a", "action_type": "nope"}]), f"{DEV}.mappings.0.action_type"),
        (source_body(mappings=[IDENTIFY, {**IDENTIFY, "active": "yes"}]), f"{DEV}.mappings.1.active"),
        ({"source": {"name": "S", "environment_settings": {"staging": {}}}}, "source.environment_settings.staging"),
    ],
)
def test_source_body_errors_name_the_field_as_written(api, body, field):
    assert errors_of(api.put("/v1/sources/s", body)) == {field: "body"}
    assert api.get("/v1/sources/s").status_code == 404


def test_settings_of_an_existing_source_report_the_same_paths(api):
    # The service's own checks (after the schema) use the client's paths too.
    api.create_source("s")
    body = source_body(settings={"preprocess_script": {"source": "function main( {"}})
    assert errors_of(api.put("/v1/sources/s", body)) == {
        "source.environment_settings.development.settings.preprocess_script": "body"
    }


@pytest.mark.parametrize(
    ("method", "path", "json"),
    [
        ("PUT", f"/v1/sources/{LONG}", {"source": {"name": "S"}}),
        ("PUT", "/v1/sources/has space", {"source": {"name": "S"}}),
        ("PUT", "/v1/sources/" + "k" * 129, {"source": {"name": "S"}}),
        ("GET", f"/v1/sources/{LONG}", None),
        ("PATCH", "/v1/sources/-dash-first", {"source": {"name": "S"}}),
        ("DELETE", "/v1/sources/a%20b", None),
        ("GET", f"/v1/sources/{LONG}/logs", None),
        ("POST", f"/v1/sources/{LONG}/mappings", {"event_type": "a", "action_type": "users_identify"}),
        ("POST", f"/v1/sources/{LONG}/rotate_token", None),
        ("PUT", f"/v1/workflows/{LONG}", {"workflow": {"name": "W"}}),
        ("PUT", "/v1/workflows/has space", {"workflow": {"name": "W"}}),
        ("GET", f"/v1/workflows/{LONG}/runs", None),
        ("PUT", "/v1/variables/" + "V" * 256, {"variable": {"value": "x"}}),
        ("PUT", "/v1/variables/NEWLINE%0A", {"variable": {"value": "x"}}),
        ("DELETE", "/v1/variables/1ABC", None),
        ("GET", "/v1/sources/s/logs/abc", None),
        ("GET", "/v1/sources/s/mappings/1.5", None),
        ("DELETE", "/v1/sources/s/mappings/99999999999999999999", None),
    ],
)
def test_keys_and_ids_in_the_url_are_checked_by_the_store_rules(api, db, method, path, json):
    api.create_source("s")
    response = api.request(method, path, json=json)
    fields = errors_of(response)
    assert set(fields.values()) == {"path"}
    assert response.get_json()["message"] == "The URL names an invalid key or id."
    assert Source.select().count() == 1


def test_longest_keys_the_store_holds_are_accepted(api, db):
    key = "k" * Source.key.max_length
    assert api.put(f"/v1/sources/{key}", {"source": {"name": "S"}}).status_code == 200
    assert api.put("/v1/workflows/" + "w" * 255, {"workflow": {"name": "W"}}).status_code == 200
    assert api.put("/v1/variables/" + "V" * 255, {"variable": {"value": "x"}}).status_code == 200
    assert Source.get().key == key


@pytest.mark.parametrize(
    ("path", "query", "field"),
    [
        ("/v1/sources", {"limit": "0"}, "limit"),
        ("/v1/sources", {"limit": "101"}, "limit"),
        ("/v1/sources", {"limit": "ten"}, "limit"),
        ("/v1/sources", {"after": "-1"}, "after"),
        ("/v1/sources", {"before": "x"}, "before"),
        ("/v1/sources/s/logs", {"status": "exploded"}, "status"),
        ("/v1/sources/s/logs", {"starting_at": "yesterday"}, "starting_at"),
        ("/v1/sources/s/logs", {"limit": "1000"}, "limit"),
        ("/v1/variables", {"limit": "-5"}, "limit"),
    ],
)
def test_query_parameter_errors_are_named_as_such(api, path, query, field):
    api.create_source("s")
    response = api.get(path, **query)
    assert errors_of(response) == {field: "query"}
    assert response.get_json()["message"] == "The query parameters are invalid."


def test_limit_within_range_is_honoured(api):
    for index in range(3):
        api.create_source(f"s-{index}")
    assert len(api.get("/v1/sources", limit="1").get_json()["entries"]) == 1
    assert api.get("/v1/sources", limit="100").get_json()["page_info"]["page_size"] == 100


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/workflows/w", {"workflow": {"active": "yes"}}, "workflow.active"),
        ("/v1/workflows/w", {"workflow": {"active": 0}}, "workflow.active"),
        ("/v1/variables/V", {"variable": {"secret": "true"}}, "variable.secret"),
        (
            "/v1/variables/V",
            {"variable": {"environment_values": {"production": 1}}},
            "variable.environment_values.production",
        ),
    ],
)
def test_flags_are_strictly_booleans(api, path, body, field):
    assert errors_of(api.put(path, body)) == {field: "body"}


def test_a_refused_flag_changes_nothing(api):
    api.create_source("s")
    assert api.put("/v1/sources/s", source_body(active="yes")).status_code == 422
    assert api.get("/v1/sources/s").get_json()["environment_settings"]["development"]["active"] is True

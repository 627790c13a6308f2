"""``GET /openapi.json``: every route documented, with bodies, shapes, the error shape and the bearer scheme.

``make api-check`` holds a live server to this document with schemathesis;
these tests check the document's coverage and a few shapes against real responses.
"""

from __future__ import annotations

# schemathesis's own JSON Schema validator.
import jsonschema_rs
import pytest

from knock_sources.views import openapi

TRIGGER = {
    "event_type": "order.paid",
    "action_type": "workflows_trigger",
    "action_parameters": {"key": "receipt", "recipients": {"value": [{"id": "u1", "name": "Ada"}]}},
}


@pytest.fixture
def document(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200
    return response.get_json()


def test_every_route_is_documented(app, document):
    documented = {(path, method) for path, operations in document["paths"].items() for method in operations}
    routes = [rule for rule in app.url_map.iter_rules() if openapi.documented(rule.endpoint)]
    for rule in routes:
        path = openapi._CONVERTER.sub(r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert (path, method.lower()) in documented, rule
    assert set(openapi.OPERATIONS) == {rule.endpoint for rule in routes}
    assert not any(path.startswith("/<env>") or path == "/login" for path in document["paths"])


def test_the_document_is_openapi_3_1_with_bearer_auth_and_the_error_shape(document):
    assert document["openapi"] == "3.1.0"
    assert document["components"]["securitySchemes"]["apiKey"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key.",
    }
    assert document["security"] == [{"apiKey": []}]
    assert document["components"]["schemas"]["Error"]["required"] == ["code", "message"]
    replay = document["paths"]["/v1/sources/{key}/replay"]["post"]
    assert replay["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ReplayBodyInput"
    }
    assert set(replay["responses"]) == {"200", "202", "default"}
    ingest = document["paths"]["/integrations/receive/{token}"]["post"]
    assert ingest["security"] == [] and "204" in ingest["responses"]
    logs = document["paths"]["/v1/sources/{key}/logs"]["get"]
    assert {"environment", "after", "before", "limit", "event", "status", "starting_at", "include[]"} <= {
        parameter["name"] for parameter in logs["parameters"]
    }


def conforms(document, body, path, method, status="200"):
    """Validate ``body`` against the documented response (its ``$ref``s resolve against the document)."""
    schema = document["paths"][path][method]["responses"][status]["content"]["application/json"]["schema"]
    resolvable = {**document, **schema}
    jsonschema_rs.Draft202012Validator(resolvable).validate(body)


def test_real_responses_conform(api, client, document):
    api.create_source(mappings=[TRIGGER])
    client.post(api.endpoint(), json={"type": "order.paid"})
    conforms(document, api.get("/v1/sources").get_json(), "/v1/sources", "get")
    conforms(
        document,
        api.get("/v1/sources/my-source/logs", **{"include[]": "actions"}).get_json(),
        "/v1/sources/{key}/logs",
        "get",
    )
    replayed = api.client.post(
        "/v1/sources/my-source/replay",
        json={"dry_run": True},
        query_string={"environment": "development"},
        headers=api.headers,
    )
    conforms(document, replayed.get_json(), "/v1/sources/{key}/replay", "post")
    missing = api.get("/v1/sources/nope")
    assert missing.status_code == 404
    conforms(document, missing.get_json(), "/v1/sources/{key}", "get", "default")


def row_id_parameters(document):
    """Every (path, method, parameter) the document says holds a row id, as text."""
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                if "pattern" in parameter["schema"] and parameter["name"] in {"after", "before"} | {
                    name.strip("{}") for name in path.split("/") if name.endswith("_id}")
                }:
                    yield path, method, parameter


def test_row_id_parameters_say_what_the_api_accepts(api, document):
    """An id the document allows is looked up (a 404 or a page), one it forbids is refused (422).

    So schemathesis's fuzzing is not spent on ids the API can only refuse.
    """
    found = list(row_id_parameters(document))
    assert {(path, parameter["in"]) for path, _, parameter in found} >= {
        ("/v1/replays/{replay_id}", "path"),
        ("/v1/sources/{key}/logs/{log_id}", "path"),
        ("/v1/sources/{key}/mappings/{mapping_id}", "path"),
        ("/v1/sources/{key}/logs", "query"),
    }
    api.create_source(mappings=[TRIGGER])
    checked = set()
    for path, method, parameter in found:
        allows = jsonschema_rs.Draft202012Validator(parameter["schema"]).is_valid
        assert allows("9223372036854775807") and not allows("abc") and not allows("-1")
        for value, refused in (("9223372036854775807", False), ("abc", True), ("-1", True)):
            url = path.replace("/v1/sources/{key}", "/v1/sources/my-source")
            query = {"environment": "development"}
            if parameter["in"] == "path":
                url = url.replace("{" + parameter["name"] + "}", value)
            else:
                query[parameter["name"]] = value
            if "{" in url:
                continue  # another resource's key, which the source fixture does not supply
            response = api.client.open(url, method=method.upper(), query_string=query, headers=api.headers, json={})
            assert (response.status_code == 422) is refused, (method, url, query, response.get_json())
            if refused:
                assert parameter["name"] in str(response.get_json()), response.get_json()
            checked.add(path)
    assert {"/v1/replays/{replay_id}", "/v1/sources/{key}/logs/{log_id}", "/v1/sources/{key}/logs"} <= checked

"""Account variables: JSON parsing rule, per-environment values, secrets never shown."""

import json

import pytest

from knock_sources.control import variables
from knock_sources.store.control import Variable, VariableValue


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("true", True),
        ("123", 123),
        ("1.5", 1.5),
        ('{"a": [1]}', {"a": [1]}),
        ("null", None),
        ("007", "007"),
        ("TRUE", "TRUE"),
        ("hello", "hello"),
        ("", ""),
    ],
)
def test_values_are_parsed_as_json_when_they_parse(text, parsed):
    assert variables.parse_value(text) == parsed


def put(api, key, **variable):
    response = api.put(f"/v1/variables/{key}", {"variable": variable})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def seen_by_scripts(api, expression, environment="development"):
    """Return what a script of ``environment`` computes from ``ctx.vars`` (through ``scripts/test``)."""
    api.create_source("probe", environment=environment)
    script = f"function main(ctx) {{ const vars = ctx.vars; return {{verified: true, seen: {expression}}}; }}"
    response = api.request(
        "POST", "/v1/sources/probe/scripts/test", json={"script": {"source": script}}, environment=environment
    )
    assert response.status_code == 200, response.get_json()
    result = response.get_json()
    assert result["error"] is None, result
    return result["output"]["seen"]


def test_plain_variable_round_trip(api):
    body = put(api, "REGION", value="eu", environment_values={"production": "us"})
    assert (body["value"], body["environment_values"], body["secret"]) == ("eu", {"production": "us"}, False)
    [listed] = api.get("/v1/variables").get_json()["entries"]
    assert listed["key"] == "REGION"


def test_environment_value_overrides_the_default(api):
    put(api, "REGION", value="eu", environment_values={"production": "us"})
    put(api, "LIMIT", value="10")
    assert seen_by_scripts(api, "vars", "development") == {"REGION": "eu", "LIMIT": 10}
    assert seen_by_scripts(api, "vars", "production") == {"REGION": "us", "LIMIT": 10}


def test_secret_values_are_never_returned_and_are_encrypted_at_rest(api, db):
    body = put(
        api, "STRIPE_SECRET", value="whsec_topsecret", secret=True, environment_values={"production": "whsec_prod"}
    )
    everything = json.dumps([body, api.get("/v1/variables").get_json()])
    assert "topsecret" not in everything and "whsec_prod" not in everything
    assert body["value"] is None and body["has_value"] is True
    assert body["environment_values"] == {"production": None}
    stored = [Variable.get().value, VariableValue.get().value]
    assert not any("whsec" in value for value in stored)
    assert seen_by_scripts(api, 'vars.STRIPE_SECRET === "whsec_prod"', "production") is True


def test_secret_can_be_updated_without_resending_its_value(api):
    put(api, "TOKEN", value="s3cret", secret=True)
    put(api, "TOKEN", description="rotated quarterly")
    assert seen_by_scripts(api, 'vars.TOKEN === "s3cret"') is True


def test_making_a_variable_secret_encrypts_its_stored_values(api, db):
    put(api, "TOKEN", value="plain", environment_values={"production": "prod"})
    put(api, "TOKEN", secret=True)
    assert "plain" not in Variable.get().value
    assert seen_by_scripts(api, 'vars.TOKEN === "prod"', "production") is True


def test_null_clears_an_environment_value(api):
    put(api, "REGION", value="eu", environment_values={"production": "us"})
    assert put(api, "REGION", environment_values={"production": None})["environment_values"] == {}


def test_delete_variable(api):
    put(api, "REGION", value="eu")
    assert api.delete("/v1/variables/REGION").status_code == 204
    assert api.get("/v1/variables").get_json()["entries"] == []
    assert api.delete("/v1/variables/REGION").status_code == 404


@pytest.mark.parametrize(
    ("key", "variable"),
    [
        ("1ABC", {"value": "x"}),
        ("has-dash", {"value": "x"}),
        ("OK", {"value": 5}),
        ("OK", {"colour": "red"}),
        ("OK", {"environment_values": {"production": 1}}),
    ],
)
def test_invalid_variable_is_422(api, key, variable):
    assert api.put(f"/v1/variables/{key}", {"variable": variable}).status_code == 422


def test_unknown_environment_is_422_naming_it(api):
    response = api.put("/v1/variables/X", {"variable": {"environment_values": {"staging": "1"}}})
    assert response.status_code == 422
    assert [error["field"] for error in response.get_json()["errors"]] == ["variable.environment_values.staging"]

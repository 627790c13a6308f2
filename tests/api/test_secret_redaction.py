"""Secrets stay secret: the shared-secret header, secret variables in what scripts return, variables JSON cannot carry.

Each test reads back everything the API shows about the request (its log
with actions, the script test and the rehearsal) and looks for the secret.
"""

import json

import pytest

from knock_sources.store.control import Environment, SourceEnvironment, Variable

SECRET = "s3cret-value-9f2c"


def everything_shown(api, key="my-source"):
    """Every log of a source, with actions, as the API serves it."""
    return json.dumps(api.logs(key))


@pytest.mark.parametrize("configured", ["X-Token ", " x-token", "X-TOKEN", "x-token", "\tX-Token\n"])
def test_the_secret_header_is_redacted_however_its_name_was_written(client, api, configured):
    env = api.create_source(settings={"signing_secret": SECRET, "secret_header": configured})
    assert env["environment_settings"]["development"]["settings"]["secret_header"] == "x-token"
    endpoint = api.endpoint()
    assert client.post(endpoint, json={"type": "ok"}, headers={"X-Token": SECRET}).status_code == 204
    assert client.post(endpoint, json={"type": "bad"}, headers={"X-Token": SECRET + "-wrong"}).status_code == 401
    shown = everything_shown(api)
    assert SECRET not in shown
    rejected, accepted = api.logs()
    assert accepted["headers"]["x-token"] == rejected["headers"]["x-token"] == "[redacted]"
    assert rejected["status"] == "rejected"


def test_a_secret_header_name_stored_before_normalisation_is_still_redacted(client, api, db):
    # Databases written before the API normalised the setting may hold "X-Token ".
    api.create_source(settings={"signing_secret": SECRET})
    source_env = SourceEnvironment.select().join(Environment).where(Environment.slug == "development").get()
    source_env.settings = {**source_env.settings, "secret_header": "X-Token "}
    source_env.save()
    assert client.post(api.endpoint(), json={"type": "ok"}, headers={"X-Token": SECRET}).status_code == 204
    assert SECRET not in everything_shown(api)


def put_variable(api, key, value, secret=False, **extra):
    response = api.put(f"/v1/variables/{key}", {"variable": {"value": value, "secret": secret, **extra}})
    assert response.status_code == 200, response.get_json()


LEAKY_SCRIPT = """
export function main(ctx) {
  const s = ctx.vars.SIGNING_SECRET;
  return {
    verified: true,
    copied: s,
    sentence: "the secret is " + s + "!",
    nested: {list: [s, {deeper: s.toUpperCase() === s ? s : s + "-x"}]},
    [s]: "as a key",
    pin: ctx.vars.PIN,
    region: ctx.vars.REGION,
  };
}
"""


@pytest.fixture
def leaky(api):
    """A source whose script copies secret variables into everything it returns."""
    put_variable(api, "SIGNING_SECRET", SECRET, secret=True)
    put_variable(api, "PIN", "739251", secret=True)
    put_variable(api, "REGION", "eu-west-1")
    api.create_source(
        settings={"preprocess_script": {"source": LEAKY_SCRIPT}, "enforce_verification": True},
        mappings=[
            {
                "event_type": "user.identified",
                "action_type": "users_identify",
                "action_parameters": {"id": "body.id", "name": "preprocess.copied"},
            }
        ],
    )
    return api


def assert_redacted(output):
    text = json.dumps(output)
    assert SECRET not in text and "739251" not in text
    assert output["copied"] == "[redacted]"
    assert output["sentence"] == "the secret is [redacted]!"
    assert output["nested"]["list"][0] == "[redacted]"
    assert output["nested"]["list"][1]["deeper"] == "[redacted]-x"
    assert output["[redacted]"] == "as a key"
    assert output["pin"] == "[redacted]"
    # Only secret variables are redacted.
    assert output["region"] == "eu-west-1"


def test_a_script_returning_secret_variables_stores_and_shows_them_redacted(client, leaky, db):
    assert client.post(leaky.endpoint(), json={"type": "user.identified", "id": "ada"}).status_code == 204
    [entry] = leaky.logs()
    assert_redacted(entry["preprocess_output"])
    assert SECRET not in everything_shown(leaky)
    # What actions read from preprocess is the stored, redacted output.
    assert leaky.get("/v1/users/ada").get_json()["name"] == "[redacted]"


def test_script_test_and_rehearsal_answer_with_secrets_redacted(leaky):
    payload = {"payload": {"body": {"type": "user.identified", "id": "ada"}}}
    tested = leaky.request("POST", "/v1/sources/my-source/scripts/test", json=payload)
    assert tested.status_code == 200
    assert_redacted(tested.get_json()["output"])
    unsaved = leaky.request(
        "POST", "/v1/sources/my-source/scripts/test", json={**payload, "script": {"source": LEAKY_SCRIPT}}
    )
    assert_redacted(unsaved.get_json()["output"])
    rehearsed = leaky.request("POST", "/v1/sources/my-source/rehearse", json=payload)
    assert rehearsed.status_code == 200
    assert_redacted(rehearsed.get_json()["preprocess_output"])
    assert SECRET not in json.dumps(rehearsed.get_json())


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity", "1e999", "[1, NaN]", '{"a": -1e400}'])
def test_variables_json_cannot_carry_are_refused(api, text):
    response = api.put("/v1/variables/LIMIT", {"variable": {"value": text}})
    assert response.status_code == 422
    assert [e["field"] for e in response.get_json()["errors"]] == ["variable.value"]
    response = api.put("/v1/variables/LIMIT", {"variable": {"value": "1", "environment_values": {"production": text}}})
    assert [e["field"] for e in response.get_json()["errors"]] == ["variable.environment_values.production"]
    assert api.get("/v1/variables").get_json()["entries"] == []


@pytest.mark.parametrize("text", ["nan", "1e308", "-0", "Infinity!", '"NaN"'])
def test_values_that_are_finite_json_or_plain_text_are_kept(api, text):
    assert api.put("/v1/variables/V", {"variable": {"value": text}}).status_code == 200


def test_a_non_finite_value_stored_earlier_breaks_no_script(client, api, db):
    # Stored before values were checked: it reaches scripts as its text, and
    # every other variable and request of the environment keeps working.
    put_variable(api, "LIMIT", "1")
    put_variable(api, "REGION", "eu")
    Variable.update(value="NaN").where(Variable.key == "LIMIT").execute()
    script = "function main(ctx) { return {verified: ctx.vars.REGION === 'eu', limit: ctx.vars.LIMIT}; }"
    api.create_source(settings={"preprocess_script": {"source": script}, "enforce_verification": True})
    assert client.post(api.endpoint(), json={"type": "a"}).status_code == 204
    [entry] = api.logs()
    assert entry["preprocess_output"] == {"limit": "NaN"}

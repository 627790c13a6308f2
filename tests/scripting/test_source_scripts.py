"""Custom source scripts end to end: verification, preprocessing, vars, dry runs (issue 5)."""

import hashlib
import hmac
import json
import logging

import pytest

from tests.support.scripts import KNOCK_DEFAULT_SCRIPT, SUPABASE_PREPROCESS_SCRIPT

# The seed's shape: verify an HMAC of the raw body with a secret kept in vars.
HMAC_SCRIPT = """
export async function main(ctx) {
  const { headers, rawBody, vars } = ctx;
  const expected = crypto.createHmac("sha256", vars.MY_SIGNING_SECRET).update(rawBody).digest("hex");
  const given = headers["x-signature"] || "";
  const verified = given.length === expected.length &&
    crypto.timingSafeEqual(Buffer.from(given, "utf8"), Buffer.from(expected, "utf8"));
  return { verified };
}
"""
SECRET = "s3cret-signing-key"


def script_settings(source, enforce=True, **settings):
    return {
        "preprocess_script": {"language": "javascript", "source": source},
        "enforce_verification": enforce,
        **settings,
    }


def set_variable(api, key, value, secret=True):
    response = api.put(f"/v1/variables/{key}", {"variable": {"value": value, "secret": secret}})
    assert response.status_code == 200


def signed(body):
    raw = json.dumps(body)
    return raw, {"X-Signature": hmac.new(SECRET.encode(), raw.encode(), hashlib.sha256).hexdigest()}


@pytest.fixture
def hmac_source(api):
    set_variable(api, "MY_SIGNING_SECRET", SECRET)
    api.create_source(settings=script_settings(HMAC_SCRIPT))
    return api.endpoint()


def test_hmac_verified_request_is_accepted(client, api, hmac_source):
    raw, headers = signed({"type": "order.paid"})
    response = client.post(hmac_source, data=raw, content_type="application/json", headers=headers)
    assert response.status_code == 204
    entry = api.logs()[0]
    assert (entry["status"], entry["verification_status"]) == ("processed", "enforced:verified")


def test_bad_signature_is_401_and_logged_as_rejected(client, api, hmac_source):
    raw, _ = signed({"type": "order.paid"})
    response = client.post(hmac_source, data=raw, content_type="application/json", headers={"X-Signature": "0" * 64})
    assert response.status_code == 401
    assert response.get_json() == {"code": "script_unverified", "message": "The request could not be verified."}
    entry = api.logs()[0]
    assert (entry["status"], entry["reason"], entry["verification_status"]) == (
        "rejected",
        "script_unverified",
        "enforced:unverified",
    )


def test_tampered_body_fails_verification(client, hmac_source):
    raw, headers = signed({"type": "order.paid", "amount": 1})
    tampered = raw.replace('"amount": 1', '"amount": 1000')
    assert client.post(hmac_source, data=tampered, content_type="application/json", headers=headers).status_code == 401


def test_knocks_default_script_works_as_written(client, api):
    set_variable(api, "CUSTOM_HTTP_SIGNING_SECRET", "shared-secret")
    api.create_source(settings=script_settings(KNOCK_DEFAULT_SCRIPT))
    endpoint = api.endpoint()
    assert client.post(endpoint, json={"type": "a"}, headers={"X-Webhook-Secret": "shared-secret"}).status_code == 204
    assert client.post(endpoint, json={"type": "a"}, headers={"X-Webhook-Secret": "wrong"}).status_code == 401
    assert client.post(endpoint, json={"type": "a"}).status_code == 401


def test_preprocess_output_feeds_event_type_and_idempotency_paths(client, api):
    api.create_workflow("welcome")
    api.create_source(
        settings=script_settings(
            SUPABASE_PREPROCESS_SCRIPT,
            event_type_path="preprocess.normalized_event",
            idempotency_key_path="preprocess.item_idempotency_key",
            enforce_idempotency=True,
        ),
        mappings=[
            {
                "event_type": "auth.users:INSERT",
                "action_type": "users_identify",
                "action_parameters": {"id": "body.record.id", "email": "body.record.email"},
            }
        ],
    )
    body = {
        "type": "INSERT",
        "table": "users",
        "schema": "auth",
        "record": {"id": "u1", "email": "a@b.c", "updated_at": "t1"},
    }
    endpoint = api.endpoint()
    client.post(endpoint, json=body)
    client.post(endpoint, json=body)
    duplicate, first = api.logs()
    assert first["event"] == "auth.users:INSERT"
    assert first["preprocess_output"] == {"normalized_event": "auth.users:INSERT", "item_idempotency_key": "u1_t1"}
    assert first["idempotency_key"] == "u1_t1"
    assert first["actions"][0]["action_status"] == "success"
    assert duplicate["status"] == "idempotent"
    assert api.get("/v1/users/u1").get_json()["email"] == "a@b.c"


FAILING_SCRIPTS = {
    "false": "function main() { return { verified: false }; }",
    "missing": "function main() { return { other: 1 }; }",
    "string-true": "function main() { return { verified: 'true' }; }",
    "not-an-object": "function main() { return 42; }",
    "throws": "function main() { throw new Error('boom'); }",
    "rejects": "async function main() { throw new Error('async boom'); }",
    "timeout": "function main() { while (true) {} }",
    "memory": "function main() { const a = []; while (true) { a.push('x'.repeat(1024) + a.length); } }",
}


@pytest.mark.parametrize("name", FAILING_SCRIPTS)
def test_anything_but_verified_true_is_401_when_enforced(client, api, name):
    api.create_source(settings=script_settings(FAILING_SCRIPTS[name]))
    response = client.post(api.endpoint(), json={"type": "a"})
    assert response.status_code == 401
    entry = api.logs()[0]
    assert (entry["status"], entry["reason"]) == ("rejected", "script_unverified")
    assert entry["error"]


@pytest.mark.parametrize("name", ["false", "throws", "timeout"])
def test_unenforced_outcome_is_only_recorded(client, api, name):
    api.create_source(settings=script_settings(FAILING_SCRIPTS[name], enforce=False))
    assert client.post(api.endpoint(), json={"type": "a"}).status_code == 204
    entry = api.logs()[0]
    assert (entry["status"], entry["verification_status"]) == ("processed", "unenforced:unverified")


def test_unenforced_verified_script(client, api):
    api.create_source(
        settings=script_settings(SUPABASE_PREPROCESS_SCRIPT.replace("body.record.id", "1"), enforce=False)
    )
    client.post(api.endpoint(), json={"type": "x", "schema": "s", "table": "t", "record": {}})
    assert api.logs()[0]["verification_status"] == "unenforced:verified"


def test_no_script_means_no_verification_status(client, api):
    api.create_source()
    client.post(api.endpoint(), json={"type": "a"})
    assert api.logs()[0]["verification_status"] is None


@pytest.mark.parametrize(
    "source",
    ["function main( { return 1 }", "const x = 1;", "export default 42;"],
    ids=["syntax", "no-main", "default-not-a-function"],
)
def test_script_that_does_not_compile_is_refused_with_422(api, source):
    response = api.put(
        "/v1/sources/s",
        {"source": {"name": "S", "environment_settings": {"development": {"settings": script_settings(source)}}}},
    )
    assert response.status_code == 422
    assert "preprocess_script" in json.dumps(response.get_json()["errors"])


def test_syntax_error_names_line_and_column(api):
    response = api.put(
        "/v1/sources/s",
        {
            "source": {
                "name": "S",
                "environment_settings": {
                    "development": {"settings": script_settings("function main() {\n  return {verified: true\n}")}
                },
            }
        },
    )
    assert "line" in response.get_json()["message"]


def test_scripts_of_two_sources_do_not_share_state(client, api):
    counter = "globalThis.n = (globalThis.n || 0) + 1; function main() { return { verified: true, n: globalThis.n }; }"
    leak = "function main() { globalThis.n = 1000; return { verified: true, n: globalThis.n }; }"
    api.create_source("a", settings=script_settings(counter))
    api.create_source("b", settings=script_settings(leak))
    a, b = api.endpoint("a"), api.endpoint("b")
    client.post(a, json={"type": "x"})
    client.post(b, json={"type": "x"})
    client.post(a, json={"type": "x"})
    assert [entry["preprocess_output"]["n"] for entry in api.logs("a")] == [1, 1]
    assert api.logs("b")[0]["preprocess_output"]["n"] == 1000


def test_secret_variables_never_reach_responses_or_logs(client, api, hmac_source, caplog):
    caplog.set_level(logging.DEBUG)
    leaky = "function main(ctx) { throw new Error('secret is ' + ctx.vars.MY_SIGNING_SECRET); }"
    api.create_source("leaky", settings=script_settings(leaky))
    response = client.post(api.endpoint("leaky"), json={"type": "x"})
    raw, headers = signed({"type": "x"})
    client.post(hmac_source, data=raw, content_type="application/json", headers=headers)
    test = api.client.post("/v1/sources/leaky/scripts/test", json={}, headers=api.headers)
    everything = json.dumps(
        [response.get_json(), api.logs("leaky"), api.logs(), api.get("/v1/variables").get_json(), test.get_json()]
    )
    assert SECRET not in everything
    assert SECRET not in caplog.text
    assert "[redacted]" in api.logs("leaky")[0]["error"]


def test_script_test_endpoint_runs_the_saved_script(api, hmac_source):
    raw, headers = signed({"type": "x"})
    response = api.client.post(
        "/v1/sources/my-source/scripts/test",
        json={"payload": {"body": {"type": "x"}, "raw_body": raw, "headers": headers}},
        headers=api.headers,
    )
    body = response.get_json()
    assert response.status_code == 200
    assert (body["output"], body["verified"], body["error"]) == ({"verified": True}, True, None)
    assert body["duration_ms"] >= 0


def test_script_test_endpoint_reports_errors_with_position(api):
    api.create_source()
    response = api.client.post(
        "/v1/sources/my-source/scripts/test",
        json={"script": {"source": "function main() {\n  return nope();\n}"}, "payload": {"body": {}}},
        headers=api.headers,
    )
    error = response.get_json()["error"]
    assert (error["kind"], error["line"]) == ("runtime", 2)
    assert "nope" in error["message"]


def test_script_test_without_any_script_is_422(api):
    api.create_source()
    assert api.client.post("/v1/sources/my-source/scripts/test", json={}, headers=api.headers).status_code == 422


def test_rehearse_resolves_actions_without_writing(client, api):
    api.create_source(
        settings=script_settings(SUPABASE_PREPROCESS_SCRIPT, event_type_path="preprocess.normalized_event"),
        mappings=[
            {
                "event_type": "auth.users:INSERT",
                "action_type": "users_identify",
                "action_parameters": {"id": "body.record.id"},
            },
            {
                "event_type": "auth.users:INSERT",
                "action_type": "workflows_trigger",
                "action_parameters": {"key": "w", "recipients": "body.record.missing"},
            },
        ],
    )
    body = {"type": "INSERT", "table": "users", "schema": "auth", "record": {"id": "u9", "updated_at": "t"}}
    response = api.client.post("/v1/sources/my-source/rehearse", json={"payload": {"body": body}}, headers=api.headers)
    result = response.get_json()
    assert response.status_code == 200
    assert result["event"] == "auth.users:INSERT"
    assert result["verification_status"] == "enforced:verified"
    assert [(a["action_type"], a["action_status"]) for a in result["actions"]] == [
        ("users_identify", "success"),
        ("workflows_trigger", "skipped"),
    ]
    assert result["actions"][0]["action_payload"] == {"id": "u9"}
    assert result["status"] == "error"
    assert any("body.record.missing" in e["message"] for e in result["errors"])
    assert (result["action_logs_count"], result["successful_action_logs_count"]) == (2, 1)
    assert api.logs() == []
    assert api.get("/v1/users/u9").status_code == 404


def test_rehearse_reports_failed_verification(api, hmac_source):
    response = api.client.post(
        "/v1/sources/my-source/rehearse", json={"payload": {"body": {"type": "x"}}}, headers=api.headers
    )
    result = response.get_json()
    assert result["verification_status"] == "enforced:unverified"
    assert result["status"] == "error"


def test_script_cost_stays_bounded_after_a_timeout(client, api):
    api.create_source("slow", settings=script_settings(FAILING_SCRIPTS["timeout"]))
    api.create_source("fast", settings=script_settings("function main() { return {verified: true}; }"))
    assert client.post(api.endpoint("slow"), json={"type": "a"}).status_code == 401
    assert client.post(api.endpoint("fast"), json={"type": "a"}).status_code == 204
    assert client.post(api.endpoint("slow"), json={"type": "a"}).status_code == 401
    assert client.post(api.endpoint("fast"), json={"type": "a"}).status_code == 204

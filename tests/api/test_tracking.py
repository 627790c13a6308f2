"""The Segment-compatible tracking API (``/segment/v1``) through HTTP: routes, write keys, bodies, items."""

import base64
import gzip
import json

import pytest

from tests.support.tracking import basic, identify, post_call, track, write_key


@pytest.fixture
def key(api):
    """The write key of a Segment source ``seg`` with a ``signup`` workflow triggered by ``Signed Up``."""
    api.create_source("seg", provider="segment")
    api.create_workflow("signup")
    body = {"trigger": {"source": "seg", "event": "track/Signed Up", "mapping": {"recipients": "user_id"}}}
    assert api.request("POST", "/v1/workflows/signup/triggers", json=body).status_code == 201
    return write_key(api, "seg")


def runs(api):
    return api.get("/v1/workflows/signup/runs").get_json()["entries"]


def test_a_batch_becomes_identified_users_and_workflow_runs(client, api, key):
    batch = [identify("ada", "m-1", name="Ada", email="ada@example.com"), track("Signed Up", "ada", "m-2", plan="pro")]
    response = post_call(client, "batch", {"batch": batch}, headers=basic(key))
    assert (response.status_code, response.get_json()) == (200, {"success": True})
    user = api.get("/v1/users/ada").get_json()
    assert (user["name"], user["email"]) == ("Ada", "ada@example.com")
    [run] = runs(api)
    assert (run["recipient"]["id"], run["data"]) == ("ada", {"plan": "pro"})
    assert [entry["event"] for entry in api.logs("seg")] == ["track/Signed Up", "identify"]


@pytest.mark.parametrize(
    ("route", "call_type"),
    [
        ("track", "track"),
        ("t", "track"),
        ("identify", "identify"),
        ("i", "identify"),
        ("page", "page"),
        ("p", "page"),
        ("screen", "screen"),
        ("s", "screen"),
        ("group", "group"),
        ("g", "group"),
        ("alias", "alias"),
        ("a", "alias"),
    ],
)
def test_a_single_call_route_sets_the_type(client, api, key, route, call_type):
    call = {"type": "ignored", "userId": "ada", "event": "Signed Up", "groupId": "g1", "previousId": "anon-1"}
    response = post_call(client, route, {**call, "writeKey": key}, content_type="text/plain")
    assert (response.status_code, response.get_json()) == (200, {"success": True})
    [entry] = api.logs("seg")
    assert entry["data"]["type"] == call_type
    assert "writeKey" not in entry["data"]


@pytest.mark.parametrize("route", ["batch", "b", "import"])
def test_batch_routes(client, api, key, route):
    response = post_call(client, route, {"batch": [track("Signed Up")], "writeKey": key})
    assert response.status_code == 200
    assert len(api.logs("seg")) == 1


def test_write_key_in_basic_in_body_or_in_the_first_item(client, api, key):
    assert post_call(client, "batch", {"batch": [track("a")]}, headers=basic(key)).status_code == 200
    assert post_call(client, "batch", {"batch": [track("b")], "writeKey": key}).status_code == 200
    assert post_call(client, "b", {"batch": [{**track("c"), "writeKey": key}]}).status_code == 200
    both = post_call(client, "batch", {"batch": [track("d")], "writeKey": key}, headers=basic(key))
    assert both.status_code == 200
    assert len(api.logs("seg")) == 4


@pytest.mark.parametrize(
    ("headers", "body_key", "code"),
    [
        ({}, None, "write_key_missing"),
        ({}, "not-a-key", "invalid_write_key"),
        ("basic-unknown", None, "invalid_write_key"),
        ("basic", "another-key", "write_key_mismatch"),
        ({"Authorization": "Basic !!!"}, None, "invalid_write_key"),
    ],
)
def test_bad_write_keys_are_401_with_code_and_message(client, key, headers, body_key, code):
    if headers == "basic":
        headers = basic(key)
    elif headers == "basic-unknown":
        headers = basic("unknown")
    body = {"batch": [track("x")]}
    if body_key:
        body["writeKey"] = body_key
    response = post_call(client, "batch", body, headers=headers)
    assert response.status_code == 401
    assert set(response.get_json()) == {"code", "message"}
    assert response.get_json()["code"] == code


def test_a_source_that_takes_no_tracking_calls_is_403_and_logged(client, api):
    api.create_source("stripe", provider="stripe")
    token = api.endpoint("stripe").rsplit("/", 1)[1]
    response = post_call(client, "batch", {"batch": [track("x")]}, headers=basic(token))
    assert (response.status_code, response.get_json()["code"]) == (403, "tracking_not_supported")
    assert api.logs("stripe")[0]["reason"] == "tracking_not_supported"


def test_the_body_is_json_whatever_the_content_type(client, api, key):
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "", "application/octet-stream"):
        response = post_call(client, "t", {**track("Signed Up"), "writeKey": key}, content_type=content_type)
        assert response.status_code == 200, (content_type, response.get_json())
    assert len(api.logs("seg")) == 4


def test_gzip_bodies_are_inflated(client, api, key):
    response = post_call(client, "batch", {"batch": [track("Signed Up")]}, headers=basic(key), compress=True)
    assert response.status_code == 200
    [entry] = api.logs("seg")
    assert entry["headers"]["content-encoding"] == "gzip"


def test_a_gzip_bomb_is_413_without_inflating_it(client, api, key):
    bomb = gzip.compress(b'{"batch": [' + b" " * (50 * 1024 * 1024) + b"]}")
    response = post_call(client, "batch", bomb, headers={**basic(key), "Content-Encoding": "gzip"})
    assert (response.status_code, response.get_json()["code"]) == (413, "payload_too_large")
    assert api.logs("seg")[0]["reason"] == "payload_too_large"


@pytest.mark.parametrize(
    ("encoding", "data", "status", "code"),
    [
        ("gzip", b"not gzip at all", 400, "malformed_gzip"),
        ("gzip", gzip.compress(b'{"batch": []}')[:-6], 400, "malformed_gzip"),
        ("br", b"{}", 415, "unsupported_content_encoding"),
    ],
)
def test_bad_encodings(client, key, encoding, data, status, code):
    response = post_call(client, "batch", data, headers={**basic(key), "Content-Encoding": encoding})
    assert (response.status_code, response.get_json()["code"]) == (status, code)


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"{not json", "malformed_json"),
        (b"[]", "not_an_object"),
        (b'{"batch": {}}', "invalid_batch"),
        (b'{"batch": []}', "empty_batch"),
    ],
)
def test_a_bad_request_is_400_and_logged(client, api, key, data, code):
    response = post_call(client, "batch", data, headers=basic(key))
    assert (response.status_code, response.get_json()["code"]) == (400, code)
    assert api.logs("seg")[0]["reason"] == code


def test_a_request_over_the_limit_is_413(client, key):
    big = {"batch": [track("x", padding="y" * 1000)] * 600}
    response = post_call(client, "batch", big, headers=basic(key))
    assert (response.status_code, response.get_json()["code"]) == (413, "payload_too_large")


def test_bad_items_are_reported_in_the_200_and_logged_without_failing_the_batch(client, api, key):
    batch = [
        track("Signed Up", "ada", "ok-1"),
        {"type": "track", "anonymousId": "anon-1", "messageId": "no-event"},
        {"type": "track", "event": "x", "messageId": "nobody"},
        {"type": "merge", "userId": "ada", "messageId": "bad-type"},
        "not an object",
        track("big", "ada", "too-big", padding="z" * 40_000),
        {"type": "group", "userId": "ada", "messageId": "no-group"},
        {"type": "identify", "userId": {"id": 1}, "messageId": "bad-id"},
        track("Signed Up", "grace", "ok-2"),
    ]
    response = post_call(client, "batch", {"batch": batch}, headers=basic(key))
    assert response.status_code == 200
    answer = response.get_json()
    assert (answer["success"], answer["accepted"]) == (True, 2)
    assert [(item["index"], item["messageId"], item["code"]) for item in answer["rejected"]] == [
        (1, "no-event", "missing_event"),
        (2, "nobody", "no_user_anon_id"),
        (3, "bad-type", "invalid_type"),
        (4, None, "not_an_object"),
        (5, "too-big", "event_too_large"),
        (6, "no-group", "missing_field"),
        (7, "bad-id", "invalid_id"),
    ]
    logs = api.logs("seg", limit=20)
    assert sorted(entry["status"] for entry in logs) == ["processed"] * 2 + ["rejected"] * 7
    assert {entry["reason"] for entry in logs if entry["status"] == "rejected"} >= {"missing_event", "event_too_large"}


def test_a_bad_single_call_is_refused_with_its_own_status(client, api, key):
    response = post_call(client, "track", {"userId": "ada", "writeKey": key})
    assert (response.status_code, response.get_json()["code"]) == (400, "missing_event")
    big = {**track("x", padding="z" * 40_000), "writeKey": key}
    assert post_call(client, "track", big).status_code == 413
    assert [entry["status"] for entry in api.logs("seg")] == ["rejected", "rejected"]


def test_a_resent_message_id_is_idempotent_whatever_the_settings(client, api, key):
    api.create_source("seg", settings={"enforce_idempotency": False})
    api.request("POST", "/v1/workflows/signup/triggers", json={})
    client_batch = {"batch": [identify("ada", "i-1", name="Ada"), track("Signed Up", "ada", "t-1")]}
    for _ in range(3):
        assert post_call(client, "batch", client_batch, headers=basic(key)).get_json() == {"success": True}
    assert len(runs(api)) == 1
    statuses = [entry["status"] for entry in api.logs("seg")]
    assert sorted(statuses) == ["idempotent"] * 4 + ["processed"] * 2
    duplicate = api.logs("seg")[0]
    assert (duplicate["idempotency_key"], duplicate["event"], duplicate["actions"]) == ("t-1", "track/Signed Up", [])


def test_timestamps_are_kept_or_corrected_for_clock_skew(client, api, key):
    batch = [
        {**track("a", message_id="kept"), "timestamp": "2024-01-01T00:00:00.000Z", "receivedAt": "1999-01-01"},
        {**track("b", message_id="skewed"), "originalTimestamp": "2024-01-01T00:00:00.000Z"},
        {
            **track("c", message_id="own-sent-at"),
            "originalTimestamp": "2024-01-01T00:00:00Z",
            "sentAt": "2024-01-01T00:00:30Z",
        },
        track("d", message_id="nothing"),
    ]
    # The device's clock says the batch was sent 10 s after the first call.
    body = {"batch": batch, "sentAt": "2024-01-01T00:00:10.000Z"}
    assert post_call(client, "batch", body, headers=basic(key)).status_code == 200
    stored = {entry["data"]["messageId"]: entry for entry in api.logs("seg")}
    received = {name: entry["data"]["receivedAt"] for name, entry in stored.items()}
    assert len(set(received.values())) == 1 and "1999" not in received["kept"]
    from datetime import datetime, timedelta

    received_at = datetime.fromisoformat(received["kept"])
    assert stored["kept"]["data"]["timestamp"] == "2024-01-01T00:00:00.000Z"
    assert datetime.fromisoformat(stored["skewed"]["data"]["timestamp"]) == received_at - timedelta(seconds=10)
    assert datetime.fromisoformat(stored["own-sent-at"]["data"]["timestamp"]) == received_at - timedelta(seconds=30)
    assert stored["nothing"]["data"]["timestamp"] == received["nothing"]
    assert stored["kept"]["occurred_at"] == "2024-01-01T00:00:00Z"


def test_batch_context_and_integrations_merge_without_overriding(client, api, key):
    batch = [
        {**track("a", message_id="own"), "context": {"ip": "192.0.2.1"}, "integrations": {"All": False}},
        track("b", message_id="bare"),
    ]
    body = {"batch": batch, "context": {"ip": "198.51.100.7", "library": {"name": "x"}}, "integrations": {"All": True}}
    post_call(client, "batch", body, headers=basic(key))
    stored = {entry["data"]["messageId"]: entry["data"] for entry in api.logs("seg")}
    assert stored["own"]["context"] == {"ip": "192.0.2.1", "library": {"name": "x"}}
    assert stored["own"]["integrations"] == {"All": False}
    assert stored["bare"]["context"] == {"ip": "198.51.100.7", "library": {"name": "x"}}


def test_numeric_ids_are_taken_as_text(client, api, key):
    post_call(client, "batch", {"batch": [{**track("Signed Up"), "userId": 42}]}, headers=basic(key))
    [entry] = api.logs("seg")
    assert (entry["data"]["userId"], entry["normalized"]["user_id"]) == ("42", "42")


def test_the_write_key_is_never_stored(client, api, key):
    post_call(client, "batch", {"batch": [{**track("x"), "writeKey": key}], "writeKey": key}, headers=basic(key))
    post_call(client, "batch", {"writeKey": key, "batch": "nope"})
    assert key not in json.dumps(api.logs("seg"))


def test_a_legacy_http_source_takes_track_calls_and_refuses_identify_items(client, api):
    api.create_source("http", provider="legacy_http")
    key = write_key(api, "http")
    batch = [track("comment.created", "ada", "c-1", recipientId="ellie"), identify("ada", "i-1")]
    answer = post_call(client, "batch", {"batch": batch}, headers=basic(key)).get_json()
    assert [item["code"] for item in answer["rejected"]] == ["identify_not_supported"]
    processed = [entry for entry in api.logs("http") if entry["status"] == "processed"]
    assert [entry["event"] for entry in processed] == ["comment.created"]


def test_a_disabled_environment_write_key_is_401(client, api, key, db):
    from knock_sources.store.control import SourceEnvironment

    SourceEnvironment.update(active=False).execute()
    client.application.extensions["knock_sources"].cache.clear()
    response = post_call(client, "batch", {"batch": [track("x")]}, headers=basic(key))
    assert response.status_code == 401


def test_unknown_routes_and_methods_answer_json(client, key):
    response = client.post("/segment/v1/merge", json={"writeKey": key})
    assert (response.status_code, set(response.get_json())) == (404, {"code", "message"})
    assert client.get("/segment/v1/batch").status_code == 405


@pytest.mark.parametrize("app_config", [{"SEGMENT_CORS_ORIGINS": ["https://shop.example.com"]}])
def test_cors_preflight_for_configured_origins(client, key):
    headers = {
        "Origin": "https://shop.example.com",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    response = client.options("/segment/v1/t", headers=headers)
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "https://shop.example.com"
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    assert "authorization" in response.headers["Access-Control-Allow-Headers"].lower()
    other = client.options("/segment/v1/t", headers={**headers, "Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers
    posted = post_call(client, "t", {**track("x"), "writeKey": key}, headers={"Origin": "https://shop.example.com"})
    assert posted.headers["Access-Control-Allow-Origin"] == "https://shop.example.com"


def test_no_cors_headers_by_default(client, key):
    response = client.options("/segment/v1/t", headers={"Origin": "https://shop.example.com"})
    assert "Access-Control-Allow-Origin" not in response.headers


def test_the_source_shows_where_to_point_an_sdk(api, key):
    settings = api.get("/v1/sources/seg").get_json()["environment_settings"]["development"]["settings"]
    assert settings["tracking_host"] == "https://hooks.example.com/segment"
    assert settings["write_key"] == key
    assert settings["endpoint"].endswith(key)
    # A GET body can be PUT back unchanged.
    source = api.get("/v1/sources/seg").get_json()
    assert api.put("/v1/sources/seg", {"source": source}).status_code == 200


def test_basic_auth_password_is_ignored(client, key):
    token = base64.b64encode(f"{key}:anything".encode()).decode()
    response = post_call(client, "batch", {"batch": [track("x")]}, headers={"Authorization": f"Basic {token}"})
    assert response.status_code == 200


@pytest.mark.parametrize("app_config", [{"SEGMENT_MAX_REQUEST_BYTES": 4 * 1024 * 1024, "MAX_PAYLOAD_BYTES": 1024}])
def test_the_request_limit_is_configurable(client, api, key):
    # RudderStack's SDK sends up to 4 MB; the webhook limit (MAX_PAYLOAD_BYTES) does not apply here.
    big = {"batch": [track("Signed Up", f"user-{index}", padding="y" * 6000) for index in range(100)]}
    assert len(json.dumps(big)) > 500 * 1024
    response = post_call(client, "batch", big, headers=basic(key), compress=True)
    assert (response.status_code, response.get_json()) == (200, {"success": True})
    assert len(api.logs("seg", limit=100)) == 100

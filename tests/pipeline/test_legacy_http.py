"""The legacy HTTP source (seeds 000 and 002): one Segment track event per request, through HTTP."""

import pytest

from knock_sources.ingest.track import IDENTIFY_HINT

EVENT = {
    "type": "track",
    "event": "comment.created",
    "userId": "commenter-1",
    "messageId": "msg-1",
    "timestamp": "2024-03-12T09:30:00.000Z",
    "properties": {"recipientId": "ellie", "commenter": {"id": "commenter-1", "name": "John Hammond"}},
}


@pytest.fixture
def endpoint(api):
    """The development endpoint of a legacy HTTP source, ``http``."""
    api.create_source("http", provider="legacy_http")
    return api.endpoint("http")


def trigger(api, workflow="comment-created", event="comment.created", **mapping):
    """Create ``workflow`` and a source-event trigger on the ``http`` source's ``event``."""
    api.create_workflow(workflow)
    response = api.request(
        "POST",
        f"/v1/workflows/{workflow}/triggers",
        json={"trigger": {"source": "http", "event": event, "mapping": mapping}},
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def identify_users(client, api, *user_ids):
    """Identify users through a custom source (the legacy source takes no identify calls)."""
    api.create_source(
        "users",
        settings={"event_type_path": "type"},
        mappings=[
            {"event_type": "user", "action_type": "users_identify", "action_parameters": {"id": "id", "name": "id"}}
        ],
    )
    for user_id in user_ids:
        assert client.post(api.endpoint("users"), json={"type": "user", "id": user_id}).status_code == 204


def test_a_well_formed_event_is_204_and_stored_with_its_normalized_form(client, api, endpoint):
    response = client.post(endpoint, json=EVENT)
    assert (response.status_code, response.data) == (204, b"")
    [entry] = api.logs("http")
    assert (entry["status"], entry["event"]) == ("processed", "comment.created")
    assert entry["data"] == EVENT
    assert entry["normalized"] == {"event": "comment.created", "user_id": "commenter-1", "data": EVENT["properties"]}
    assert entry["occurred_at"] == "2024-03-12T09:30:00Z"


def test_the_minimal_example_of_the_docs_is_accepted(client, api, endpoint):
    response = client.post(endpoint, json={"type": "track", "event": "My event", "properties": {"foo": "bar"}})
    assert response.status_code == 204
    [entry] = api.logs("http")
    assert entry["normalized"] == {"event": "My event", "user_id": None, "data": {"foo": "bar"}}
    # No timestamp: the time of ingestion.
    assert entry["occurred_at"] == entry["inserted_at"]


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"type": "track", "properties": {}}, "invalid_event", "event"),
        ({"type": "track", "event": ""}, "invalid_event", "event"),
        ({"type": "track", "event": 42}, "invalid_event", "event"),
        ({"type": "page", "event": "x"}, "invalid_event", "type"),
        ({"event": "x"}, "invalid_event", "type"),
        ({"type": "track", "event": "x", "properties": ["a"]}, "invalid_event", "properties"),
        ({"type": "track", "event": "x", "userId": 7}, "invalid_event", "userId"),
        ({"type": "track", "event": "x", "messageId": {"id": 1}}, "invalid_event", "messageId"),
        ({"type": "track", "event": "x", "timestamp": "yesterday"}, "invalid_event", "timestamp"),
        ({"type": "identify", "userId": "ada", "traits": {}}, "identify_not_supported", "type"),
    ],
    ids=[
        "no-event",
        "empty-event",
        "event-number",
        "page",
        "no-type",
        "properties-list",
        "user-id-number",
        "message-id-object",
        "timestamp-not-iso",
        "identify",
    ],
)
def test_anything_but_a_track_event_is_400_with_field_errors_and_logged(client, api, endpoint, body, code, field):
    response = client.post(endpoint, json=body)
    assert response.status_code == 400
    error = response.get_json()
    assert error["code"] == code
    assert field in error["errors"]
    [entry] = api.logs("http")
    assert (entry["status"], entry["reason"]) == ("rejected", code)
    assert field in entry["error"]


def test_an_identify_call_is_pointed_to_the_identify_api(client, endpoint):
    response = client.post(endpoint, json={"type": "identify", "userId": "ada"})
    assert response.get_json()["message"] == IDENTIFY_HINT
    assert "/segment/v1/identify" in IDENTIFY_HINT


def test_a_json_array_is_refused_there_is_no_batch_endpoint(client, api, endpoint):
    response = client.post(endpoint, json=[EVENT, EVENT])
    assert response.status_code == 400
    assert response.get_json()["code"] == "batch_not_supported"
    assert "one event per request" in response.get_json()["message"]
    [entry] = api.logs("http")
    assert entry["reason"] == "batch_not_supported"


def test_message_id_deduplicates_only_once_idempotency_is_enforced(client, api, endpoint):
    for _ in range(2):
        assert client.post(endpoint, json=EVENT).status_code == 204
    assert [entry["status"] for entry in api.logs("http")] == ["processed", "processed"]
    api.create_source("http", settings={"enforce_idempotency": True})
    for _ in range(2):
        assert client.post(endpoint, json={**EVENT, "messageId": "msg-2"}).status_code == 204
    statuses = [(entry["status"], entry["idempotency_key"]) for entry in api.logs("http")]
    assert statuses[:2] == [("idempotent", "msg-2"), ("processed", "msg-2")]


def test_seed_example_properties_recipient_id_is_mapped_as_data_recipient_id(client, api, endpoint):
    identify_users(client, api, "ellie")
    trigger(api, recipients="data.recipientId", actor="data.commenter.id", data="data")
    identify_users(client, api, "commenter-1")
    assert client.post(endpoint, json=EVENT).status_code == 204
    [run] = api.get("/v1/workflows/comment-created/runs").get_json()["entries"]
    assert run["recipient"] == {"collection": "$users", "id": "ellie"}
    assert run["actor"] == {"collection": "$users", "id": "commenter-1"}
    # Trigger data is the event's properties, addressed without the properties. prefix.
    assert run["data"] == EVENT["properties"]


def test_raw_payload_paths_work_too(client, api, endpoint):
    identify_users(client, api, "ellie", "commenter-1")
    trigger(api, recipients="properties.recipientId", actor="userId", data={"who": "properties.commenter.name"})
    client.post(endpoint, json=EVENT)
    [run] = api.get("/v1/workflows/comment-created/runs").get_json()["entries"]
    assert (run["recipient"]["id"], run["actor"]["id"], run["data"]) == (
        "ellie",
        "commenter-1",
        {"who": "John Hammond"},
    )


def test_inline_identification_through_a_trigger(client, api, endpoint):
    trigger(api, recipients="data.recipients")
    recipients = [{"id": "alan", "name": "Alan Grant", "email": "alan@example.com"}, {"id": "ian", "name": "Ian"}]
    assert client.post(endpoint, json={**EVENT, "properties": {"recipients": recipients}}).status_code == 204
    runs = api.get("/v1/workflows/comment-created/runs").get_json()["entries"]
    assert sorted(run["recipient"]["id"] for run in runs) == ["alan", "ian"]
    assert api.get("/v1/users/alan").get_json()["email"] == "alan@example.com"


def test_an_unidentified_recipient_gets_no_run(client, api, endpoint):
    trigger(api, recipients="data.recipientId")
    client.post(endpoint, json=EVENT)
    [entry] = api.logs("http")
    [action] = entry["actions"]
    assert action["action_result"]["skipped_recipients"] == [
        {"collection": "$users", "id": "ellie", "reason": "not identified"}
    ]
    assert api.get("/v1/workflows/comment-created/runs").get_json()["entries"] == []


def test_a_trigger_switched_inactive_in_one_environment_only(client, api):
    api.create_source("http", provider="legacy_http")
    for environment in ("development", "production"):
        api.create_workflow("comment-created", environment=environment)
    created = trigger(api, recipients={"value": {"id": "ellie", "name": "Ellie"}})
    assert created["environments"] == {"development": {"active": True}, "production": {"active": True}}
    response = api.request(
        "PATCH",
        "/v1/workflows/comment-created/triggers/http/comment.created",
        json={"trigger": {"active": False}},
        environment="production",
    )
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["environments"] == {"development": {"active": True}, "production": {"active": False}}
    for environment in ("development", "production"):
        assert client.post(api.endpoint("http", environment), json=EVENT).status_code == 204
    runs = {
        environment: api.get("/v1/workflows/comment-created/runs", environment=environment).get_json()["entries"]
        for environment in ("development", "production")
    }
    assert [len(runs["development"]), len(runs["production"])] == [1, 0]
    [production_log] = api.logs("http", environment="production")
    assert (production_log["status"], production_log["actions"]) == ("processed", [])


def test_rehearsal_resolves_the_normalized_paths(api, endpoint):
    trigger(api, recipients="data.recipientId", data="data")
    response = api.request("POST", "/v1/sources/http/rehearse", json={"payload": {"body": EVENT}})
    assert response.status_code == 200, response.get_json()
    [action] = response.get_json()["actions"]
    assert action["action_payload"]["recipients"] == [{"collection": "$users", "id": "ellie"}]
    assert action["action_payload"]["data"] == EVENT["properties"]


def test_rehearsal_reports_a_body_the_source_would_refuse(api, endpoint):
    response = api.request("POST", "/v1/sources/http/rehearse", json={"payload": {"body": {"type": "track"}}})
    errors = response.get_json()["errors"]
    assert any(error["field"] == "body" and "event" in error["message"] for error in errors)

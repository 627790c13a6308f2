"""``/v1/workflows/{key}/triggers``: source-event triggers as workflows_trigger mappings, through the API."""

import pytest

BASE = "/v1/workflows/welcome/triggers"


@pytest.fixture
def setup(api):
    """A legacy HTTP source ``http`` and a workflow ``welcome`` in development."""
    api.create_source("http", provider="legacy_http")
    api.create_workflow("welcome")


def create(api, event="signed.up", source="http", **mapping):
    mapping = mapping or {"recipients": "user_id"}
    return api.request("POST", BASE, json={"trigger": {"source": source, "event": event, "mapping": mapping}})


def test_create_list_get_update_delete(api, setup):
    response = create(api, recipients="data.to", actor="user_id", cancellation_key="messageId")
    assert response.status_code == 201, response.get_json()
    trigger = response.get_json()
    assert (trigger["workflow"], trigger["source"], trigger["event"], trigger["active"]) == (
        "welcome",
        "http",
        "signed.up",
        True,
    )
    assert trigger["mapping"] == {
        "recipients": "data.to",
        "actor": "user_id",
        "tenant": None,
        "cancellation_key": "messageId",
        "data": "data",
    }
    assert [entry["event"] for entry in api.get(BASE).get_json()["entries"]] == ["signed.up"]
    assert api.get(f"{BASE}/http/signed.up").get_json() == trigger

    response = api.request("PATCH", f"{BASE}/http/signed.up", json={"trigger": {"mapping": {"recipients": "userId"}}})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["mapping"]["recipients"] == "userId"
    # The field mapping is shared by the environments, even one the workflow is not promoted to yet.
    production = api.get(f"{BASE}/http/signed.up", environment="production").get_json()
    assert (production["mapping"]["recipients"], production["active"]) == ("userId", True)

    assert api.delete(f"{BASE}/http/signed.up").status_code == 204
    assert api.get(BASE).get_json()["entries"] == []
    # Gone from production too, where the workflow does not exist either.
    assert api.get(BASE, environment="production").get_json()["code"] == "workflow_missing"
    assert api.get(f"{BASE}/http/signed.up").status_code == 404


def test_a_trigger_is_a_workflows_trigger_mapping_of_the_source(api, setup):
    create(api)
    [mapping] = api.get("/v1/sources/http").get_json()["environment_settings"]["development"]["mappings"]
    assert (mapping["event_type"], mapping["action_type"], mapping["active"]) == (
        "signed.up",
        "workflows_trigger",
        True,
    )
    assert mapping["action_parameters"] == {"key": "welcome", "recipients": "user_id", "data": "data"}
    [seen] = api.get("/v1/sources/http/triggers").get_json()["entries"]
    assert (seen["workflow"], seen["event"]) == ("welcome", "signed.up")


def test_switching_off_affects_only_that_environment(api, setup):
    create(api)
    response = api.request("PATCH", f"{BASE}/http/signed.up", json={"trigger": {"active": False}})
    assert response.get_json()["environments"] == {"development": {"active": False}, "production": {"active": True}}
    production = api.get("/v1/sources/http", environment="production").get_json()
    assert [m["active"] for m in production["environment_settings"]["production"]["mappings"]] == [True]


def test_provider_default_triggers_are_the_workflows_triggers(api):
    api.create_source("seg", provider="segment")
    api.create_workflow("user-signup")
    [trigger] = api.get("/v1/workflows/user-signup/triggers").get_json()["entries"]
    assert (trigger["source"], trigger["event"]) == ("seg", "track/user-signed-up")
    # Event types with slashes are addressed as they are.
    response = api.request(
        "PATCH", "/v1/workflows/user-signup/triggers/seg/track/user-signed-up", json={"trigger": {"active": False}}
    )
    assert response.status_code == 200
    assert response.get_json()["active"] is False


def test_a_duplicate_trigger_is_409(api, setup):
    assert create(api).status_code == 201
    response = create(api)
    assert (response.status_code, response.get_json()["code"]) == (409, "trigger_exists")


@pytest.mark.parametrize(
    ("trigger", "field"),
    [
        ({"source": "http", "event": "x", "mapping": {}}, "recipients"),
        ({"source": "http", "event": "x", "mapping": {"recipients": "a..b"}}, "recipients"),
        ({"source": "http", "event": "", "mapping": {"recipients": "a"}}, "event"),
        ({"source": "http", "event": "x", "mapping": {"recipients": "a", "priority": "b"}}, "priority"),
        ({"event": "x", "mapping": {"recipients": "a"}}, "source"),
    ],
)
def test_invalid_triggers_are_422_with_the_field(api, setup, trigger, field):
    response = api.request("POST", BASE, json={"trigger": trigger})
    assert response.status_code == 422, response.get_json()
    assert field in str(response.get_json()["errors"])


def test_missing_workflow_source_or_trigger_is_404(api, setup):
    body = {"trigger": {"source": "http", "event": "x", "mapping": {"recipients": "a"}}}
    response = api.request("POST", "/v1/workflows/nope/triggers", json=body)
    assert (response.status_code, response.get_json()["code"]) == (404, "workflow_missing")
    assert create(api, source="nope").get_json()["code"] == "source_missing"
    assert api.get(f"{BASE}/http/never").get_json()["code"] == "trigger_missing"
    assert api.get("/v1/workflows/nope/triggers").get_json()["code"] == "workflow_missing"


def test_a_trigger_can_be_switched_off_where_its_workflow_is_not_promoted_yet(api, setup):
    create(api)
    response = api.request(
        "PATCH", f"{BASE}/http/signed.up", json={"trigger": {"active": False}}, environment="production"
    )
    assert response.status_code == 200, response.get_json()
    assert [entry["active"] for entry in api.get(BASE, environment="production").get_json()["entries"]] == [False]

"""Disabling a source environment and rotating its URL token.

``PATCH /v1/sources/{key}`` with ``environment_settings.<env>.active``
switches an environment off (its URL answers 404) and on again;
``POST /v1/sources/{key}/rotate_token`` gives it a new URL while the old one
keeps working for a grace period (``TOKEN_GRACE_SECONDS``, 24 h by default).
"""

from datetime import datetime, timedelta

import pytest

from knock_sources.store import utcnow
from knock_sources.store.control import EventLog, SourceEnvironment

HOST = "https://hooks.example.com"


@pytest.fixture
def app_config():
    # Every request looks the token up afresh, so expiry is seen at once.
    return {"SOURCE_CACHE_SECONDS": 0}


def switch(api, active, environment="development"):
    body = {"source": {"environment_settings": {environment: {"active": active}}}}
    response = api.request("PATCH", "/v1/sources/my-source", json=body, environment=environment)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["environment_settings"][environment]


def rotate(api, body=None, environment="development"):
    response = api.request("POST", "/v1/sources/my-source/rotate_token", json=body, environment=environment)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["environment_settings"][environment]


def expiry_after(api, grace, body=None):
    """Rotate and return whether the previous token expires ``grace`` after the rotation."""
    before = utcnow()
    env = rotate(api, body)
    after = utcnow()
    expires_at = datetime.fromisoformat(env["previous_endpoint"]["expires_at"].removesuffix("Z"))
    return before + grace <= expires_at <= after + grace


def test_a_disabled_environment_answers_404_until_enabled(client, api, db):
    api.create_source()
    endpoint = api.endpoint()
    production = api.endpoint(environment="production")
    env = switch(api, False)
    assert env["active"] is False
    assert env["verification"]["accepts_requests"] is False
    assert env["verification"]["problem"]["code"] == "environment_disabled"
    assert client.post(endpoint, json={"type": "a"}).status_code == 404
    assert client.post(production, json={"type": "a"}).status_code == 204
    assert switch(api, True)["active"] is True
    assert client.post(endpoint, json={"type": "a"}).status_code == 204
    # The 404 while disabled was not logged, like any unknown token.
    assert EventLog.select().count() == 2


def test_patch_changes_only_what_it_names(api):
    api.create_source(settings={"event_type_path": "body.kind"})
    body = {
        "source": {
            "description": "Tasks",
            "environment_settings": {"development": {"settings": {"timestamp_path": "body.at"}}},
        }
    }
    response = api.request("PATCH", "/v1/sources/my-source", json=body)
    assert response.status_code == 200, response.get_json()
    source = response.get_json()
    env = source["environment_settings"]["development"]
    assert (source["name"], source["description"]) == ("My-Source", "Tasks")
    assert (env["settings"]["event_type_path"], env["settings"]["timestamp_path"]) == ("body.kind", "body.at")
    assert [m["event_type"] for m in env["mappings"]] == ["user.identified"]


def test_patch_of_a_missing_source_is_404(api):
    response = api.request("PATCH", "/v1/sources/nope", json={"source": {"name": "N"}})
    assert response.status_code == 404


def test_rotated_token_keeps_working_through_the_grace_period(client, api, db):
    api.create_source()
    old = api.endpoint()
    assert expiry_after(api, timedelta(hours=24))
    env = api.get("/v1/sources/my-source").get_json()["environment_settings"]["development"]
    new = env["settings"]["endpoint"].removeprefix(HOST)
    assert new != old
    assert env["previous_endpoint"]["url"] == HOST + old
    assert client.post(old, json={"type": "during-grace"}).status_code == 204
    assert client.post(new, json={"type": "new"}).status_code == 204
    # The grace period ends: the old URL is unknown from then on.
    SourceEnvironment.update(previous_token_expires_at=utcnow() - timedelta(seconds=1)).execute()
    assert client.post(old, json={"type": "after-grace"}).status_code == 404
    assert client.post(new, json={"type": "new"}).status_code == 204
    assert (
        api.get("/v1/sources/my-source").get_json()["environment_settings"]["development"]["previous_endpoint"] is None
    )
    assert [e["event"] for e in api.logs()] == ["new", "new", "during-grace"]


def test_a_leaked_token_can_be_retired_at_once(client, api):
    api.create_source()
    old = api.endpoint()
    env = rotate(api, {"grace_period_seconds": 0})
    assert env["previous_endpoint"] is None
    assert client.post(old, json={"type": "a"}).status_code == 404


def test_a_second_rotation_retires_the_first_token(client, api):
    api.create_source()
    first = api.endpoint()
    rotate(api)
    second = api.endpoint()
    rotate(api)
    assert client.post(first, json={"type": "a"}).status_code == 404
    assert client.post(second, json={"type": "a"}).status_code == 204


def test_rotation_is_per_environment(client, api):
    api.create_source()
    production = api.endpoint(environment="production")
    rotate(api, {"grace_period_seconds": 0})
    assert api.endpoint(environment="production") == production
    assert client.post(production, json={"type": "a"}).status_code == 204


@pytest.mark.parametrize("body", [{"grace_period_seconds": -1}, {"grace_period_seconds": "60"}, {"grace": 5}])
def test_invalid_rotation_body_is_422(api, body):
    api.create_source()
    old = api.endpoint()
    response = api.request("POST", "/v1/sources/my-source/rotate_token", json=body)
    assert response.status_code == 422
    assert api.endpoint() == old


@pytest.mark.parametrize("app_config", [{"SOURCE_CACHE_SECONDS": 0, "TOKEN_GRACE_SECONDS": 60}])
def test_grace_period_is_configurable(api):
    api.create_source()
    assert expiry_after(api, timedelta(seconds=60))
    assert expiry_after(api, timedelta(hours=2), {"grace_period_seconds": 7200})

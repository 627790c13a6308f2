"""Data-plane reads: scoping, 404s, filters and pagination."""

import pytest

from tests.support import count_statements
from tests.support.actions import EventSource, mapping

MAPPINGS = (
    mapping("users_identify", "user.updated", id="body.id", name="body.name"),
    mapping("objects_set", "object.updated", collection={"value": "projects"}, id="body.id", name="body.name"),
    mapping("objects_set", "team.updated", collection="teams", id="body.id", name="body.name"),
    mapping("objects_subscribe", "followed", collection="projects", id="body.id", recipients="body.users"),
    mapping("tenants_set", "tenant.updated", id="body.id", name="body.name"),
    mapping("audiences_add_member", "joined", key="beta", users="body.users"),
    mapping("workflows_trigger", "start", key="wf", recipients="body.users", cancellation_key="body.key"),
    mapping("workflows_cancel", "stop", key="wf", cancellation_key="body.key"),
)


@pytest.fixture
def environments(client, api):
    """The same custom source in development and production, with the workflow ``wf`` in both."""
    sources = {}
    for environment in ("development", "production"):
        api.create_workflow("wf", environment=environment)
        sources[environment] = EventSource(client, api, environment=environment).configure(*MAPPINGS)
    return sources


@pytest.fixture
def source(environments):
    """The development source."""
    return environments["development"]


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/v1/users/ghost", "user_missing"),
        ("/v1/objects/projects/ghost", "object_missing"),
        ("/v1/objects/projects/ghost/subscriptions", "object_missing"),
        ("/v1/tenants/ghost", "tenant_missing"),
        ("/v1/audiences/ghost/members", "audience_missing"),
        ("/v1/workflows/ghost/runs", "workflow_missing"),
    ],
)
def test_what_does_not_exist_is_a_json_404(source, path, code):
    body = source.get(path, expect=404)
    assert body["code"] == code
    assert "ghost" in body["message"]


@pytest.mark.parametrize(
    "path",
    [
        "/v1/users/ann",
        "/v1/objects/projects/p1",
        "/v1/tenants/acme",
        "/v1/audiences/beta/members",
        "/v1/workflows/wf/runs",
    ],
)
def test_reads_need_an_api_key_and_a_known_environment(source, client, api, path):
    assert client.get(path).status_code == 401
    response = api.get(path, environment="staging")
    assert response.status_code == 404
    assert response.get_json()["code"] == "environment_missing"


@pytest.mark.parametrize(
    ("event", "body", "path", "field"),
    [
        ("user.updated", {"id": "x1", "name": "{env}"}, "/v1/users/x1", "name"),
        ("object.updated", {"id": "x1", "name": "{env}"}, "/v1/objects/projects/x1", "name"),
        ("tenant.updated", {"id": "x1", "name": "{env}"}, "/v1/tenants/x1", "name"),
    ],
)
def test_the_same_id_in_production_is_a_different_record(environments, event, body, path, field):
    for environment, source in environments.items():
        source.send({key: value.format(env=environment) for key, value in body.items()}, event)
    assert environments["development"].get(path)[field] == "development"
    assert environments["production"].get(path)[field] == "production"


def test_members_and_runs_are_scoped_to_the_environment(environments):
    development, production = environments["development"], environments["production"]
    development.send({"users": [{"id": "ann", "name": "Ann"}], "key": "k1"}, "joined")
    development.send({"users": ["ann"], "key": "k1"}, "start")
    production.send({"users": [{"id": "bob", "name": "Bob"}], "key": "k1"}, "joined")
    production.send({"users": ["bob"], "key": "k1"}, "start")
    assert [m["user_id"] for m in development.get("/v1/audiences/beta/members")["entries"]] == ["ann"]
    assert [m["user_id"] for m in production.get("/v1/audiences/beta/members")["entries"]] == ["bob"]
    assert [r["recipient"]["id"] for r in development.get("/v1/workflows/wf/runs")["entries"]] == ["ann"]
    development.send({"key": "k1"}, "stop")
    assert production.get("/v1/workflows/wf/runs")["entries"][0]["status"] == "triggered"


def test_objects_with_the_same_id_in_different_collections_are_different(source):
    source.send({"id": "x1", "name": "Project"}, "object.updated")
    source.send({"id": "x1", "name": "Team"}, "team.updated")
    assert source.get("/v1/objects/projects/x1")["name"] == "Project"
    assert source.get("/v1/objects/teams/x1")["name"] == "Team"


@pytest.fixture
def runs_source(source):
    """Runs for ann and bob under k1 (triggered) and for ann under k2 (cancelled)."""
    source.send({"users": [{"id": "ann", "name": "Ann"}, {"id": "bob", "name": "Bob"}], "key": "k1"}, "start")
    source.send({"users": ["ann"], "key": "k2"}, "start")
    source.send({"key": "k2"}, "stop")
    return source


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({}, [("ann", "k1", "triggered"), ("bob", "k1", "triggered"), ("ann", "k2", "cancelled")]),
        ({"recipient": "ann"}, [("ann", "k1", "triggered"), ("ann", "k2", "cancelled")]),
        ({"status": "cancelled"}, [("ann", "k2", "cancelled")]),
        ({"cancellation_key": "k1"}, [("ann", "k1", "triggered"), ("bob", "k1", "triggered")]),
        ({"recipient": "ann", "status": "triggered"}, [("ann", "k1", "triggered")]),
        ({"recipient": "ann", "recipient_collection": "projects"}, []),
        ({"status": "completed"}, []),
    ],
)
def test_runs_filter_by_recipient_status_and_cancellation_key(runs_source, filters, expected):
    entries = runs_source.get("/v1/workflows/wf/runs", **filters)["entries"]
    found = [(run["recipient"]["id"], run["cancellation_key"], run["status"]) for run in reversed(entries)]
    assert found == expected


def test_runs_refuse_an_unknown_status(runs_source):
    body = runs_source.get("/v1/workflows/wf/runs", expect=422, status="done")
    assert body["code"] == "invalid_params"
    assert body["message"] == "The query parameters are invalid."
    assert [(error["field"], error["in"]) for error in body["errors"]] == [("status", "query")]


def test_subscriptions_are_paginated_newest_first(source):
    for user_id in ("ann", "bob", "cat"):
        source.send({"id": user_id, "name": user_id}, "user.updated")
        source.send({"id": "p1", "users": user_id}, "followed")
    first = source.get("/v1/objects/projects/p1/subscriptions", limit=2)
    assert [entry["recipient"]["id"] for entry in first["entries"]] == ["cat", "bob"]
    assert first["entries"][0]["object"]["id"] == "p1"
    second = source.get("/v1/objects/projects/p1/subscriptions", limit=2, after=first["page_info"]["after"])
    assert [entry["recipient"]["id"] for entry in second["entries"]] == ["ann"]
    assert second["page_info"]["after"] is None


def test_members_are_paginated_with_their_users(source):
    source.send({"users": [{"id": f"u{index}", "name": f"User {index}"} for index in range(3)]}, "joined")
    first = source.get("/v1/audiences/beta/members", limit=2)
    second = source.get("/v1/audiences/beta/members", limit=2, after=first["page_info"]["after"])
    entries = first["entries"] + second["entries"]
    assert [entry["user_id"] for entry in entries] == ["u2", "u1", "u0"]
    assert [entry["user"]["name"] for entry in entries] == ["User 2", "User 1", "User 0"]
    assert all(entry["__typename"] == "AudienceMember" and entry["added_at"] for entry in entries)


def test_listing_members_costs_the_same_statements_for_3_members_as_for_30(source, monkeypatch):
    source.send({"users": [{"id": f"u{index}", "name": f"User {index}"} for index in range(3)]}, "joined")
    counted = count_statements(monkeypatch)
    assert len(source.get("/v1/audiences/beta/members", limit=100)["entries"]) == 3
    few = len(counted)
    source.send({"users": [{"id": f"v{index}", "name": f"V {index}"} for index in range(27)]}, "joined")
    counted.clear()
    entries = source.get("/v1/audiences/beta/members", limit=100)["entries"]
    assert len(entries) == 30
    assert all(entry["user"]["id"] == entry["user_id"] for entry in entries)
    assert len(counted) == few

"""Object actions and subscriptions through a source endpoint (issue 3)."""

import pytest

from tests.support.actions import EventSource, identify_mapping, mapping, path_parameters

OBJECT = {"collection": "projects", "id": "body.project.id"}


@pytest.fixture
def source(client, api):
    """A custom source that sets, deletes and subscribes to ``projects``."""
    return EventSource(client, api).configure(
        identify_mapping(),
        mapping("objects_set", "project.updated", **OBJECT, name="body.project.name", properties="body.project.meta"),
        mapping("objects_delete", "project.deleted", **OBJECT),
        mapping("objects_subscribe", "project.followed", **OBJECT, recipients="body.users", properties="body.prefs"),
        mapping("objects_unsubscribe", "project.unfollowed", **OBJECT, recipients="body.users"),
    )


def subscribers(source, object_id="p1", **query):
    """Return ``{recipient id: subscription properties}`` of a project."""
    entries = source.get(f"/v1/objects/projects/{object_id}/subscriptions", **query)["entries"]
    return {entry["recipient"]["id"]: entry["properties"] for entry in entries}


def test_set_creates_then_merges_the_object(source):
    first = source.run(
        {"project": {"id": "p1", "name": "Apollo", "meta": {"stage": "alpha", "owner": "ann"}}}, "project.updated"
    )
    assert first["action_status"] == "success"
    assert first["action_result"] == {"collection": "projects", "id": "p1", "created": True}
    second = source.run({"project": {"id": "p1", "meta": {"stage": "beta"}}}, "project.updated")
    assert second["action_result"]["created"] is False
    stored = source.get("/v1/objects/projects/p1")
    assert stored["__typename"] == "Object"
    assert (stored["collection"], stored["id"], stored["name"]) == ("projects", "p1", "Apollo")
    assert stored["properties"] == {"stage": "beta", "owner": "ann"}


def test_collection_may_be_given_as_an_explicit_literal(client, api):
    source = EventSource(client, api).configure(
        mapping("objects_set", collection={"value": "teams"}, id="body.id"),
    )
    assert source.run({"id": "t1"})["action_status"] == "success"
    assert source.get("/v1/objects/teams/t1")["id"] == "t1"


def test_delete_removes_the_object_and_its_subscriptions(source):
    source.identify("ann", "bob")
    source.send({"project": {"id": "p1", "name": "Apollo"}}, "project.updated")
    source.send({"project": {"id": "p1"}, "users": ["ann", "bob"]}, "project.followed")
    action = source.run({"project": {"id": "p1"}}, "project.deleted")
    assert action["action_status"] == "success"
    assert action["action_result"] == {
        "collection": "projects",
        "id": "p1",
        "deleted": True,
        "subscriptions_removed": 2,
    }
    assert source.get("/v1/objects/projects/p1", expect=404)["code"] == "object_missing"
    # Set again: it comes back without its old subscribers.
    source.send({"project": {"id": "p1"}}, "project.updated")
    assert subscribers(source) == {}


def test_deleting_an_object_that_does_not_exist_succeeds_with_a_note(source):
    entry = source.send({"project": {"id": "ghost"}}, "project.deleted")
    [action] = entry["actions"]
    assert entry["status"] == "processed"
    assert action["action_result"]["deleted"] is False
    assert action["action_result"]["note"] == "object did not exist"


def test_subscribe_creates_subscriptions_with_properties(source):
    source.identify("ann")
    action = source.run(
        {"project": {"id": "p1"}, "users": ["ann", {"id": "bob", "name": "Bob"}], "prefs": {"digest": "daily"}},
        "project.followed",
    )
    assert action["action_status"] == "success"
    assert action["action_result"]["subscribed"] == [
        {"collection": "$users", "id": "ann"},
        {"collection": "$users", "id": "bob"},
    ]
    assert subscribers(source) == {"ann": {"digest": "daily"}, "bob": {"digest": "daily"}}
    assert source.get("/v1/users/bob")["name"] == "Bob"
    assert source.get("/v1/objects/projects/p1")["id"] == "p1"


def test_subscribing_again_updates_the_existing_subscription(source):
    source.identify("ann")
    source.send({"project": {"id": "p1"}, "users": "ann", "prefs": {"digest": "daily"}}, "project.followed")
    action = source.run({"project": {"id": "p1"}, "users": "ann", "prefs": {"digest": "weekly"}}, "project.followed")
    assert action["action_result"]["updated"] == [{"collection": "$users", "id": "ann"}]
    assert action["action_result"]["subscribed"] == []
    assert subscribers(source) == {"ann": {"digest": "weekly"}}


def test_objects_can_subscribe_and_unidentified_users_are_named(source):
    source.send({"project": {"id": "team-1"}}, "project.updated")
    action = source.run(
        {"project": {"id": "p1"}, "users": [{"id": "team-1", "collection": "projects"}, "ghost"]},
        "project.followed",
    )
    assert action["action_status"] == "success"
    assert action["action_result"]["skipped_recipients"] == [
        {"collection": "$users", "id": "ghost", "reason": "not identified"}
    ]
    [entry] = source.get("/v1/objects/projects/p1/subscriptions")["entries"]
    assert entry["recipient"] == {"collection": "projects", "id": "team-1"}


def test_subscribe_accepts_100_recipients_and_refuses_101(source):
    users = [{"id": f"user-{index}", "name": "U"} for index in range(101)]
    refused = source.run({"project": {"id": "p1"}, "users": users}, "project.followed")
    assert refused["action_status"] == "error"
    assert refused["error"] == "recipients: at most 100 recipients are allowed, got 101 (path 'body.users', got array)"
    source.get("/v1/objects/projects/p1", expect=404)
    accepted = source.run({"project": {"id": "p1"}, "users": users[:100]}, "project.followed")
    assert accepted["action_status"] == "success"
    assert len(subscribers(source, limit=100)) == 100


def test_unsubscribe_removes_only_the_given_recipients(source):
    source.identify("ann", "bob")
    source.send({"project": {"id": "p1"}, "users": ["ann", "bob"]}, "project.followed")
    action = source.run({"project": {"id": "p1"}, "users": ["ann", "cat"]}, "project.unfollowed")
    assert action["action_status"] == "success"
    assert action["action_result"] == {
        "unsubscribed": [{"collection": "$users", "id": "ann"}],
        "note": "some recipients were not subscribed",
    }
    assert subscribers(source) == {"bob": {}}


def test_unsubscribe_from_an_object_that_does_not_exist_succeeds_with_a_note(source):
    action = source.run({"project": {"id": "ghost"}, "users": ["ann"]}, "project.unfollowed")
    assert action["action_status"] == "success"
    assert action["action_result"]["note"] == "object did not exist"


def test_objects_are_scoped_to_the_environment(source, client, api):
    source.send({"project": {"id": "p1", "name": "Development"}}, "project.updated")
    production = EventSource(client, api, environment="production")
    assert production.get("/v1/objects/projects/p1", expect=404)["code"] == "object_missing"


VALID = {
    "objects_set": {"id": "p1", "name": "Apollo", "properties": {"a": 1}},
    "objects_delete": {"id": "p1"},
    "objects_subscribe": {"id": "p1", "recipients": {"id": "ann", "name": "Ann"}, "properties": {"a": 1}},
    "objects_unsubscribe": {"id": "p1", "recipients": "ann"},
}


@pytest.mark.parametrize(
    ("action_type", "name"),
    [(action_type, name) for action_type in VALID for name in ("id", "recipients") if name in VALID[action_type]],
)
def test_missing_required_parameter_skips_the_action(client, api, action_type, name):
    # An unconfigured collection is refused when the mapping is saved (tests/api/test_mappings.py).
    configured = path_parameters(VALID[action_type], {"collection": "projects"})
    values = {key: value for key, value in VALID[action_type].items() if key != name}
    source = EventSource(client, api).configure(mapping(action_type, **configured))
    entry = source.send(values)
    [action] = entry["actions"]
    assert entry["status"] == "failed"
    assert action["action_status"] == "skipped"
    assert action["error"] == f"{name}: required value is missing (path 'body.{name}')"
    source.get("/v1/objects/projects/p1", expect=404)


@pytest.mark.parametrize(
    ("action_type", "name", "value", "error"),
    [
        ("objects_set", "id", {"id": "p1"}, "id: expected a string id (path 'body.id', got object)"),
        ("objects_set", "name", ["Apollo"], "name: expected a string (path 'body.name', got array)"),
        ("objects_set", "properties", "meta", "properties: expected an object (path 'body.properties', got string)"),
        ("objects_delete", "id", True, "id: expected a string id (path 'body.id', got boolean)"),
        ("objects_subscribe", "id", [], "id: expected a string id (path 'body.id', got array)"),
        (
            "objects_subscribe",
            "recipients",
            {"name": "Ann"},
            "recipients[0]: expected a recipient object with an id (path 'body.recipients', got object)",
        ),
        (
            "objects_subscribe",
            "recipients",
            [False],
            "recipients[0]: expected a string recipient id (path 'body.recipients', got boolean)",
        ),
        ("objects_subscribe", "properties", 7, "properties: expected an object (path 'body.properties', got number)"),
        (
            "objects_unsubscribe",
            "recipients",
            ["ann", {}],
            "recipients[1]: expected a recipient object with an id (path 'body.recipients', got object)",
        ),
        ("objects_unsubscribe", "id", None, "id: required value is missing (path 'body.id')"),
    ],
)
def test_type_mismatch_is_an_error_naming_path_and_types(client, api, action_type, name, value, error):
    values = {**VALID[action_type], name: value}
    source = EventSource(client, api).configure(
        mapping(action_type, **path_parameters(values, {"collection": "projects"}))
    )
    [action] = source.send(values)["actions"]
    assert action["action_status"] == ("skipped" if value is None else "error")
    assert action["error"] == error
    source.get("/v1/objects/projects/p1", expect=404)

"""``audiences_add_member`` and ``audiences_remove_member`` through a source endpoint (issue 3)."""

import pytest

from tests.support.actions import EventSource, mapping, path_parameters


@pytest.fixture
def source(client, api):
    """A custom source that adds to and removes from the audience ``beta``."""
    return EventSource(client, api).configure(
        mapping("audiences_add_member", "joined", key="beta", users="body.users", tenant="body.tenant"),
        mapping("audiences_remove_member", "left", key="beta", users="body.users", tenant="body.tenant"),
    )


def members(source, key="beta", **query):
    """Return ``{(user id, tenant): member}`` of an audience."""
    entries = source.get(f"/v1/audiences/{key}/members", limit=100, **query)["entries"]
    return {(entry["user_id"], entry["tenant"]): entry for entry in entries}


def test_add_creates_the_audience_and_identifies_inline_users(source):
    assert source.get("/v1/audiences/beta/members", expect=404)["code"] == "audience_missing"
    action = source.run({"users": ["ann", {"id": "bob", "name": "Bob", "email": "bob@example.com"}]}, "joined")
    assert action["action_status"] == "success"
    assert action["action_result"] == {
        "key": "beta",
        "audience_created": True,
        "added": ["ann", "bob"],
        "already_members": [],
    }
    listed = members(source)
    assert set(listed) == {("ann", None), ("bob", None)}
    assert listed[("bob", None)]["user"]["email"] == "bob@example.com"
    assert listed[("ann", None)]["user"]["id"] == "ann"
    assert source.get("/v1/users/bob")["name"] == "Bob"


def test_adding_an_existing_member_again_keeps_one_membership(source):
    source.send({"users": "ann"}, "joined")
    action = source.run({"users": ["ann", "bob"]}, "joined")
    assert action["action_result"]["audience_created"] is False
    assert action["action_result"]["added"] == ["bob"]
    assert action["action_result"]["already_members"] == ["ann"]
    assert set(members(source)) == {("ann", None), ("bob", None)}


def test_membership_is_per_tenant(source):
    source.send({"users": "ann", "tenant": "acme"}, "joined")
    source.send({"users": "ann", "tenant": "globex"}, "joined")
    assert set(members(source)) == {("ann", "acme"), ("ann", "globex")}
    assert set(members(source, tenant="acme")) == {("ann", "acme")}
    action = source.run({"users": "ann", "tenant": "acme"}, "left")
    assert action["action_result"] == {"key": "beta", "removed": 1}
    assert set(members(source)) == {("ann", "globex")}


def test_remove_takes_members_out_and_leaves_the_users(source):
    source.send({"users": ["ann", "bob", "cat"]}, "joined")
    action = source.run({"users": ["ann", "cat", "nobody"]}, "left")
    assert action["action_status"] == "success"
    assert action["action_result"] == {"key": "beta", "removed": 2}
    assert set(members(source)) == {("bob", None)}
    assert source.get("/v1/users/ann")["id"] == "ann"


def test_removing_from_an_audience_that_does_not_exist_succeeds_with_a_note(source):
    entry = source.send({"users": "ann"}, "left")
    assert entry["status"] == "processed"
    assert entry["actions"][0]["action_result"] == {"key": "beta", "removed": 0, "note": "audience did not exist"}


def test_add_accepts_1000_users_and_refuses_1001(source):
    users = [f"user-{index}" for index in range(1001)]
    refused = source.run({"users": users}, "joined")
    assert refused["action_status"] == "error"
    assert refused["error"] == "users: at most 1000 users are allowed, got 1001 (path 'body.users', got array)"
    assert source.get("/v1/audiences/beta/members", expect=404)["code"] == "audience_missing"
    accepted = source.run({"users": users[:1000]}, "joined")
    assert accepted["action_status"] == "success"
    assert len(accepted["action_result"]["added"]) == 1000
    page = source.get("/v1/audiences/beta/members", limit=100)
    assert len(page["entries"]) == 100
    assert page["page_info"]["after"] is not None


def test_audiences_are_scoped_to_the_environment(source, client, api):
    source.send({"users": "ann"}, "joined")
    production = EventSource(client, api, environment="production")
    assert production.get("/v1/audiences/beta/members", expect=404)["code"] == "audience_missing"
    production.get("/v1/users/ann", expect=404)


@pytest.mark.parametrize("action_type", ["audiences_add_member", "audiences_remove_member"])
def test_missing_required_parameter_skips_the_action(client, api, action_type):
    # An unconfigured key is refused when the mapping is saved (tests/api/test_mappings.py).
    source = EventSource(client, api).configure(mapping(action_type, key="beta", users="body.users"))
    entry = source.send({})
    [action] = entry["actions"]
    assert entry["status"] == "failed"
    assert action["action_status"] == "skipped"
    assert action["error"] == "users: required value is missing (path 'body.users')"


@pytest.mark.parametrize("action_type", ["audiences_add_member", "audiences_remove_member"])
@pytest.mark.parametrize(
    ("name", "value", "error"),
    [
        ("users", True, "users[0]: expected a string recipient id (path 'body.users', got boolean)"),
        (
            "users",
            [{"id": "p1", "collection": "projects"}],
            "users[0]: expected a user, got an object recipient (path 'body.users', got object)",
        ),
        (
            "users",
            [{"name": "Ann"}],
            "users[0]: expected a recipient object with an id (path 'body.users', got object)",
        ),
        (
            "users",
            [{"id": "ann", "email": 5.5, "name": ["A"]}],
            "users[0]: expected the inline user's name to be a string, got array (path 'body.users', got object)",
        ),
        ("tenant", {"id": "acme"}, "tenant: expected a string id (path 'body.tenant', got object)"),
    ],
)
def test_type_mismatch_is_an_error_naming_path_and_types(client, api, action_type, name, value, error):
    values = {"users": ["ann"], name: value}
    source = EventSource(client, api).configure(mapping(action_type, **path_parameters(values, {"key": "beta"})))
    entry = source.send(values)
    [action] = entry["actions"]
    assert entry["status"] == "failed"
    assert action["action_status"] == "error"
    assert action["error"] == error
    source.get("/v1/audiences/beta/members", expect=404)

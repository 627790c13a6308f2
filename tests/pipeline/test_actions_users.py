"""``users_identify`` and ``users_delete`` through a source endpoint (issue 3)."""

import pytest

from tests.support.actions import EventSource, mapping, path_parameters

IDENTIFY = {
    "id": "body.user.id",
    "name": "body.user.name",
    "email": "body.user.email",
    "phone_number": "body.user.phone",
    "avatar": "body.user.avatar",
    "locale": "body.user.locale",
    "timezone": "body.user.tz",
    "properties": "body.user.metadata",
}
# 256 KiB of custom properties, measured as compact JSON: {"blob":"xxx..."}.
LIMIT = 256 * 1024
BLOB_OVERHEAD = len('{"blob":""}')


@pytest.fixture
def source(client, api):
    """A custom source that identifies users on ``user.updated``."""
    return EventSource(client, api).configure(mapping("users_identify", "user.updated", **IDENTIFY))


def test_identify_creates_a_user_with_every_field(source):
    user = {
        "id": "ann",
        "name": "Ann",
        "email": "ann@example.com",
        "phone": "+15555550100",
        "avatar": "https://example.com/ann.png",
        "locale": "en-GB",
        "tz": "Europe/London",
        "metadata": {"plan": "pro", "seats": 3},
    }
    action = source.run({"user": user}, "user.updated")
    assert action["action_status"] == "success"
    assert action["action_result"] == {"id": "ann", "created": True}
    stored = source.get("/v1/users/ann")
    assert stored["__typename"] == "User"
    assert (stored["name"], stored["email"], stored["phone_number"]) == ("Ann", "ann@example.com", "+15555550100")
    assert (stored["avatar"], stored["locale"], stored["timezone"]) == (user["avatar"], "en-GB", "Europe/London")
    assert (stored["plan"], stored["seats"]) == ("pro", 3)


def test_identify_merges_fields_and_properties_into_the_stored_user(source):
    source.run(
        {"user": {"id": "ann", "name": "Ann", "email": "ann@example.com", "metadata": {"plan": "free", "a": 1}}},
        "user.updated",
    )
    action = source.run({"user": {"id": "ann", "name": "Ann B", "metadata": {"plan": "pro", "b": 2}}}, "user.updated")
    assert action["action_result"] == {"id": "ann", "created": False}
    stored = source.get("/v1/users/ann")
    assert stored["name"] == "Ann B"
    assert stored["email"] == "ann@example.com"
    assert (stored["plan"], stored["a"], stored["b"]) == ("pro", 1, 2)


def test_numeric_user_id_is_taken_as_text(source):
    source.run({"user": {"id": 42, "name": "Answer"}}, "user.updated")
    assert source.get("/v1/users/42")["name"] == "Answer"


def test_custom_properties_of_exactly_256_kib_are_accepted(source):
    blob = "x" * (LIMIT - BLOB_OVERHEAD)
    action = source.run({"user": {"id": "ann", "metadata": {"blob": blob}}}, "user.updated")
    assert action["action_status"] == "success"
    assert len(source.get("/v1/users/ann")["blob"]) == len(blob)


def test_custom_properties_over_256_kib_are_refused_and_nothing_changes(source):
    source.run({"user": {"id": "ann", "name": "Ann", "metadata": {"blob": "x" * 1000}}}, "user.updated")
    blob = "x" * (LIMIT - BLOB_OVERHEAD - 1000)
    entry = source.send({"user": {"id": "ann", "name": "Changed", "metadata": {"more": blob}}}, "user.updated")
    [action] = entry["actions"]
    assert entry["status"] == "failed"
    assert action["action_status"] == "error"
    assert action["error"].startswith("invalid_params: user 'ann': custom properties would be ")
    assert action["error"].endswith("bytes, over the 256 KiB limit")
    stored = source.get("/v1/users/ann")
    assert stored["name"] == "Ann"
    assert "more" not in stored


def test_reserved_field_inside_properties_must_still_be_text(source):
    action = source.run({"user": {"id": "ann", "metadata": {"email": {"work": "a@example.com"}}}}, "user.updated")
    assert action["action_status"] == "error"
    assert action["error"] == "invalid_params: user 'ann': expected email to be a string"


@pytest.fixture
def member_source(client, api):
    """A source that identifies, subscribes, adds to an audience and deletes users."""
    return EventSource(client, api).configure(
        mapping("users_identify", "user.updated", id="body.id", name="body.name"),
        mapping("objects_subscribe", "user.updated", collection="projects", id="body.project", recipients="body.id"),
        mapping("audiences_add_member", "user.updated", key="beta", users="body.id"),
        mapping("users_delete", "user.deleted", id="body.id"),
    )


def test_delete_removes_the_user_with_subscriptions_and_memberships(member_source):
    source = member_source
    for user_id in ("ann", "bob"):
        assert source.send({"id": user_id, "name": user_id, "project": "p1"}, "user.updated")["status"] == "processed"
    action = source.run({"id": "ann"}, "user.deleted")
    assert action["action_status"] == "success"
    assert action["action_result"] == {
        "id": "ann",
        "deleted": True,
        "subscriptions_removed": 1,
        "audience_memberships_removed": 1,
    }
    assert source.get("/v1/users/ann", expect=404)["code"] == "user_missing"
    subscribers = source.get("/v1/objects/projects/p1/subscriptions")["entries"]
    assert [entry["recipient"]["id"] for entry in subscribers] == ["bob"]
    members = source.get("/v1/audiences/beta/members")["entries"]
    assert [entry["user_id"] for entry in members] == ["bob"]


def test_deleting_a_user_that_does_not_exist_succeeds_with_a_note(member_source):
    entry = member_source.send({"id": "ghost"}, "user.deleted")
    [action] = entry["actions"]
    assert entry["status"] == "processed"
    assert action["action_status"] == "success"
    assert action["action_result"]["deleted"] is False
    assert action["action_result"]["note"] == "user did not exist"


def test_delete_in_one_environment_leaves_the_same_user_in_another(member_source, client, api):
    production = EventSource(client, api, environment="production").configure(
        mapping("users_identify", "user.updated", id="body.id", name="body.name")
    )
    production.send({"id": "ann", "name": "Production Ann"}, "user.updated")
    member_source.send({"id": "ann", "name": "Ann", "project": "p1"}, "user.updated")
    member_source.send({"id": "ann"}, "user.deleted")
    assert production.get("/v1/users/ann")["name"] == "Production Ann"


@pytest.mark.parametrize(
    ("action_type", "values"),
    [("users_identify", {"id": "ann", "name": "Ann"}), ("users_delete", {"id": "ann"})],
)
def test_missing_id_skips_the_action(client, api, action_type, values):
    source = EventSource(client, api).configure(mapping(action_type, **path_parameters(values, {})))
    entry = source.send({key: value for key, value in values.items() if key != "id"})
    [action] = entry["actions"]
    assert entry["status"] == "failed"
    assert action["action_status"] == "skipped"
    assert action["error"] == "id: required value is missing (path 'body.id')"


@pytest.mark.parametrize(
    ("action_type", "name", "value", "error"),
    [
        ("users_identify", "id", {"id": "ann"}, "id: expected a string id (path 'body.id', got object)"),
        ("users_identify", "id", "", "id: expected an id of 1 to 255 characters (path 'body.id', got string)"),
        ("users_identify", "name", ["Ann"], "name: expected a string (path 'body.name', got array)"),
        ("users_identify", "email", True, "email: expected a string (path 'body.email', got boolean)"),
        (
            "users_identify",
            "phone_number",
            {"n": 1},
            "phone_number: expected a string (path 'body.phone_number', got object)",
        ),
        ("users_identify", "avatar", [], "avatar: expected a string (path 'body.avatar', got array)"),
        ("users_identify", "locale", False, "locale: expected a string (path 'body.locale', got boolean)"),
        ("users_identify", "timezone", {}, "timezone: expected a string (path 'body.timezone', got object)"),
        ("users_identify", "properties", "pro", "properties: expected an object (path 'body.properties', got string)"),
        ("users_identify", "properties", ["pro"], "properties: expected an object (path 'body.properties', got array)"),
        (
            "users_identify",
            "name",
            "x" * 256,
            "name: expected a string of at most 255 characters, got 256 (path 'body.name', got string)",
        ),
        ("users_delete", "id", ["ann"], "id: expected a string id (path 'body.id', got array)"),
        ("users_delete", "id", 1.5, "id: expected a string id (path 'body.id', got number)"),
    ],
)
def test_type_mismatch_is_an_error_naming_path_and_types(client, api, action_type, name, value, error):
    values = {"id": "ann", name: value}
    source = EventSource(client, api).configure(mapping(action_type, **path_parameters(values, {})))
    entry = source.send(values)
    [action] = entry["actions"]
    assert entry["status"] == "failed"
    assert action["action_status"] == "error"
    assert action["error"] == error
    source.get("/v1/users/ann", expect=404)


def test_an_identify_that_changes_nothing_writes_nothing(source, monkeypatch):
    from knock_sources import store

    user = {"id": "ann", "name": "Ann", "metadata": {"plan": "pro"}}
    source.run({"user": user}, "user.updated")
    written = []
    execute_sql = store.db.obj.execute_sql

    def recording(sql, params=None, *args, **kwargs):
        if sql.startswith('UPDATE "ks_user"'):
            written.append(sql)
        return execute_sql(sql, params, *args, **kwargs)

    monkeypatch.setattr(store.db.obj, "execute_sql", recording)
    # The same again: succeeds, and leaves the user (and its row lock) alone.
    assert source.run({"user": user}, "user.updated")["action_status"] == "success"
    assert written == []
    # A change is written.
    assert source.run({"user": {**user, "metadata": {"plan": "team"}}}, "user.updated")["action_status"] == "success"
    assert len(written) == 1
    assert source.api.get("/v1/users/ann").get_json()["plan"] == "team"

"""``tenants_set`` and ``tenants_delete`` through a source endpoint (issue 3)."""

import pytest

from tests.support.actions import EventSource, by_type, mapping, path_parameters


@pytest.fixture
def source(client, api):
    """A custom source that sets tenants on ``org.updated`` and deletes them on ``org.deleted``."""
    return EventSource(client, api).configure(
        mapping(
            "tenants_set",
            "org.updated",
            id="body.org.id",
            name="body.org.name",
            properties="body.org.meta",
            settings="body.org.settings",
        ),
        mapping("users_identify", "org.updated", id="body.admin"),
        mapping("tenants_delete", "org.deleted", id="body.org.id"),
    )


def test_set_creates_a_tenant_with_name_properties_and_settings(source):
    entry = source.send(
        {
            "org": {
                "id": "acme",
                "name": "Acme",
                "meta": {"plan": "enterprise"},
                "settings": {"branding": {"primary_color": "#ff0000", "logo_url": "https://acme.test/logo.png"}},
            },
            "admin": "ann",
        },
        "org.updated",
    )
    assert entry["status"] == "processed"
    assert by_type(entry)["tenants_set"]["action_result"] == {"id": "acme", "created": True}
    tenant = source.get("/v1/tenants/acme")
    assert tenant["__typename"] == "Tenant"
    assert (tenant["id"], tenant["name"], tenant["plan"]) == ("acme", "Acme", "enterprise")
    assert tenant["settings"] == {"branding": {"primary_color": "#ff0000", "logo_url": "https://acme.test/logo.png"}}


def test_set_merges_into_the_stored_tenant(source):
    source.send(
        {
            "org": {
                "id": "acme",
                "name": "Acme",
                "meta": {"plan": "pro", "region": "eu"},
                "settings": {"branding": {"primary_color": "#f00"}},
            },
            "admin": "ann",
        },
        "org.updated",
    )
    entry = source.send(
        {
            "org": {
                "id": "acme",
                "meta": {"plan": "enterprise"},
                "settings": {"branding": {"icon_url": "https://i"}, "preference_set": "b2b"},
            },
            "admin": "ann",
        },
        "org.updated",
    )
    action = by_type(entry)["tenants_set"]
    assert action["action_result"]["created"] is False
    tenant = source.get("/v1/tenants/acme")
    assert (tenant["name"], tenant["plan"], tenant["region"]) == ("Acme", "enterprise", "eu")
    assert tenant["settings"] == {
        "branding": {"primary_color": "#f00", "icon_url": "https://i"},
        "preference_set": "b2b",
    }


def test_delete_removes_the_tenant_and_leaves_its_users(source):
    source.send({"org": {"id": "acme", "name": "Acme"}, "admin": "ann"}, "org.updated")
    action = source.run({"org": {"id": "acme"}}, "org.deleted")
    assert action["action_status"] == "success"
    assert action["action_result"] == {"id": "acme", "deleted": True}
    assert source.get("/v1/tenants/acme", expect=404)["code"] == "tenant_missing"
    assert source.get("/v1/users/ann")["id"] == "ann"


def test_deleting_a_tenant_that_does_not_exist_succeeds_with_a_note(source):
    entry = source.send({"org": {"id": "ghost"}}, "org.deleted")
    assert entry["status"] == "processed"
    assert entry["actions"][0]["action_result"] == {"id": "ghost", "deleted": False, "note": "tenant did not exist"}


def test_tenants_are_scoped_to_the_environment(source, client, api):
    source.send({"org": {"id": "acme", "name": "Acme"}, "admin": "ann"}, "org.updated")
    production = EventSource(client, api, environment="production")
    assert production.get("/v1/tenants/acme", expect=404)["code"] == "tenant_missing"


@pytest.mark.parametrize(
    "configured",
    [
        mapping("tenants_set", id="body.org.id", name="body.org.name"),
        mapping("tenants_delete", id="body.org.id"),
    ],
    ids=["tenants_set", "tenants_delete"],
)
def test_missing_id_skips_the_action(client, api, configured):
    source = EventSource(client, api).configure(configured)
    entry = source.send({"org": {"name": "Acme"}})
    [action] = entry["actions"]
    assert entry["status"] == "failed"
    assert action["action_status"] == "skipped"
    assert action["error"] == "id: required value is missing (path 'body.org.id')"


@pytest.mark.parametrize(
    ("action_type", "name", "value", "error"),
    [
        ("tenants_set", "id", {"id": "acme"}, "id: expected a string id (path 'body.id', got object)"),
        ("tenants_set", "name", {"en": "Acme"}, "name: expected a string (path 'body.name', got object)"),
        ("tenants_set", "properties", [1, 2], "properties: expected an object (path 'body.properties', got array)"),
        ("tenants_set", "settings", "dark", "settings: expected an object (path 'body.settings', got string)"),
        ("tenants_delete", "id", ["acme"], "id: expected a string id (path 'body.id', got array)"),
    ],
)
def test_type_mismatch_is_an_error_naming_path_and_types(client, api, action_type, name, value, error):
    values = {"id": "acme", name: value}
    source = EventSource(client, api).configure(mapping(action_type, **path_parameters(values, {})))
    entry = source.send(values)
    [action] = entry["actions"]
    assert entry["status"] == "failed"
    assert action["action_status"] == "error"
    assert action["error"] == error
    source.get("/v1/tenants/acme", expect=404)

"""Mappings one at a time, checked against their action's schema when saved.

``POST /v1/sources/{key}/mappings``, ``GET|PATCH|DELETE .../mappings/{id}``
and ``POST .../mappings/restore_defaults``, each in ``?environment=``; the
source response and its status list the workflows active mappings name
that do not exist.
"""

import pytest

from knock_sources.state import current_state

IDENTIFY = {
    "event_type": "user.identified",
    "action_type": "users_identify",
    "action_parameters": {"id": "body.user_id", "name": "body.name"},
}
TRIGGER = {
    "event_type": "task.assigned",
    "action_type": "workflows_trigger",
    "action_parameters": {"key": "task-assigned", "recipients": "body.to"},
}
#: A valid spec for every required parameter of every built-in action.
LITERALS = {"key": "wf", "collection": "projects"}


def post(api, body, key="my-source", environment="development", status=201):
    response = api.request("POST", f"/v1/sources/{key}/mappings", json=body, environment=environment)
    assert response.status_code == status, response.get_json()
    return response.get_json()


def patch(api, mapping_id, body, key="my-source", environment="development", status=200):
    response = api.request("PATCH", f"/v1/sources/{key}/mappings/{mapping_id}", json=body, environment=environment)
    assert response.status_code == status, response.get_json()
    return response.get_json()


def fields_of(body):
    return {error["field"] for error in body["errors"]}


@pytest.fixture
def source(api):
    """A custom source with no mappings, typed by ``body.type``."""
    api.create_source(settings={"event_type_path": "body.type"}, mappings=[])
    return api


def test_a_mapping_is_created_read_changed_and_deleted_alone(client, source):
    first = post(source, IDENTIFY)
    second = post(source, {**IDENTIFY, "event_type": "user.renamed"})
    assert first["active"] is True and first["id"] != second["id"]
    assert source.get(f"/v1/sources/my-source/mappings/{first['id']}").get_json() == first
    listed = source.get("/v1/sources/my-source/mappings").get_json()["entries"]
    assert [m["id"] for m in listed] == [first["id"], second["id"]]

    changed = patch(source, first["id"], {"action_parameters": {"id": "body.uid"}})
    assert changed["action_parameters"] == {"id": "body.uid"} and changed["event_type"] == "user.identified"
    assert source.delete(f"/v1/sources/my-source/mappings/{second['id']}").status_code == 204
    assert source.get(f"/v1/sources/my-source/mappings/{second['id']}").status_code == 404
    assert [m["id"] for m in source.get("/v1/sources/my-source/mappings").get_json()["entries"]] == [first["id"]]


def test_switching_a_mapping_off_stops_only_it(client, source):
    off = post(source, IDENTIFY)
    post(source, {**IDENTIFY, "action_parameters": {"id": "body.other_id"}})
    patch(source, off["id"], {"active": False})
    client.post(source.endpoint(), json={"type": "user.identified", "user_id": "ada", "other_id": "grace"})
    assert source.get("/v1/users/grace").status_code == 200
    assert source.get("/v1/users/ada").status_code == 404
    patch(source, off["id"], {"active": True})
    client.post(source.endpoint(), json={"type": "user.identified", "user_id": "ada", "other_id": "grace"})
    assert source.get("/v1/users/ada").status_code == 200


def test_mappings_belong_to_their_environment(source):
    mapping = post(source, IDENTIFY)
    path = f"/v1/sources/my-source/mappings/{mapping['id']}"
    assert source.get(path, environment="production").get_json()["code"] == "mapping_missing"
    assert source.request("PATCH", path, json={"active": False}, environment="production").status_code == 404
    assert source.delete(path, environment="production").status_code == 404
    production = source.get("/v1/sources/my-source/mappings", environment="production").get_json()["entries"]
    assert mapping["id"] not in [m["id"] for m in production]
    assert source.get(path).get_json()["active"] is True


def required_parameters(app):
    """Every (action type, required parameter) of the installed actions."""
    with app.app_context():
        actions = current_state().registry.actions
    return [
        (action_type, name, {n: LITERALS.get(n, f"body.{n}") for n, f in fields.items() if f.required})
        for action_type, action in sorted(actions.items())
        for fields in [action.params_schema().fields]
        for name, field in fields.items()
        if field.required
    ]


@pytest.mark.parametrize("missing", ["absent", "null"])
def test_every_required_parameter_must_be_configured(app, source, missing):
    cases = required_parameters(app)
    assert len(cases) > 10
    for action_type, name, parameters in cases:
        parameters = {**parameters, name: None} if missing == "null" else dict(parameters)
        if missing == "absent":
            del parameters[name]
        body = {"event_type": "e", "action_type": action_type, "action_parameters": parameters}
        refused = post(source, body, status=422)
        assert fields_of(refused) == {f"action_parameters.{name}"}, (action_type, refused)
        assert "Required by" in refused["errors"][0]["message"]
    assert source.get("/v1/sources/my-source/mappings").get_json()["entries"] == []


def test_every_action_saves_with_its_required_parameters(app, source):
    for action_type, _, parameters in required_parameters(app):
        post(source, {"event_type": "e", "action_type": action_type, "action_parameters": parameters})


@pytest.mark.parametrize(
    ("action_type", "parameters", "field"),
    [
        ("workflows_trigger", {"key": {"value": 5}, "recipients": "body.to"}, "key"),
        ("workflows_trigger", {"key": 5, "recipients": "body.to"}, "key"),
        ("workflows_trigger", {"key": {"from": "body.key"}, "recipients": "body.to"}, "key"),
        ("workflows_trigger", {"key": "has space", "recipients": "body.to"}, "key"),
        ("workflows_cancel", {"key": {"value": ""}, "cancellation_key": "body.id"}, "key"),
        ("objects_set", {"collection": {"value": ["projects"]}, "id": "body.id"}, "collection"),
        ("audiences_add_member", {"key": {"value": None}, "users": "body.users"}, "key"),
        ("users_identify", {"id": {"value": {"nested": 1}}}, "id"),
        ("users_identify", {"id": "body..id"}, "id"),
        ("users_identify", {"id": "body.id", "data": {"a": "body..x"}}, "data"),
        ("users_identify", {"id": "body.id", "idd": "body.x"}, "idd"),
    ],
)
def test_literal_shapes_and_paths_are_checked_when_saved(source, action_type, parameters, field):
    refused = post(source, {"event_type": "e", "action_type": action_type, "action_parameters": parameters}, status=422)
    assert fields_of(refused) == {f"action_parameters.{field}"}


@pytest.mark.parametrize(
    "body",
    [
        {"action_type": "users_identify"},
        {"event_type": "e"},
        {**IDENTIFY, "active": "yes"},
        {**IDENTIFY, "event_type": "e" * 256},
        {**IDENTIFY, "colour": "red"},
        {**IDENTIFY, "action_parameters": ["body.id"]},
    ],
)
def test_malformed_mapping_bodies_are_422(source, body):
    post(source, body, status=422)


def test_patch_validates_the_mapping_it_would_leave(source):
    mapping = post(source, IDENTIFY)
    refused = patch(source, mapping["id"], {"action_type": "workflows_trigger"}, status=422)
    assert {"action_parameters.key", "action_parameters.recipients", "action_parameters.name"} <= fields_of(refused)
    assert patch(source, mapping["id"], {"active": "no"}, status=422)["errors"][0]["field"] == "active"
    assert source.get(f"/v1/sources/my-source/mappings/{mapping['id']}").get_json() == mapping


def test_a_put_with_one_bad_mapping_changes_nothing(source):
    kept = post(source, IDENTIFY)
    body = {
        "source": {
            "name": "S",
            "environment_settings": {
                "development": {"mappings": [TRIGGER, {**TRIGGER, "action_parameters": {"key": "wf"}}]}
            },
        }
    }
    response = source.put("/v1/sources/my-source", body)
    assert fields_of(response.get_json()) == {
        "source.environment_settings.development.mappings.1.action_parameters.recipients"
    }
    assert source.get("/v1/sources/my-source/mappings").get_json()["entries"] == [kept]


def test_a_get_body_put_back_keeps_mapping_ids(source):
    first, second = post(source, IDENTIFY), post(source, TRIGGER)
    body = source.get("/v1/sources/my-source").get_json()
    body["environment_settings"]["development"]["mappings"][0]["active"] = False
    put_back = source.put("/v1/sources/my-source", {"source": body}).get_json()
    mappings = put_back["environment_settings"]["development"]["mappings"]
    assert [(m["id"], m["active"]) for m in mappings] == [(first["id"], False), (second["id"], True)]


def test_restore_defaults_recreates_and_switches_on_the_providers_defaults(api):
    defaults = api.create_source("billing", provider="stripe")["environment_settings"]["development"]["mappings"]
    assert defaults and all(m["is_default"] for m in defaults)
    api.delete(f"/v1/sources/billing/mappings/{defaults[0]['id']}")
    patch(api, defaults[1]["id"], {"active": False}, key="billing")
    own = post(api, {**TRIGGER, "event_type": "charge.failed"}, key="billing")
    assert own["is_default"] is False
    response = api.request("POST", "/v1/sources/billing/mappings/restore_defaults")
    assert response.status_code == 200
    restored = response.get_json()["entries"]
    shape = [(m["event_type"], m["action_type"], m["action_parameters"]) for m in restored if m["is_default"]]
    assert sorted(shape, key=str) == sorted(
        [(m["event_type"], m["action_type"], m["action_parameters"]) for m in defaults], key=str
    )
    assert all(m["active"] for m in restored)
    assert own["id"] in [m["id"] for m in restored]
    again = api.request("POST", "/v1/sources/billing/mappings/restore_defaults").get_json()["entries"]
    assert len(again) == len(restored)


def test_preconfigured_provider_cannot_change_on_an_existing_source(api):
    api.create_source("billing", provider="stripe")
    response = api.put("/v1/sources/billing", {"source": {"name": "B", "preconfigured_provider": "clerk"}})
    assert fields_of(response.get_json()) == {"source.preconfigured_provider"}
    assert api.get("/v1/sources/billing").get_json()["provider"] == "stripe"
    same = api.put("/v1/sources/billing", {"source": {"name": "B", "preconfigured_provider": "stripe"}})
    assert same.status_code == 200


def test_missing_workflows_are_listed_until_they_exist(api):
    env = api.create_source("billing", provider="stripe")["environment_settings"]["development"]
    assert env["missing_workflows"] == ["invoice-created", "invoice-paid"]
    assert api.get("/v1/sources/billing/status").get_json()["missing_workflows"] == ["invoice-created", "invoice-paid"]
    api.create_workflow("invoice-paid")
    body = api.get("/v1/sources/billing").get_json()
    assert body["environment_settings"]["development"]["missing_workflows"] == ["invoice-created"]
    # Per environment: production has neither workflow.
    production = api.get("/v1/sources/billing/status", environment="production").get_json()
    assert production["missing_workflows"] == ["invoice-created", "invoice-paid"]
    # A switched-off mapping will not run, so its workflow is not missing.
    [created] = [
        m for m in body["environment_settings"]["development"]["mappings"] if m["event_type"] == "invoice.created"
    ]
    patch(api, created["id"], {"active": False}, key="billing")
    assert api.get("/v1/sources/billing/status").get_json()["missing_workflows"] == []

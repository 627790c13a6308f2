"""The ``/v1`` sources API: authentication, Knock's shapes, validation, logs."""

import pytest

from tests.support import Api

TRIGGER = {
    "event_type": "task.assigned",
    "action_type": "workflows_trigger",
    "action_parameters": {"key": "task-assigned", "recipients": "data.assigned_to"},
}


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer "}],
)
def test_missing_or_wrong_key_is_401(client, api, headers):
    response = client.get("/v1/sources", headers=headers)
    assert response.status_code == 401
    assert response.get_json()["code"] in ("api_key_missing", "authentication_required")


def test_created_source_has_an_endpoint_per_environment(api):
    body = api.create_source("tasks")
    assert body["key"] == "tasks"
    assert body["provider"] == "custom_http"
    settings = body["environment_settings"]["development"]["settings"]
    assert settings["endpoint"].startswith("https://hooks.example.com/integrations/receive/")
    production = api.get("/v1/sources/tasks", environment="production").get_json()
    assert production["environment_settings"]["production"]["settings"]["endpoint"] != settings["endpoint"]


def test_custom_source_starts_with_knocks_default_mapping_and_settings(api):
    env = api.create_source()["environment_settings"]["development"]
    assert env["settings"]["event_type_path"] == "body.type"
    assert env["settings"]["enforce_idempotency"] is False
    assert [(m["event_type"], m["action_type"]) for m in env["mappings"]] == [("user.identified", "users_identify")]


def test_put_updates_settings_and_replaces_mappings(api):
    api.create_source()
    body = api.put(
        "/v1/sources/my-source",
        {
            "source": {
                "name": "Renamed",
                "environment_settings": {
                    "development": {
                        "settings": {"event_type_path": "event_type", "timestamp_path": "body.at"},
                        "mappings": [TRIGGER, {**TRIGGER, "event_type": "task.done", "active": False}],
                    }
                },
            }
        },
    ).get_json()
    env = body["environment_settings"]["development"]
    assert body["name"] == "Renamed"
    assert env["settings"]["event_type_path"] == "event_type"
    assert env["settings"]["timestamp_path"] == "body.at"
    assert [(m["event_type"], m["active"]) for m in env["mappings"]] == [("task.assigned", True), ("task.done", False)]


def test_get_body_can_be_put_back_unchanged(api):
    body = api.create_source()
    response = api.put("/v1/sources/my-source", {"source": body})
    assert response.status_code == 200

    def essentials(source):
        env = source["environment_settings"]["development"]
        mappings = [(m["event_type"], m["action_type"], m["action_parameters"], m["active"]) for m in env["mappings"]]
        return env["settings"], mappings

    assert essentials(response.get_json()) == essentials(body)


def test_is_deleted_mapping_is_removed(api):
    api.create_source(mappings=[TRIGGER])
    env = api.create_source(mappings=[{**TRIGGER, "is_deleted": True}])["environment_settings"]["development"]
    assert env["mappings"] == []


@pytest.mark.parametrize(
    ("source", "field"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "x", "colour": "red"}, "colour"),
        ({"name": "x", "environment_settings": {"staging": {}}}, "environment_settings"),
        ({"name": "x", "preconfigured_provider": "nope"}, "preconfigured_provider"),
        (
            {"name": "x", "environment_settings": {"development": {"settings": {"event_type_path": "a..b"}}}},
            "environment_settings",
        ),
        (
            {"name": "x", "environment_settings": {"development": {"settings": {"typo_path": "a"}}}},
            "environment_settings",
        ),
        (
            {
                "name": "x",
                "environment_settings": {"development": {"mappings": [{"event_type": "a", "action_type": "nope"}]}},
            },
            "mappings",
        ),
        (
            {
                "name": "x",
                "environment_settings": {
                    "development": {
                        "mappings": [
                            {
                                "event_type": "a",
                                "action_type": "users_identify",
                                "action_parameters": {"idd": "body.id"},
                            }
                        ]
                    }
                },
            },
            "mappings",
        ),
        (
            {
                "name": "x",
                "environment_settings": {
                    "development": {
                        "mappings": [
                            {
                                "event_type": "a",
                                "action_type": "users_identify",
                                "action_parameters": {"id": "body..id"},
                            }
                        ]
                    }
                },
            },
            "mappings",
        ),
    ],
)
def test_invalid_source_body_is_422_with_field_errors(api, source, field):
    response = api.put("/v1/sources/bad", {"source": source})
    assert response.status_code == 422
    body = response.get_json()
    assert body["code"] == "invalid_params"
    assert field in str(body["errors"])
    assert api.get("/v1/sources/bad").status_code == 404


@pytest.mark.parametrize("payload", [None, [], "text", {"wrong": {}}])
def test_body_that_is_not_a_source_object_is_422(api, payload):
    response = api.client.put("/v1/sources/x", json=payload, headers=api.headers)
    assert response.status_code == 422


def test_signing_secrets_are_write_only(api):
    body = api.create_source(settings={"signing_secret": "whsec_topsecret"})
    settings = body["environment_settings"]["development"]["settings"]
    assert settings["signing_secrets_info"] == {"count": 1, "expires_at": [None]}
    assert "topsecret" not in str(api.get("/v1/sources/my-source").get_json())


def test_delete_source(api):
    api.create_source()
    assert api.delete("/v1/sources/my-source").status_code == 204
    assert api.get("/v1/sources/my-source").status_code == 404
    assert api.delete("/v1/sources/my-source").status_code == 404


def test_unknown_environment_is_404(api):
    api.create_source()
    response = api.get("/v1/sources/my-source", environment="staging")
    assert response.status_code == 404
    assert response.get_json()["code"] == "environment_missing"


def test_list_sources_paginates(api):
    for index in range(3):
        api.create_source(f"source-{index}")
    first = api.get("/v1/sources", limit=2).get_json()
    assert [s["key"] for s in first["entries"]] == ["source-2", "source-1"]
    second = api.get("/v1/sources", limit=2, after=first["page_info"]["after"]).get_json()
    assert [s["key"] for s in second["entries"]] == ["source-0"]
    assert second["page_info"]["after"] is None
    back = api.get("/v1/sources", limit=2, before=second["page_info"]["before"]).get_json()
    assert [s["key"] for s in back["entries"]] == ["source-2", "source-1"]


@pytest.fixture
def posted(client, api):
    """A source that received four events: two of one type, one rejected, one other."""
    api.create_workflow("task-assigned")
    api.create_source(mappings=[TRIGGER])
    endpoint = api.endpoint()
    client.post(endpoint, json={"type": "task.assigned", "data": {"assigned_to": {"id": "u1", "name": "Ada"}}})
    client.post(endpoint, json={"type": "task.assigned", "data": {"assigned_to": "u2"}})
    client.post(endpoint, data="{", content_type="application/json")
    client.post(endpoint, json={"type": "task.done"})
    return api


def test_logs_are_newest_first_with_status(posted):
    entries = posted.logs()
    assert [(e["event"], e["status"]) for e in entries] == [
        ("task.done", "processed"),
        (None, "rejected"),
        ("task.assigned", "processed"),
        ("task.assigned", "processed"),
    ]


@pytest.mark.parametrize(
    ("query", "events"),
    [
        ({"event": "task.assigned"}, ["task.assigned", "task.assigned"]),
        ({"status": "rejected"}, [None]),
        ({"starting_at": "2000-01-01T00:00:00Z"}, ["task.done", None, "task.assigned", "task.assigned"]),
        ({"ending_at": "2000-01-01T00:00:00Z"}, []),
    ],
)
def test_logs_filters(posted, query, events):
    assert [e["event"] for e in posted.logs(**query)] == events


def test_invalid_log_filter_is_422(posted):
    assert posted.get("/v1/sources/my-source/logs", status="exploded").status_code == 422
    assert posted.get("/v1/sources/my-source/logs", after="abc").status_code == 422


def test_log_actions_are_only_included_on_request(posted):
    plain = posted.get("/v1/sources/my-source/logs").get_json()["entries"]
    assert "actions" not in plain[0]
    [action] = posted.logs(event="task.assigned")[1]["actions"]
    assert action["action_type"] == "workflows_trigger"
    assert action["action_status"] == "success"
    assert action["action_parameters"] == TRIGGER["action_parameters"]
    assert action["action_payload"]["recipients"] == [{"collection": "$users", "id": "u1", "inline": {"name": "Ada"}}]
    assert len(action["action_result"]["workflow_run_ids"]) == 1


def test_unidentified_recipient_gets_no_run_and_is_named(posted):
    [action] = posted.logs(event="task.assigned")[0]["actions"]
    assert action["action_result"]["workflow_run_ids"] == []
    assert action["action_result"]["skipped_recipients"] == [
        {"collection": "$users", "id": "u2", "reason": "not identified"}
    ]


def test_log_detail(posted):
    entry = posted.logs(event="task.assigned")[0]
    detail = posted.get(f"/v1/sources/my-source/logs/{entry['id']}").get_json()
    assert detail == entry
    assert posted.get("/v1/sources/my-source/logs/999999").status_code == 404


def test_log_of_another_environment_is_not_visible(posted):
    entry = posted.logs()[0]
    assert posted.get(f"/v1/sources/my-source/logs/{entry['id']}", environment="production").status_code == 404


def test_status(posted):
    status = posted.get("/v1/sources/my-source/status").get_json()
    assert status["events_count"] == 3
    assert status["rejected_count"] == 1
    assert status["mappings_count"] == 1
    assert status["last_event_received"] is not None


def test_workflows_and_runs(posted):
    assert [w["key"] for w in posted.get("/v1/workflows").get_json()["entries"]] == ["task-assigned"]
    [run] = posted.get("/v1/workflows/task-assigned/runs").get_json()["entries"]
    assert run["recipient"] == {"collection": "$users", "id": "u1"}
    assert run["status"] == "triggered"
    assert posted.get("/v1/workflows/task-assigned/runs", recipient="nobody").get_json()["entries"] == []
    assert posted.get("/v1/workflows/missing/runs").status_code == 404


def test_user_identified_inline_is_readable(posted):
    user = posted.get("/v1/users/u1").get_json()
    assert (user["id"], user["name"]) == ("u1", "Ada")
    assert posted.get("/v1/users/u2").status_code == 404


def test_invalid_workflow_body_is_422(api):
    assert api.put("/v1/workflows/x", {"workflow": {"active": "maybe"}}).status_code == 422


def test_api_keys_are_independent(app, client, api):
    runner = app.test_cli_runner()
    other = Api(client, runner.invoke(args=["api-key", "create"]).stdout.strip())
    assert other.get("/v1/sources").status_code == 200


@pytest.mark.parametrize(
    "raw",
    [
        "[" * 50_000 + "]" * 50_000,
        '{"source": ' + "[" * 50_000 + "]" * 50_000 + "}",
        '{"source": {"name": "\\ud800"}}',
        '{"source": {"name": "x"}, "extra": NaN}',
        "",
    ],
    ids=["deep", "deep-inside", "lone-surrogate", "nan", "empty"],
)
@pytest.mark.parametrize("path", ["/v1/sources/x", "/v1/workflows/w", "/v1/variables/V"])
def test_hostile_api_bodies_are_422_never_500(api, raw, path):
    response = api.client.put(path, data=raw.encode(), content_type="application/json", headers=api.headers)
    assert response.status_code == 422
    assert response.get_json()["code"] == "invalid_params"


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/v1/sources/my-source/logs", {"after": "99999999999999999999999"}),
        ("/v1/sources/my-source/logs", {"before": "-5"}),
        ("/v1/sources/my-source/logs/99999999999999999999999", {}),
        ("/v1/sources/my-source/logs/abc", {}),
    ],
)
def test_ids_and_cursors_out_of_range_are_422(api, path, query):
    api.create_source()
    assert api.get(path, **query).status_code == 422

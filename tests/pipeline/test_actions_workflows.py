"""``workflows_trigger`` and ``workflows_cancel`` through a source endpoint (issue 3)."""

import pytest

from knock_sources.store.dataplane import RUN_COMPLETED, WorkflowRun
from tests.support.actions import EventSource, identify_mapping, mapping, path_parameters

TRIGGER = {"key": "wf", "recipients": "body.to"}


@pytest.fixture
def source(client, api):
    """A custom source, with the workflow ``wf`` created in development."""
    api.create_workflow("wf")
    return EventSource(client, api)


def runs(source, workflow="wf", **filters):
    """Return the runs of ``workflow`` listed by the API, oldest first."""
    return list(reversed(source.get(f"/v1/workflows/{workflow}/runs", limit=100, **filters)["entries"]))


def test_trigger_creates_one_run_per_recipient_with_everything_recorded(source):
    source.configure(
        identify_mapping(),
        mapping(
            "workflows_trigger",
            key="wf",
            recipients="body.to",
            actor="body.by",
            data={"task": "body.task.id", "title": "body.task.title"},
            tenant="body.org",
            cancellation_key="headers.x-request-id",
        ),
    )
    source.identify("ann", "bob", "cat")
    response = source.client.post(
        source.endpoint,
        json={"type": "evt", "to": ["ann", "bob"], "by": "cat", "task": {"id": "t1", "title": "Ship"}, "org": "acme"},
        headers={"X-Request-Id": "req-1"},
    )
    assert response.status_code == 204
    entry = source.api.logs()[0]
    [action] = entry["actions"]
    assert entry["status"] == "processed"
    assert action["action_status"] == "success"
    assert action["action_payload"]["recipients"] == [
        {"collection": "$users", "id": "ann"},
        {"collection": "$users", "id": "bob"},
    ]
    listed = runs(source)
    assert [run["id"] for run in listed] == action["action_result"]["workflow_run_ids"]
    assert [run["recipient"]["id"] for run in listed] == ["ann", "bob"]
    for run in listed:
        assert run["workflow"] == "wf"
        assert run["actor"] == {"collection": "$users", "id": "cat"}
        assert run["tenant"] == "acme"
        assert run["data"] == {"task": "t1", "title": "Ship"}
        assert run["cancellation_key"] == "req-1"
        assert run["status"] == "triggered"
        assert run["source_log_id"] == entry["id"]


def test_task_management_example_from_the_docs(client, api):
    """Seed 000/001: ``task.assigned`` keyed by ``event_type``, recipients ``data.assigned_to``."""
    api.create_workflow("task-assigned")
    source = EventSource(client, api, key="tasks").configure(
        identify_mapping(),
        mapping(
            "workflows_trigger",
            "task.assigned",
            key="task-assigned",
            recipients="data.assigned_to",
            actor="data.assigned_by",
            data={"task_id": "data.task_id", "title": "data.title"},
        ),
        event_type_path="event_type",
    )
    for user_id in ("user_123", "user_456"):
        source.send({"event_type": "user.created", "id": user_id})
    entry = source.send(
        {
            "event_type": "task.assigned",
            "data": {
                "task_id": "task_789",
                "title": "Review the Q3 roadmap",
                "assigned_to": "user_123",
                "assigned_by": "user_456",
                "project": {"name": "Roadmap"},
            },
        }
    )
    assert entry["event"] == "task.assigned"
    assert entry["status"] == "processed"
    [run] = runs(source, "task-assigned")
    assert run["recipient"] == {"collection": "$users", "id": "user_123"}
    assert run["actor"] == {"collection": "$users", "id": "user_456"}
    assert run["data"] == {"task_id": "task_789", "title": "Review the Q3 roadmap"}


def test_scalar_recipient_becomes_a_one_element_list(source):
    source.configure(identify_mapping(), mapping("workflows_trigger", **TRIGGER))
    source.identify("ann")
    action = source.run({"to": "ann"})
    assert action["action_payload"]["recipients"] == [{"collection": "$users", "id": "ann"}]
    assert [run["recipient"]["id"] for run in runs(source)] == ["ann"]


def test_inline_recipients_are_identified_and_set_before_the_runs(source):
    source.configure(mapping("workflows_trigger", **TRIGGER, actor="body.by"))
    action = source.run(
        {
            "to": [
                {"id": "ann", "name": "Ann", "email": "ann@example.com", "plan": "pro"},
                {"id": "p1", "collection": "projects", "name": "Apollo", "stage": "beta"},
            ],
            "by": {"id": "cat", "name": "Cat"},
        }
    )
    assert action["action_status"] == "success"
    user = source.get("/v1/users/ann")
    assert (user["name"], user["email"], user["plan"]) == ("Ann", "ann@example.com", "pro")
    assert source.get("/v1/users/cat")["name"] == "Cat"
    project = source.get("/v1/objects/projects/p1")
    assert (project["name"], project["properties"]) == ("Apollo", {"stage": "beta"})
    assert [run["recipient"] for run in runs(source)] == [
        {"collection": "$users", "id": "ann"},
        {"collection": "projects", "id": "p1"},
    ]


def test_unidentified_recipient_gets_no_run_and_is_named(source):
    source.configure(identify_mapping(), mapping("workflows_trigger", **TRIGGER))
    source.identify("ann")
    action = source.run({"to": ["ann", "ghost"]})
    assert action["action_status"] == "success"
    assert action["action_result"]["skipped_recipients"] == [
        {"collection": "$users", "id": "ghost", "reason": "not identified"},
    ]
    assert [run["recipient"]["id"] for run in runs(source)] == ["ann"]
    source.get("/v1/users/ghost", expect=404)


@pytest.mark.parametrize(
    ("recipient", "path"),
    [({"id": "newcomer"}, "/v1/users/newcomer"), ({"id": "p9", "collection": "projects"}, "/v1/objects/projects/p9")],
)
def test_recipient_given_as_an_object_is_identified_inline_even_with_only_an_id(source, recipient, path):
    # Knock's inline identification needs only an id: an object is never a bare reference.
    source.configure(mapping("workflows_trigger", **TRIGGER))
    action = source.run({"to": [recipient]})
    assert action["action_result"]["skipped_recipients"] == []
    assert [run["recipient"]["id"] for run in runs(source)] == [recipient["id"]]
    assert source.get(path)["id"] == recipient["id"]


def test_a_recipient_listed_twice_gets_one_run(source):
    source.configure(identify_mapping(), mapping("workflows_trigger", **TRIGGER))
    source.identify("ann")
    source.run({"to": ["ann", "ann", {"id": "ann", "name": "Ann"}]})
    assert len(runs(source)) == 1


@pytest.mark.parametrize(
    ("tenant", "expected_name"),
    [
        ({"id": "acme", "name": "Acme Inc", "settings": {"branding": {"primary_color": "#000"}}}, "Acme Inc"),
        ("acme", None),
    ],
    ids=["inline", "id"],
)
def test_tenant_is_recorded_and_an_inline_tenant_is_set_first(source, tenant, expected_name):
    source.configure(mapping("workflows_trigger", **TRIGGER, tenant="body.tenant"))
    source.run({"to": {"id": "ann", "name": "Ann"}, "tenant": tenant})
    [run] = runs(source)
    assert run["tenant"] == "acme"
    if expected_name:
        stored = source.get("/v1/tenants/acme")
        assert stored["name"] == expected_name
        assert stored["settings"] == {"branding": {"primary_color": "#000"}}


@pytest.mark.parametrize(
    ("active", "code"),
    [(None, "workflow_missing"), (False, "workflow_inactive")],
    ids=["missing", "inactive"],
)
def test_unknown_or_inactive_workflow_is_an_error_and_runs_nothing(source, active, code):
    if active is not None:
        source.api.create_workflow("other", active=active)
    source.configure(mapping("workflows_trigger", key="other", recipients="body.to"))
    entry = source.send({"to": {"id": "ann", "name": "Ann"}})
    [action] = entry["actions"]
    assert action["action_status"] == "error"
    assert action["error"].startswith(f"{code}: ")
    assert entry["status"] == "failed"
    source.get("/v1/users/ann", expect=404)


def test_a_trigger_that_fails_part_way_keeps_nothing(source):
    source.configure(mapping("workflows_trigger", **TRIGGER))
    too_big = {"id": "bob", "blob": "x" * (256 * 1024)}
    action = source.run({"to": [{"id": "ann", "name": "Ann"}, too_big]})
    assert action["action_status"] == "error"
    assert action["error"].startswith("invalid_params: user 'bob': custom properties would be ")
    assert runs(source) == []
    source.get("/v1/users/ann", expect=404)


def test_unidentified_actor_is_an_error(source):
    source.configure(identify_mapping(), mapping("workflows_trigger", **TRIGGER, actor="body.by"))
    source.identify("ann")
    action = source.run({"to": "ann", "by": "ghost"})
    assert action["action_status"] == "error"
    assert action["error"] == "actor_missing: actor 'ghost' has not been identified"
    assert runs(source) == []


def test_more_than_1000_recipients_is_not_processed(source):
    source.configure(mapping("workflows_trigger", **TRIGGER))
    entry = source.send({"to": [{"id": f"user-{index}", "name": "U"} for index in range(1001)]})
    [action] = entry["actions"]
    assert entry["status"] == "failed"
    assert action["action_status"] == "error"
    assert action["error"] == "recipients: at most 1000 recipients are allowed, got 1001 (path 'body.to', got array)"
    assert runs(source) == []
    source.get("/v1/users/user-0", expect=404)


def test_1000_recipients_are_processed(source):
    source.configure(mapping("workflows_trigger", **TRIGGER))
    action = source.run({"to": [{"id": f"user-{index}", "name": "U"} for index in range(1000)]})
    assert action["action_status"] == "success"
    assert len(action["action_result"]["workflow_run_ids"]) == 1000
    assert source.get("/v1/workflows/wf/runs", recipient="user-999")["entries"][0]["status"] == "triggered"


def trigger_then_cancel(source):
    """Configure triggers on ``start`` and a cancel on ``stop`` keyed by ``body.key``."""
    source.configure(
        mapping("workflows_trigger", "start", key="wf", recipients="body.to", cancellation_key="body.key"),
        mapping("workflows_cancel", "stop", key="wf", cancellation_key="body.key", recipients="body.to"),
    )
    users = [{"id": user_id, "name": user_id} for user_id in ("ann", "bob", "cat")]
    assert source.send({"to": users, "key": "k1"}, "start")["status"] == "processed"
    assert source.send({"to": users[:1], "key": "k2"}, "start")["status"] == "processed"


def test_cancel_marks_unfinished_runs_with_the_key_cancelled(source):
    trigger_then_cancel(source)
    action = source.run({"key": "k1"}, "stop")
    assert action["action_status"] == "success"
    assert action["action_result"]["cancelled_runs"] == 3
    assert {run["recipient"]["id"] for run in runs(source, status="cancelled")} == {"ann", "bob", "cat"}
    [untouched] = runs(source, status="triggered")
    assert untouched["cancellation_key"] == "k2"


def test_cancel_for_some_recipients_only(source):
    trigger_then_cancel(source)
    action = source.run({"key": "k1", "to": ["bob", {"id": "cat", "collection": "$users"}]}, "stop")
    assert action["action_result"]["cancelled_runs"] == 2
    assert {run["recipient"]["id"] for run in runs(source, status="cancelled")} == {"bob", "cat"}
    assert {run["recipient"]["id"] for run in runs(source, cancellation_key="k1", status="triggered")} == {"ann"}


def test_cancel_leaves_finished_runs_and_other_environments_alone(source, db):
    trigger_then_cancel(source)
    WorkflowRun.update(status=RUN_COMPLETED).where(WorkflowRun.recipient_id == "ann").execute()
    production = EventSource(source.client, source.api, environment="production")
    source.api.create_workflow("wf", environment="production")
    trigger_then_cancel(production)
    action = source.run({"key": "k1"}, "stop")
    assert action["action_result"]["cancelled_runs"] == 2
    assert {run["recipient"]["id"] for run in runs(source, status=RUN_COMPLETED)} == {"ann"}
    assert len(runs(production, status="triggered")) == 4


def test_cancel_that_matches_nothing_succeeds_with_a_note(source):
    trigger_then_cancel(source)
    action = source.run({"key": "no-such-key"}, "stop")
    assert action["action_status"] == "success"
    assert action["action_result"]["cancelled_runs"] == 0
    assert action["action_result"]["note"] == "no unfinished runs matched"


def test_cancel_of_an_unknown_workflow_is_workflow_missing(source):
    source.configure(mapping("workflows_cancel", key="nope", cancellation_key="body.key"))
    action = source.run({"key": "k1"})
    assert action["action_status"] == "error"
    assert action["error"].startswith("workflow_missing: ")


VALID = {
    "workflows_trigger": ({"recipients": {"id": "ann", "name": "Ann"}}, {"key": "wf"}),
    "workflows_cancel": ({"cancellation_key": "k1"}, {"key": "wf"}),
}


@pytest.mark.parametrize(
    ("action_type", "name"),
    [("workflows_trigger", "recipients"), ("workflows_cancel", "cancellation_key")],
)
def test_missing_required_parameter_skips_the_action(source, action_type, name):
    # A required parameter left unconfigured is refused when the mapping is
    # saved (tests/api/test_mappings.py); one whose path finds nothing is skipped.
    values, literals = VALID[action_type]
    configured = path_parameters(values, literals)
    values = {key: value for key, value in values.items() if key != name}
    source.configure(mapping(action_type, **configured))
    entry = source.send(values)
    [action] = entry["actions"]
    assert action["action_status"] == "skipped"
    assert action["error"] == f"{name}: required value is missing (path 'body.{name}')"
    assert entry["status"] == "failed"
    assert runs(source) == []


@pytest.mark.parametrize(
    ("action_type", "name", "value", "error"),
    [
        (
            "workflows_trigger",
            "recipients",
            True,
            "recipients[0]: expected a string recipient id (path 'body.recipients', got boolean)",
        ),
        (
            "workflows_trigger",
            "recipients",
            [{"name": "Ann"}],
            "recipients[0]: expected a recipient object with an id (path 'body.recipients', got object)",
        ),
        (
            "workflows_trigger",
            "recipients",
            ["ann", None],
            "recipients[1]: expected a string recipient id (path 'body.recipients', got null)",
        ),
        ("workflows_trigger", "actor", ["ann"], "actor: expected a string recipient id (path 'body.actor', got array)"),
        ("workflows_trigger", "data", "not an object", "data: expected an object (path 'body.data', got string)"),
        (
            "workflows_trigger",
            "tenant",
            ["acme"],
            "tenant: expected a string tenant id (path 'body.tenant', got array)",
        ),
        (
            "workflows_trigger",
            "cancellation_key",
            {"a": 1},
            "cancellation_key: expected a string (path 'body.cancellation_key', got object)",
        ),
        (
            "workflows_cancel",
            "cancellation_key",
            ["k1"],
            "cancellation_key: expected a string (path 'body.cancellation_key', got array)",
        ),
        (
            "workflows_cancel",
            "recipients",
            {"id": ["ann"]},
            "recipients[0]: expected a string recipient id in the recipient object, got array "
            "(path 'body.recipients', got object)",
        ),
    ],
    ids=lambda value: value if isinstance(value, str) and len(value) < 20 else None,
)
def test_type_mismatch_is_an_error_naming_path_and_types(source, action_type, name, value, error):
    values, literals = VALID[action_type]
    values = {**values, name: value}
    source.configure(mapping(action_type, **path_parameters(values, literals)))
    entry = source.send(values)
    [action] = entry["actions"]
    assert action["action_status"] == "error"
    assert action["error"] == error
    assert entry["status"] == "failed"
    assert runs(source) == []

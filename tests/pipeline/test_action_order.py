"""Several mappings on one event type: Knock's fixed order, and failures that stop nothing."""

import itertools

import pytest

from tests.support.actions import EventSource, by_type, mapping

# Knock's documented order (docs/architecture.md 3.3), with workflows_cancel just
# before workflows_trigger.
DOCUMENTED_ORDER = [
    "users_identify",
    "users_delete",
    "objects_set",
    "objects_delete",
    "tenants_set",
    "tenants_delete",
    "objects_subscribe",
    "objects_unsubscribe",
    "audiences_add_member",
    "audiences_remove_member",
    "workflows_cancel",
    "workflows_trigger",
]

EVERY_ACTION = {
    "users_identify": {"id": "body.user", "name": "body.name"},
    "users_delete": {"id": "body.gone"},
    "objects_set": {"collection": "projects", "id": "body.project"},
    "objects_delete": {"collection": "projects", "id": "body.old_project"},
    "tenants_set": {"id": "body.tenant", "name": "body.tenant_name"},
    "tenants_delete": {"id": "body.old_tenant"},
    "objects_subscribe": {"collection": "projects", "id": "body.project", "recipients": "body.user"},
    "objects_unsubscribe": {"collection": "projects", "id": "body.project", "recipients": "body.gone"},
    "audiences_add_member": {"key": "beta", "users": "body.user"},
    "audiences_remove_member": {"key": "beta", "users": "body.gone"},
    "workflows_cancel": {"key": "welcome", "cancellation_key": "body.user"},
    "workflows_trigger": {
        "key": "welcome",
        "recipients": "body.user",
        "tenant": "body.tenant",
        "cancellation_key": "body.user",
    },
}
EVENT = {
    "user": "ann",
    "name": "Ann",
    "gone": "zed",
    "project": "p1",
    "old_project": "p0",
    "tenant": "acme",
    "tenant_name": "Acme",
    "old_tenant": "initech",
}


@pytest.fixture
def source(client, api):
    """A custom source in development, with the workflow ``welcome``."""
    api.create_workflow("welcome")
    return EventSource(client, api)


def test_every_action_runs_in_knocks_order_whatever_the_creation_order(source):
    source.configure(*[mapping(action_type, **EVERY_ACTION[action_type]) for action_type in reversed(DOCUMENTED_ORDER)])
    entry = source.send(EVENT)
    assert [action["action_type"] for action in entry["actions"]] == DOCUMENTED_ORDER
    assert {action["action_status"] for action in entry["actions"]} == {"success"}
    assert entry["status"] == "processed"
    assert entry["error"] is None
    # Only possible because identify ran before subscribe, add member and trigger.
    [subscription] = source.get("/v1/objects/projects/p1/subscriptions")["entries"]
    assert subscription["recipient"]["id"] == "ann"
    [run] = source.get("/v1/workflows/welcome/runs")["entries"]
    assert (run["recipient"]["id"], run["tenant"], run["status"]) == ("ann", "acme", "triggered")


@pytest.mark.parametrize(
    "creation_order",
    list(itertools.permutations(["users_identify", "objects_subscribe", "workflows_trigger"])),
    ids="-".join,
)
def test_identify_runs_before_subscribe_before_trigger(source, creation_order):
    source.configure(*[mapping(action_type, **EVERY_ACTION[action_type]) for action_type in creation_order])
    entry = source.send({"user": "ann", "name": "Ann", "project": "p1", "tenant": "acme"})
    assert [action["action_type"] for action in entry["actions"]] == [
        "users_identify",
        "objects_subscribe",
        "workflows_trigger",
    ]
    actions = by_type(entry)
    assert actions["objects_subscribe"]["action_result"]["subscribed"] == [{"collection": "$users", "id": "ann"}]
    assert actions["workflows_trigger"]["action_result"]["skipped_recipients"] == []
    assert len(actions["workflows_trigger"]["action_result"]["workflow_run_ids"]) == 1


def test_a_cancel_runs_before_a_trigger_so_an_event_can_replace_a_pending_run(source):
    source.configure(
        mapping("workflows_trigger", **EVERY_ACTION["workflows_trigger"]),
        mapping("workflows_cancel", **EVERY_ACTION["workflows_cancel"]),
        mapping("users_identify", **EVERY_ACTION["users_identify"]),
    )
    source.send(EVENT)
    second = by_type(source.send(EVENT))
    assert second["workflows_cancel"]["action_result"]["cancelled_runs"] == 1
    runs = source.get("/v1/workflows/welcome/runs")["entries"]
    assert [run["status"] for run in runs] == ["triggered", "cancelled"]


def test_failing_actions_do_not_stop_the_others_and_fail_the_event(source):
    source.configure(
        mapping("workflows_trigger", key="welcome", recipients="body.users"),
        mapping("tenants_set", id="body.tenant"),
        mapping("objects_set", collection="projects", id="body.project"),
        mapping("users_identify", id="body.missing"),
        mapping("workflows_trigger", key="no-such-workflow", recipients="body.users"),
    )
    entry = source.send({"users": [{"id": "ann", "name": "Ann"}], "tenant": "acme", "project": {"id": "p1"}})
    statuses = [(action["action_type"], action["action_status"]) for action in entry["actions"]]
    assert statuses == [
        ("users_identify", "skipped"),
        ("objects_set", "error"),
        ("tenants_set", "success"),
        ("workflows_trigger", "success"),
        ("workflows_trigger", "error"),
    ]
    assert entry["status"] == "failed"
    assert entry["error"] == "3 of 5 actions did not succeed"
    assert source.get("/v1/tenants/acme")["id"] == "acme"
    [run] = source.get("/v1/workflows/welcome/runs")["entries"]
    assert run["recipient"]["id"] == "ann"


def test_mappings_of_other_event_types_do_not_run(source):
    source.configure(
        mapping("tenants_set", "org.created", id="body.tenant"),
        mapping("tenants_delete", "org.deleted", id="body.tenant"),
    )
    entry = source.send({"tenant": "acme"}, "org.created")
    assert [action["action_type"] for action in entry["actions"]] == ["tenants_set"]
    assert source.get("/v1/tenants/acme")["id"] == "acme"

"""Source event idempotency with Knock's semantics (docs/architecture.md 3.4)."""

from datetime import timedelta

import pytest

from knock_sources.store import utcnow
from knock_sources.store.control import IdempotencyRecord

TRIGGER = {
    "event_type": "order.paid",
    "action_type": "workflows_trigger",
    "action_parameters": {"key": "receipt", "recipients": {"value": [{"id": "u1", "name": "Ada"}]}},
}
IDEMPOTENT_SETTINGS = {"idempotency_key_path": "body.id", "enforce_idempotency": True}


@pytest.fixture
def send(client, api):
    """Create the source (idempotent by body.id) and return a function posting events."""

    def setup(settings=IDEMPOTENT_SETTINGS, environment="development"):
        api.create_workflow("receipt", environment=environment)
        api.create_source(environment=environment, settings=settings, mappings=[TRIGGER])
        endpoint = api.endpoint(environment=environment)

        def post(body):
            assert client.post(endpoint, json=body).status_code == 204
            return api.logs(environment=environment)[0]

        return post

    return setup


def runs(api, environment="development"):
    return api.get("/v1/workflows/receipt/runs", environment=environment).get_json()["entries"]


def test_duplicate_is_logged_as_idempotent_without_actions(send, api):
    post = send()
    first = post({"type": "order.paid", "id": "evt_1"})
    second = post({"type": "order.paid", "id": "evt_1"})
    assert (first["status"], first["idempotent"], len(first["actions"])) == ("processed", False, 1)
    assert (second["status"], second["idempotent"], second["actions"]) == ("idempotent", True, [])
    assert second["idempotency_key"] == "evt_1"
    assert len(runs(api)) == 1


def test_same_key_with_another_event_type_runs(send, api, client):
    post = send()
    post({"type": "order.paid", "id": "evt_1"})
    other = post({"type": "order.refunded", "id": "evt_1"})
    assert other["status"] == "processed"


def test_scope_is_per_source_environment(send, api):
    development = send()
    production = send(environment="production")
    development({"type": "order.paid", "id": "evt_1"})
    assert production({"type": "order.paid", "id": "evt_1"})["status"] == "processed"
    assert len(runs(api)) == 1 and len(runs(api, "production")) == 1


@pytest.mark.parametrize("key", [12345, "x" * 256, {"id": "evt"}, ["evt"], "", None, True])
def test_invalid_key_is_dropped_and_the_event_runs(send, api, key):
    post = send()
    first = post({"type": "order.paid", "id": key})
    second = post({"type": "order.paid", "id": key})
    assert first["idempotency_key"] is None and second["idempotency_key"] is None
    assert first["status"] == second["status"] == "processed"
    assert len(runs(api)) == 2


def test_key_of_255_characters_is_valid(send):
    post = send()
    post({"type": "order.paid", "id": "k" * 255})
    assert post({"type": "order.paid", "id": "k" * 255})["status"] == "idempotent"


def test_idempotency_is_off_unless_enforced(send, api):
    post = send(settings={"idempotency_key_path": "body.id"})
    post({"type": "order.paid", "id": "evt_1"})
    assert post({"type": "order.paid", "id": "evt_1"})["status"] == "processed"
    assert len(runs(api)) == 2


def test_failed_execution_releases_the_key_so_a_redelivery_runs(send, api):
    post = send()
    api.create_workflow("receipt", active=False)
    failed = post({"type": "order.paid", "id": "evt_1"})
    assert failed["status"] == "failed"
    assert failed["actions"][0]["error"].startswith("workflow_inactive")
    api.create_workflow("receipt", active=True)
    assert post({"type": "order.paid", "id": "evt_1"})["status"] == "processed"
    assert post({"type": "order.paid", "id": "evt_1"})["status"] == "idempotent"
    assert len(runs(api)) == 1


def test_key_expires_after_the_window(send, api, db):
    post = send()
    post({"type": "order.paid", "id": "evt_1"})
    IdempotencyRecord.update(expires_at=utcnow() - timedelta(seconds=1)).execute()
    assert post({"type": "order.paid", "id": "evt_1"})["status"] == "processed"
    assert len(runs(api)) == 2


@pytest.mark.parametrize("app_config", [{"IDEMPOTENCY_WINDOW_SECONDS": 3600}])
def test_window_is_configurable(send, db):
    post = send()
    post({"type": "order.paid", "id": "evt_1"})
    record = IdempotencyRecord.get()
    assert timedelta(minutes=59) < record.expires_at - record.claimed_at <= timedelta(hours=1, seconds=5)

"""Replaying stored events: ``POST /v1/sources/{key}/replay``, ``GET|DELETE /v1/replays/{id}``, ``flask replay``.

Embedded mode runs a replay in the request; the RQ job is in ``tests/system``.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest

from knock_sources.control import replay as replay_service
from knock_sources.state import current_state
from knock_sources.store import utcnow
from knock_sources.store.control import EventLog, Replay
from knock_sources.store.dataplane import WorkflowRun
from plugins.stripe import StripeProvider
from tests.support.replays import replay, replayed

TRIGGER = {
    "event_type": "invoice.paid",
    "action_type": "workflows_trigger",
    "action_parameters": {"key": "invoice-paid", "recipients": {"value": [{"id": "u1", "name": "Ada"}]}},
}
SECRET = "whsec_" + "c" * 32


def failed_events(api, client, count=3, key="my-source"):
    """Events that failed because the workflow they trigger does not exist yet."""
    api.create_source(key, settings={"event_type_path": "type"}, mappings=[TRIGGER])
    for index in range(count):
        assert client.post(api.endpoint(key), json={"type": "invoice.paid", "n": index}).status_code == 204
    assert [entry["status"] for entry in api.logs(key)] == ["failed"] * count


def test_failed_events_replayed_once_the_workflow_exists(api, client, db):
    failed_events(api, client)
    api.create_workflow("invoice-paid")
    body = replayed(api)
    assert body["state"] == "completed"
    assert (body["total"], body["done"], body["failed"], body["skipped"]) == (3, 3, 0, 0)
    assert body["filter"] == {"statuses": ["failed"]}
    entries = api.logs()
    copies = [entry for entry in entries if entry["replay_of"]]
    assert [entry["status"] for entry in copies] == ["processed"] * 3
    originals = {entry["id"] for entry in entries if not entry["replay_of"]}
    assert {entry["replay_of"] for entry in copies} == originals
    # The originals stay as they were: failed, with their action errors.
    assert all(entry["status"] == "failed" for entry in entries if entry["id"] in originals)
    assert WorkflowRun.select().count() == 3
    progress = api.get(f"/v1/replays/{body['id']}").get_json()
    assert progress["state"] == "completed" and progress["done"] == 3


def test_dry_run_counts_and_plans_without_writing(api, client, db):
    failed_events(api, client)
    response = replay(api, dry_run=True, limit=2)
    assert response.status_code == 200
    body = response.get_json()
    assert body["count"] == 3 and body["capped"] is False
    assert len(body["events"]) == 2
    planned = body["events"][0]
    assert planned["replayable"] is True and planned["event"] == "invoice.paid"
    assert [action["action_type"] for action in planned["actions"]] == ["workflows_trigger"]
    assert planned["actions"][0]["action_payload"]["recipients"][0]["id"] == "u1"
    assert len(api.logs()) == 3
    assert Replay.select().count() == 0


def test_a_replay_never_replays_its_own_events(api, client, db):
    # The workflow is still missing: every copy fails again and matches the filter.
    failed_events(api, client, count=2)
    body = replayed(api)
    assert (body["done"], body["failed"]) == (2, 2)
    assert len(api.logs()) == 4


def test_idempotency_holds_unless_the_replay_ignores_it(api, client, db):
    settings = {"event_type_path": "type", "idempotency_key_path": "id", "enforce_idempotency": True}
    api.create_workflow("invoice-paid")
    api.create_source(settings=settings, mappings=[TRIGGER])
    assert client.post(api.endpoint(), json={"type": "invoice.paid", "id": "evt_1"}).status_code == 204
    [original] = api.logs()
    dry = replay(api, filter={"ids": [int(original["id"])]}, dry_run=True).get_json()
    assert dry["events"][0]["idempotent"] is True and dry["events"][0]["actions"] == []
    replayed(api, filter={"ids": [int(original["id"])]})
    assert api.logs()[0]["status"] == "idempotent"
    forced = replayed(api, filter={"ids": [int(original["id"])]}, ignore_idempotency=True)
    assert forced["done"] == 1 and api.logs()[0]["status"] == "processed"
    assert WorkflowRun.select().count() == 2


def stripe_source(api, secret):
    api.create_source(
        "stripe",
        provider="stripe",
        settings={"signing_secret": secret},
        mappings=[TRIGGER],
    )


def test_rejected_requests_are_verified_again_with_the_current_secret(api, client, db):
    provider = StripeProvider()
    body = json.dumps({"id": "evt_9", "type": "invoice.paid", "data": {"object": {}}}).encode()
    stripe_source(api, "whsec_" + "x" * 32)
    api.create_workflow("invoice-paid")
    # Signed an hour ago with the secret the source should have had.
    an_hour_ago = int(time.time()) - 3600
    headers = {**provider.sign(body, SECRET, timestamp=an_hour_ago), "Content-Type": "application/json"}
    assert client.post(api.endpoint("stripe"), data=body, headers=headers).status_code == 401
    [rejected] = api.logs("stripe")
    EventLog.update(received_at=utcnow() - timedelta(hours=1)).where(EventLog.id == int(rejected["id"])).execute()
    dry = replay(api, "stripe", filter={"statuses": ["rejected"]}, dry_run=True).get_json()
    assert dry["events"][0]["rejected"] == "signature_mismatch"
    api.put(
        "/v1/sources/stripe",
        {
            "source": {
                "name": "Stripe",
                "environment_settings": {"development": {"settings": {"signing_secret": SECRET}}},
            }
        },
    )
    dry = replay(api, "stripe", filter={"statuses": ["rejected"]}, dry_run=True).get_json()
    assert dry["events"][0]["rejected"] is None
    assert [action["action_status"] for action in dry["events"][0]["actions"]] == ["success"]
    result = replayed(api, "stripe", filter={"statuses": ["rejected"]})
    assert (result["done"], result["failed"]) == (1, 0)
    newest = api.logs("stripe")[0]
    assert newest["status"] == "processed" and newest["replay_of"] == rejected["id"]
    assert newest["verification_status"] == "enforced:verified"


def test_rejected_requests_whose_body_was_not_kept_are_skipped(api, client, app, db):
    stripe_source(api, SECRET)
    big = json.dumps({"type": "invoice.paid", "padding": "x" * 5000})
    assert client.post(api.endpoint("stripe"), data=big, content_type="application/json").status_code == 401
    dry = replay(api, "stripe", filter={"statuses": ["rejected"]}, dry_run=True).get_json()
    assert dry["events"][0]["replayable"] is False and dry["events"][0]["rejected"] == "body_not_stored"
    result = replayed(api, "stripe", filter={"statuses": ["rejected"]})
    assert (result["done"], result["skipped"]) == (0, 1)


def test_the_environment_must_be_named(api, client, db):
    failed_events(api, client, count=1)
    for query in ({}, {"environment": ""}):
        response = api.client.post("/v1/sources/my-source/replay", json={}, headers=api.headers, query_string=query)
        assert response.status_code == 422
        assert response.get_json()["errors"][0] == {
            "field": "environment",
            "in": "query",
            "message": "Name the environment whose events to replay.",
        }


@pytest.mark.parametrize(
    "body",
    [
        {"filter": {"statuses": ["pending"]}},
        {"filter": {"ids": ["one"]}},
        {"filter": {"ids": []}},
        {"filter": {"colour": "red"}},
        {"dry_run": "maybe"},
        {"limit": 0},
    ],
)
def test_bad_filters_get_422(api, client, db, body):
    failed_events(api, client, count=1)
    assert replay(api, **body).status_code == 422


def test_unknown_replays_get_404_and_bad_ids_422(api):
    assert api.get("/v1/replays/12345").status_code == 404
    assert api.get("/v1/replays/abc").status_code == 422
    assert api.delete("/v1/replays/12345").status_code == 404


def test_cancelling_a_finished_replay_leaves_it_finished(api, client, db):
    failed_events(api, client, count=1)
    replay_id = replayed(api)["id"]
    response = api.delete(f"/v1/replays/{replay_id}")
    assert response.status_code == 200 and response.get_json()["state"] == "completed"


def test_a_queued_replay_can_be_cancelled(api, client, app, db):
    failed_events(api, client, count=2)
    with app.app_context():
        state = current_state()
        source_env = EventLog.select().first().source_environment
        created = replay_service.create(state, source_env, {"statuses": ["failed"]}, False)
    assert api.delete(f"/v1/replays/{created.id}").get_json()["state"] == "cancelled"
    with app.app_context():
        finished = replay_service.run(current_state(), created.id)
    assert finished.state == "cancelled" and finished.done == 0


def test_a_crashed_replay_resumes_after_its_last_event(api, client, app, db):
    failed_events(api, client, count=5)
    api.create_workflow("invoice-paid")

    class Crash(Exception):
        pass

    handled = []

    def crash_after_two(count):
        handled.append(count)
        if len(handled) == 2:
            raise Crash()

    with app.app_context():
        state = current_state()
        source_env = EventLog.select().first().source_environment
        created = replay_service.create(state, source_env, {"statuses": ["failed"]}, False)
        with pytest.raises(Crash):
            replay_service.run(state, created.id, progress=crash_after_two)
        finished = replay_service.run(state, created.id)
    assert (finished.state, finished.done, finished.failed) == ("completed", 5, 0)
    assert WorkflowRun.select().count() == 5
    replayed = EventLog.select().where(EventLog.replay_of.is_null(False))
    assert sorted(row.replay_of_id for row in replayed) == sorted(
        row.id for row in EventLog.select().where(EventLog.replay_of.is_null())
    )


def test_flask_replay_dry_run_and_run(api, client, app, db):
    failed_events(api, client, count=2)
    runner = app.test_cli_runner()
    dry = runner.invoke(args=["replay", "my-source", "--environment", "development", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.stdout)["count"] == 2
    api.create_workflow("invoice-paid")
    result = runner.invoke(args=["replay", "my-source", "-e", "development", "--status", "failed"])
    assert result.exit_code == 0, result.output
    assert "2 replayed, 0 failed" in result.stderr
    assert [entry["status"] for entry in api.logs()[:2]] == ["processed", "processed"]


def test_flask_replay_explains_a_missing_source(app):
    result = app.test_cli_runner().invoke(args=["replay", "nope", "--environment", "development"])
    assert result.exit_code != 0
    assert "no source 'nope'" in result.output

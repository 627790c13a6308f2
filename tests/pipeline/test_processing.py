"""Event type, timestamp and known-event resolution in the worker pipeline."""

from datetime import datetime

import pytest

from knock_sources.worker.rules import resolve_timestamp

IDENTIFY = {
    "event_type": "user.signed_up",
    "action_type": "users_identify",
    "action_parameters": {"id": "body.user.id"},
}


def post(client, api, body, headers=None, **source):
    api.create_source(**source)
    response = client.post(api.endpoint(), json=body, headers=headers or {})
    assert response.status_code == 204
    return api.logs()[0]


def test_event_type_defaults_to_body_type(client, api):
    entry = post(client, api, {"type": "order.paid"})
    assert entry["event"] == "order.paid"


def test_event_type_path_can_point_into_the_body(client, api):
    entry = post(client, api, {"event_type": "task.completed"}, settings={"event_type_path": "event_type"})
    assert entry["event"] == "task.completed"


def test_event_type_path_can_point_at_a_header(client, api):
    entry = post(
        client,
        api,
        {"id": 1},
        headers={"X-Shopify-Topic": "orders/create"},
        settings={"event_type_path": "headers.x-shopify-topic"},
    )
    assert entry["event"] == "orders/create"


@pytest.mark.parametrize("body", [{}, {"type": None}, {"type": {"nested": "object"}}, {"type": ""}, {"type": ["a"]}])
def test_unresolvable_event_type_is_unknown_and_runs_no_actions(client, api, body):
    entry = post(client, api, body, settings={}, mappings=[{**IDENTIFY, "event_type": "unknown"}])
    assert entry["event"] == "unknown"
    assert entry["status"] == "processed"
    assert entry["actions"] == []


def test_numeric_event_type_is_used_as_text(client, api):
    assert post(client, api, {"type": 42})["event"] == "42"


def test_known_events_count_and_keep_the_last_sample(client, api):
    api.create_source()
    endpoint = api.endpoint()
    for index in range(3):
        client.post(endpoint, json={"type": "a", "n": index}, headers={"X-Request": str(index)})
    client.post(endpoint, json={"type": "b"})
    events = {e["event"]: e for e in api.get("/v1/sources/my-source/events").get_json()["entries"]}
    assert set(events) == {"a", "b"}
    assert events["a"]["count"] == 3
    assert events["a"]["sample_payload"]["body"] == {"type": "a", "n": 2}
    assert events["a"]["sample_payload"]["headers"]["x-request"] == "2"
    assert events["a"]["last_received_at"] >= events["a"]["first_received_at"]


def test_unknown_event_type_is_not_a_known_event(client, api):
    post(client, api, {"no": "type"})
    assert api.get("/v1/sources/my-source/events").get_json()["entries"] == []


def test_timestamp_path_sets_the_event_time(client, api):
    entry = post(client, api, {"type": "a", "created": 1700000000}, settings={"timestamp_path": "body.created"})
    assert entry["occurred_at"] == "2023-11-14T22:13:20Z"


def test_event_time_defaults_to_ingestion_time(client, api):
    entry = post(client, api, {"type": "a"})
    assert entry["occurred_at"] == entry["inserted_at"]


RECEIVED = datetime(2026, 1, 1, 12, 0, 0)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-05-01T10:00:00Z", datetime(2024, 5, 1, 10, 0, 0)),
        ("2024-05-01T12:00:00+02:00", datetime(2024, 5, 1, 10, 0, 0)),
        ("2024-05-01T10:00:00", datetime(2024, 5, 1, 10, 0, 0)),
        (1714557600, datetime(2024, 5, 1, 10, 0, 0)),
        (1714557600.5, datetime(2024, 5, 1, 10, 0, 0, 500000)),
        ("1714557600", datetime(2024, 5, 1, 10, 0, 0)),
        (1714557600000, datetime(2024, 5, 1, 10, 0, 0)),
        ("yesterday", RECEIVED),
        (None, RECEIVED),
        (True, RECEIVED),
        ({"at": 1}, RECEIVED),
        (10**30, RECEIVED),
    ],
)
def test_resolve_timestamp(value, expected):
    assert resolve_timestamp("body.t", {"body": {"t": value}}, RECEIVED) == expected


def test_missing_timestamp_path_value_uses_the_default():
    assert resolve_timestamp("body.t", {"body": {}}, RECEIVED) == RECEIVED


def test_a_database_failure_mid_event_leaves_it_pending_with_nothing_applied(client, api, db, monkeypatch):
    from peewee import OperationalError

    from knock_sources.store.control import ActionLog, EventLog, KnownEvent
    from knock_sources.worker import batch

    api.create_source(mappings=[IDENTIFY])
    endpoint = api.endpoint()

    def database_gone(*args, **kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    # Fails after the identify action has written its user and action log.
    monkeypatch.setattr(batch, "_finish", database_gone)
    # The event was committed before processing: the sender is told so.
    assert client.post(endpoint, json={"type": "user.signed_up", "user": {"id": "u1"}}).status_code == 204
    [event] = EventLog.select()
    assert event.status == "pending"
    assert ActionLog.select().count() == 0
    assert KnownEvent.select().count() == 0
    assert api.get("/v1/users/u1").status_code == 404

    monkeypatch.undo()
    # Embedded mode has no worker: the web process sweeps once per interval.
    client.application.config.update(SWEEP_INTERVAL_SECONDS=0, SWEEP_GRACE_SECONDS=0)
    client.post(endpoint, json={"type": "user.signed_up", "user": {"id": "u2"}})
    assert [e.status for e in EventLog.select().order_by(EventLog.id)] == ["processed", "processed"]
    assert api.get("/v1/users/u1").status_code == 200

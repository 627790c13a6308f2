"""``GET /healthz`` in embedded mode, and the sweeper of the web process."""

from datetime import timedelta

from knock_sources.store import PENDING, utcnow
from knock_sources.store.control import EventLog
from knock_sources.worker import jobs


def test_healthz_reports_database_queue_and_an_empty_backlog(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {
        "status": "ok",
        "checks": {"database": "ok", "pending": "ok", "queue": "embedded", "workers": "embedded"},
        "pending": {"count": 0, "capped": False, "oldest_age_seconds": None},
    }


def test_healthz_is_degraded_when_the_oldest_pending_event_is_too_old(app, client, api, db):
    api.create_source()
    client.post(api.endpoint(), json={"type": "a"})
    client.post(api.endpoint(), json={"type": "b"})
    # Left pending (a process died mid-event), two and ten minutes ago.
    for event, minutes in zip(EventLog.select().order_by(EventLog.id), (10, 2), strict=True):
        event.status, event.received_at = PENDING, utcnow() - timedelta(minutes=minutes)
        event.save()
    app.config["HEALTHZ_MAX_PENDING_AGE_SECONDS"] = 300
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "degraded"
    assert body["checks"]["pending"] == "stalled"
    assert body["pending"]["count"] == 2
    assert 600 <= body["pending"]["oldest_age_seconds"] < 3600
    app.config["HEALTHZ_MAX_PENDING_AGE_SECONDS"] = 3600
    assert client.get("/healthz").status_code == 200


def test_one_webhook_request_sweeps_a_bounded_part_of_the_backlog(app, client, api, db):
    api.create_source()
    endpoint = api.endpoint()
    for number in range(25):
        client.post(endpoint, json={"type": "backlog", "n": number})
    # Twenty-five events other senders left pending.
    EventLog.update(status=PENDING, received_at=utcnow() - timedelta(minutes=5), event_type=None).execute()
    app.config.update(SWEEP_INTERVAL_SECONDS=0, SWEEP_GRACE_SECONDS=0)
    client.post(endpoint, json={"type": "fresh"})
    statuses = [event.status for event in EventLog.select().order_by(EventLog.id)]
    assert statuses == ["processed"] * jobs.EMBEDDED_SWEEP_BATCH + [PENDING] * 15 + ["processed"]
    client.post(endpoint, json={"type": "fresh"})
    assert EventLog.select().where(EventLog.status == PENDING).count() == 15 - jobs.EMBEDDED_SWEEP_BATCH

"""``GET /metrics``: what the pipeline counts, the cached backlog gauges, and who may read them."""

from __future__ import annotations

import time

import pytest

from knock_sources.store import PENDING
from knock_sources.store.control import EventLog, SourceEnvironment
from tests.support.metrics import value
from tests.support.tracking import post_call, track, write_key

TOKEN = "metrics-token-for-tests"
TRIGGER = {
    "event_type": "order.paid",
    "action_type": "workflows_trigger",
    "action_parameters": {"key": "receipt", "recipients": {"value": ["u1"]}},
}


@pytest.fixture
def app_config():
    return {"METRICS_TOKEN": TOKEN, "METRICS_BIND": "127.0.0.1:9464", "METRICS_SAMPLE_SECONDS": 0.1}


def scrape(client, **headers):
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}", **headers})
    assert response.status_code == 200, response.data
    assert response.mimetype == "text/plain"
    return response.get_data(as_text=True)


def test_metrics_are_not_served_without_the_token_on_the_public_address(client):
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert "knock_sources_build_info" in scrape(client)


def test_the_metrics_listener_needs_no_token(client):
    response = client.get("/metrics", environ_overrides={"SERVER_PORT": "9464"})
    assert response.status_code == 200
    assert b"knock_sources_build_info" in response.data


@pytest.mark.parametrize("app_config", [{}], indirect=False)
def test_by_default_metrics_do_not_exist_on_the_ingest_host(client):
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 404
    assert response.get_json()["code"] == "not_found"


def test_ingest_outcomes_are_counted_by_source_environment_and_reason(client, api):
    api.create_source("counted", mappings=[TRIGGER])
    endpoint = api.endpoint("counted")
    before = scrape(client)
    assert client.post(endpoint, json={"type": "order.paid"}).status_code == 204
    assert client.post(endpoint, json={"type": "order.paid"}).status_code == 204
    assert client.post(endpoint, data="{not json", content_type="application/json").status_code == 400
    assert client.post("/integrations/receive/no-such-token", json={}).status_code == 404
    after = scrape(client)

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    labels = {"source": "counted", "environment": "development"}
    assert delta("knock_sources_ingest_requests_total", outcome="accepted", **labels) == 2
    assert delta("knock_sources_ingest_requests_total", outcome="malformed_json", **labels) == 1
    assert delta("knock_sources_ingest_requests_total", outcome="source_missing", source="", environment="") == 1
    assert delta("knock_sources_ingest_duration_seconds_count", route="receive") == 4
    # The workflow does not exist: the events fail, the dead letter.
    assert delta("knock_sources_events_processed_total", status="failed", **labels) == 2
    assert delta("knock_sources_actions_total", action_type="workflows_trigger", status="error") == 2
    assert delta("knock_sources_event_latency_seconds_count") == 2


def test_script_runs_are_counted_by_outcome(client, api):
    throwing = "function main(ctx) { throw new Error('nope'); }"
    api.create_source(
        "scripted", settings={"preprocess_script": {"source": "function main(ctx) { return {verified: true}; }"}}
    )
    api.create_source("throwing", settings={"preprocess_script": {"source": throwing}})
    before = scrape(client)
    assert client.post(api.endpoint("scripted"), json={"type": "a"}).status_code == 204
    assert client.post(api.endpoint("throwing"), json={"type": "a"}).status_code == 204
    after = scrape(client)
    for outcome in ("ok", "runtime"):
        name = "knock_sources_script_runs_total"
        assert value(after, name, outcome=outcome) - value(before, name, outcome=outcome) == 1
    count = "knock_sources_script_duration_seconds_count"
    assert value(after, count) - value(before, count) == 2


def test_backlog_gauges_come_from_a_background_sample(client, api, db):
    api.create_source("backlog")
    source_env = SourceEnvironment.select().first()
    EventLog.create(source_environment=source_env, status=PENDING, body={}, headers={})
    deadline = time.monotonic() + 30
    while True:
        text = scrape(client)
        if value(text, "knock_sources_pending_events") == 1:
            break
        assert time.monotonic() < deadline, text
        time.sleep(0.05)
    assert value(text, "knock_sources_oldest_pending_age_seconds") >= 0
    # Embedded mode: no RQ workers to count.
    assert "knock_sources_workers" not in text
    assert value(text, "knock_sources_replays", state="running") == 0


def test_tracking_calls_are_counted_with_sdk_retries_as_idempotent(client, api):
    api.create_source("seg", provider="segment")
    key = write_key(api, "seg")
    before = scrape(client)
    call = {**track("Signed Up", message_id="m-1"), "writeKey": key}
    for _ in range(2):
        assert post_call(client, "track", call).status_code == 200
    assert post_call(client, "track", {"writeKey": "not-a-key", **track("x")}).status_code == 401
    after = scrape(client)

    def delta(**labels):
        name = "knock_sources_ingest_requests_total"
        return value(after, name, **labels) - value(before, name, **labels)

    labels = {"source": "seg", "environment": "development"}
    assert delta(outcome="accepted", **labels) == 1
    assert delta(outcome="idempotent", **labels) == 1
    assert delta(outcome="invalid_write_key", source="", environment="") == 1
    count = "knock_sources_ingest_duration_seconds_count"
    assert value(after, count, route="segment") - value(before, count, route="segment") == 3

"""Plain values: ingest and processing run without a Flask app; a missing provider fails closed."""

import io
import json

import pytest

from knock_sources import ingest, store
from knock_sources.config import DEFAULTS
from knock_sources.control import sources
from knock_sources.errors import SignatureError
from knock_sources.state import KnockSources
from knock_sources.store import PENDING, PROCESSED, schema
from knock_sources.store.control import Environment, EventLog, SourceEnvironment
from knock_sources.store.dataplane import User
from knock_sources.worker import processing
from tests.support import Api, make_app, reset_database, stop_dispatcher


@pytest.fixture
def plain_state(database_url):
    """A ``KnockSources`` built from configuration alone, with no Flask app anywhere."""
    config = {**DEFAULTS, "DATABASE_URL": database_url, "LOAD_PLUGIN_ENTRYPOINTS": False, "SECRET_KEY": "k"}
    store.db.initialize(schema.make_database(database_url))
    schema.migrate(config["ENVIRONMENTS"])
    with store.db.connection_context():
        yield KnockSources.from_config(config)
    reset_database()


def _delivery(body: dict) -> ingest.Delivery:
    raw = json.dumps(body).encode()
    return ingest.Delivery(
        headers={"content-type": "application/json"},
        stream=io.BytesIO(raw),
        content_length=len(raw),
        mimetype="application/json",
        remote_ip="203.0.113.7",
    )


def _create_custom_source(state, key="plain"):
    body = {"name": key, "description": None, "preconfigured_provider": None, "environment_settings": {}}
    source = sources.upsert_source(state, key, body)
    development = Environment.get(slug="development")
    return SourceEnvironment.get(source=source, environment=development).token


def test_receive_and_process_with_plain_values(plain_state):
    token = _create_custom_source(plain_state)
    body = {"type": "user.identified", "user_id": "u-1", "email": "ada@example.com"}
    event_log_id = ingest.receive(plain_state, token, _delivery(body))
    event = EventLog.get_by_id(event_log_id)
    assert (event.status, event.event_type, event.remote_ip) == (PROCESSED, "user.identified", "203.0.113.7")
    assert User.get(external_id="u-1").email == "ada@example.com"


def test_receive_refuses_an_unsigned_request_to_a_signed_provider(plain_state):
    body = {"name": "s", "description": None, "preconfigured_provider": "stripe", "environment_settings": {}}
    source = sources.upsert_source(plain_state, "billing", body)
    token = SourceEnvironment.get(source=source, environment=Environment.get(slug="development")).token
    with pytest.raises(SignatureError) as caught:
        ingest.receive(plain_state, token, _delivery({"type": "invoice.paid"}))
    assert caught.value.status == 401
    assert EventLog.get().status == "rejected"


def test_a_pending_event_whose_provider_plugin_is_gone_still_finishes(plain_state):
    token = _create_custom_source(plain_state)
    source_env = SourceEnvironment.get(token=token)
    event = EventLog.create(source_environment=source_env, status=PENDING, body={"type": "user.identified"}, headers={})
    without_custom_http = KnockSources.from_config({**plain_state.config, "DISABLED_PLUGINS": ["plugins.custom_http"]})
    assert "custom_http" not in without_custom_http.registry.providers
    processing.process(event.id, without_custom_http.registry, without_custom_http.config, without_custom_http.metrics)
    event = EventLog.get_by_id(event.id)
    assert event.status != PENDING
    assert "internal error" not in (event.error or "")
    assert event.event_type == "user.identified"


def test_rehearse_fails_closed_when_the_provider_is_not_installed(app, api, database_url):
    api.create_source("billing", provider="stripe")
    without_stripe = make_app(database_url, DISABLED_PLUGINS=["plugins.stripe"])
    try:
        with without_stripe.test_client() as client:
            key = api.headers["Authorization"].removeprefix("Bearer ")
            response = Api(client, key).request(
                "POST", "/v1/sources/billing/rehearse", json={"payload": {"body": {"type": "invoice.paid"}}}
            )
        assert response.status_code == 200
        body = response.get_json()
        assert body["status"] == "error"
        assert body["verification_status"] == "enforced:unverified"
        assert {"field": "verification", "message": "The 'stripe' provider is not installed."} in body["errors"]
    finally:
        stop_dispatcher(without_stripe)

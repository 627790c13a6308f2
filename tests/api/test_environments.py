"""Environments: the default of ``?environment=``, reads that never write, environments added later."""

import pytest

from knock_sources import store
from knock_sources.store.control import Mapping, SourceEnvironment
from tests.support import Api, make_app, stop_dispatcher


@pytest.fixture
def app_config():
    return {"ENVIRONMENTS": ["staging", "production"]}


def test_calls_without_environment_use_the_first_configured_one(api):
    api.put("/v1/sources/tasks", {"source": {"name": "Tasks"}})
    body = api.get("/v1/sources/tasks").get_json()
    assert list(body["environment_settings"]) == ["staging"]
    assert api.get("/v1/sources/tasks", environment="development").status_code == 404


def test_a_new_environment_gets_the_providers_defaults_from_init_db_and_reads_never_create_it(app, api, database_url):
    api.create_source("billing", environment="staging", provider="stripe")
    grown = make_app(database_url, ENVIRONMENTS=["staging", "production", "qa"])
    try:
        with grown.test_client() as client:
            grown_api = Api(client, api.headers["Authorization"].removeprefix("Bearer "))
            missing = grown_api.get("/v1/sources/billing", environment="qa")
            assert missing.status_code == 404
            assert missing.get_json()["code"] == "source_environment_missing"
            assert grown_api.get("/v1/sources/billing/logs", environment="qa").status_code == 404
            with store.db.connection_context():
                assert SourceEnvironment.select().count() == 2

            result = grown.test_cli_runner().invoke(args=["init-db"])
            assert result.exit_code == 0, result.output
            assert "Configured 1 source environments" in result.stderr

            qa = grown_api.get("/v1/sources/billing", environment="qa").get_json()["environment_settings"]["qa"]
            staging = grown_api.get("/v1/sources/billing", environment="staging").get_json()
            staging = staging["environment_settings"]["staging"]
        assert qa["settings"]["idempotency_key_path"] == staging["settings"]["idempotency_key_path"] == "body.id"
        assert qa["settings"]["enforce_idempotency"] is True
        assert [(m["event_type"], m["action_type"]) for m in qa["mappings"]] == [
            (m["event_type"], m["action_type"]) for m in staging["mappings"]
        ]
        with store.db.connection_context():
            assert Mapping.select().count() == 3 * len(staging["mappings"]) > 0
    finally:
        stop_dispatcher(grown)

"""Changing SECRET_KEY: fallbacks that still decrypt, ``flask rotate-secrets``, and secrets no key decrypts.

Several apps share one database here, each with its own keys, the way a
deployment does across a key change.
"""

import json
import logging

import pytest
from playhouse.pool import PooledPostgresqlDatabase

from knock_sources import store
from knock_sources.plugins import make_plugin_manager
from knock_sources.testing import make_secret, raw_json
from tests.support import Api, make_app

STRIPE = next(
    provider
    for provided in make_plugin_manager(load_entrypoints=False).hook.register_providers()
    for provider in provided
    if provider.slug == "stripe"
)
OLD_KEY, NEW_KEY = "old-secret-key", "new-secret-key"


@pytest.fixture
def app_config():
    return {"SECRET_KEY": OLD_KEY}


@pytest.fixture
def deploy(database_url, api_key):
    """Start the app again on the same database with other keys; returns its authenticated API."""

    def start(secret_key, fallbacks=()):
        previous = store.db.obj
        app = make_app(database_url, SECRET_KEY=secret_key, SECRET_KEY_FALLBACKS=list(fallbacks))
        if isinstance(previous, PooledPostgresqlDatabase):
            # The shared proxy now points at the new app's pool.
            previous.close_all()
        return app, Api(app.test_client(), api_key)

    return start


@pytest.fixture
def secret():
    return make_secret()


@pytest.fixture
def stored(api, secret):
    """A Stripe source and a secret variable read by a custom source's enforced script, under the old key."""
    api.create_source("billing", provider="stripe", settings={"signing_secret": secret})
    response = api.put("/v1/variables/HOOK_SECRET", {"variable": {"value": "hook-secret", "secret": True}})
    assert response.status_code == 200
    script = "function main(ctx) { return {verified: ctx.vars.HOOK_SECRET === 'hook-secret'}; }"
    api.create_source("tasks", settings={"preprocess_script": {"source": script}, "enforce_verification": True})
    return api


def send_stripe(api, secret):
    raw = raw_json({"id": "evt_1", "type": "invoice.paid", "data": {"object": {"customer": "cus_1"}}})
    return api.client.post(
        api.endpoint("billing"), data=raw, headers=STRIPE.sign(raw, secret), content_type="application/json"
    )


def send_task(api):
    return api.client.post(api.endpoint("tasks"), json={"type": "task"})


def summary(api, key):
    return api.get(f"/v1/sources/{key}").get_json()["environment_settings"]["development"]["verification"]


def test_a_changed_key_reports_secrets_as_undecryptable_never_missing(stored, deploy, secret, caplog):
    _, api = deploy(NEW_KEY)
    with caplog.at_level(logging.ERROR, logger="knock_sources"):
        for _ in range(2):
            refused = send_stripe(api, secret)
            assert refused.status_code == 401
            assert refused.get_json()["code"] == "secret_undecryptable"
        assert send_task(api).status_code == 401
    [entry, _] = api.logs("billing")
    assert (entry["status"], entry["reason"]) == ("rejected", "secret_undecryptable")
    assert "SECRET_KEY_FALLBACKS" in entry["error"]
    [task] = api.logs("tasks")
    assert task["reason"] == "secret_undecryptable" and "HOOK_SECRET" in task["error"]
    verification = summary(api, "billing")
    assert verification["accepts_requests"] is False
    assert verification["problem"]["code"] == "secret_undecryptable"
    assert verification["secrets"]["undecryptable"] == 1
    [variable] = api.get("/v1/variables").get_json()["entries"]
    assert variable["undecryptable"] is True
    # Logged once per secret and process, not once per request.
    lines = [r.getMessage() for r in caplog.records if "cannot be decrypted" in r.getMessage()]
    assert len(lines) == 2, lines
    assert secret not in json.dumps(lines) and "hook-secret" not in json.dumps(lines)


def test_fallback_keys_still_decrypt_and_rotate_secrets_moves_everything_to_the_new_key(stored, deploy, secret):
    app, api = deploy(NEW_KEY, fallbacks=[OLD_KEY])
    assert send_stripe(api, secret).status_code == 204
    assert send_task(api).status_code == 204
    assert summary(api, "billing")["accepts_requests"] is True
    result = app.test_cli_runner().invoke(args=["rotate-secrets"])
    assert result.exit_code == 0, result.output
    # One signing secret and one secret variable value.
    assert "Re-encrypted 2 secrets" in result.stderr
    _, api = deploy(NEW_KEY)
    assert send_task(api).status_code == 204
    assert summary(api, "billing")["accepts_requests"] is True
    assert [e["status"] for e in api.logs("tasks")] == ["processed", "processed"]


def test_rotate_secrets_names_what_it_could_not_decrypt(stored, deploy):
    app, _ = deploy(NEW_KEY)
    result = app.test_cli_runner().invoke(args=["rotate-secrets"])
    assert result.exit_code == 1
    assert "2 secrets cannot be decrypted" in result.output
    assert "SECRET_KEY_FALLBACKS" in result.output
    # Left as they were: the old key still reads them.
    old_app, api = deploy(OLD_KEY)
    assert send_task(api).status_code == 204


def test_an_undecryptable_shared_secret_never_lets_requests_through_unverified(api, deploy):
    api.create_source("shared", settings={"signing_secret": "shared-secret"})
    _, later = deploy(NEW_KEY)
    # Without the secret the source would look unsigned; it must refuse instead.
    response = later.client.post(later.endpoint("shared"), json={"type": "a"}, headers={"X-Webhook-Secret": "guess"})
    assert response.status_code == 401
    assert response.get_json()["code"] == "secret_undecryptable"
    assert later.client.post(later.endpoint("shared"), json={"type": "a"}).status_code == 401
    assert summary(later, "shared")["method"] == "shared_secret"


def test_a_secret_set_after_the_key_change_works_again(stored, deploy, secret):
    _, api = deploy(NEW_KEY)
    api.put(
        "/v1/sources/billing",
        {"source": {"name": "B", "environment_settings": {"development": {"settings": {"signing_secret": secret}}}}},
    )
    # The replaced, undecryptable secret had no expiry, so it is gone.
    assert summary(api, "billing")["secrets"] == {
        "count": 1,
        "usable": 1,
        "expired": 0,
        "undecryptable": 0,
        "expires_at": [None],
    }
    assert send_stripe(api, secret).status_code == 204

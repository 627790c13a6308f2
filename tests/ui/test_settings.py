"""A source environment's settings through the test client: secret rotation, checks, paths, the script."""

from __future__ import annotations

import json

import pytest

from knock_sources.store.control import Source, SourceEnvironment
from tests.support.dashboard import create_admin, post_form, sign_in

SETTINGS = "/development/sources/billing/settings"
FIRST, SECOND, THIRD = "whsec_first_" + "a" * 20, "whsec_second_" + "b" * 20, "whsec_third_" + "c" * 20


@pytest.fixture
def admin(app, client, api):
    """Signed in, with a Stripe source ``billing`` whose development secret is ``FIRST``."""
    create_admin(app)
    sign_in(client)
    api.create_source("billing", provider="stripe", settings={"signing_secret": FIRST})
    return client


def stored_secrets(db):
    source_env = SourceEnvironment.get(source=Source.get(key="billing"), environment=1)
    return source_env.signing_secrets


def page(client) -> str:
    response = client.get(SETTINGS)
    assert response.status_code == 200
    return response.get_data(as_text=True)


def test_rotating_the_signing_secret_from_the_page_never_shows_a_secret(admin, db):
    response = post_form(
        admin, SETTINGS, "/development/sources/billing/secrets/replace", {"new_secret": SECOND, "keep_previous": "24"}
    )
    assert response.status_code == 302
    entries = stored_secrets(db)
    assert len(entries) == 2 and entries[0]["expires_at"] is None and entries[1]["expires_at"] is not None
    response = post_form(
        admin,
        SETTINGS,
        "/development/sources/billing/secrets/add",
        {"additional_secret": THIRD, "expires_at": "2999-01-01T00:00"},
    )
    assert response.status_code == 302
    shown = page(admin)
    assert "Secret 3" in shown and "2999-01-01 00:00:00" in shown
    for secret in (FIRST, SECOND, THIRD):
        assert secret not in shown
    assert post_form(admin, SETTINGS, "/development/sources/billing/secrets/0/remove", {}).status_code == 302
    assert len(stored_secrets(db)) == 2
    assert post_form(admin, SETTINGS, "/development/sources/billing/secrets/7/remove", {}).status_code == 404


def test_a_refused_secret_form_does_not_echo_what_was_typed(admin):
    response = post_form(
        admin,
        SETTINGS,
        "/development/sources/billing/secrets/add",
        {"additional_secret": SECOND, "expires_at": "2001-01-01T00:00"},
    )
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert "Choose a time in the future." in body
    assert SECOND not in body


def test_paths_and_idempotency_are_validated_and_saved(admin, api):
    bad = post_form(admin, SETTINGS, "/development/sources/billing/settings/paths", {"event_type_path": "body..type"})
    assert bad.status_code == 422 and "empty segment" in bad.get_data(as_text=True)
    good = post_form(
        admin,
        SETTINGS,
        "/development/sources/billing/settings/paths",
        {"event_type_path": "body.kind", "timestamp_path": ""},
    )
    assert good.status_code == 302
    missing = post_form(admin, SETTINGS, "/development/sources/billing/settings/idempotency", {"enabled": "y"})
    assert missing.status_code == 422 and "needs a key path" in missing.get_data(as_text=True)
    off = post_form(
        admin, SETTINGS, "/development/sources/billing/settings/idempotency", {"idempotency_key_path": "body.id"}
    )
    assert off.status_code == 302
    settings = api.get("/v1/sources/billing").get_json()["environment_settings"]["development"]["settings"]
    assert settings["event_type_path"] == "body.kind" and settings["timestamp_path"] is None
    assert settings["enforce_idempotency"] is False


def test_the_script_editor_tests_on_a_pasted_payload_and_refuses_a_script_that_does_not_compile(admin):
    script = "export function main(ctx) {\n  return {verified: ctx.body.ok === true, plan: ctx.body.plan};\n}\n"
    payload = json.dumps({"body": {"ok": True, "plan": "pro"}, "headers": {}})
    tested = post_form(
        admin,
        SETTINGS,
        "/development/sources/billing/settings/script",
        {"intent": "test", "source": script, "sample": "__pasted__", "payload": payload},
    )
    body = tested.get_data(as_text=True)
    assert tested.status_code == 200
    assert "verified: true" in body and "&#34;plan&#34;: &#34;pro&#34;" in body and "Ran in" in body

    broken = "export function main(ctx) {\n  return {verified: true;\n}\n"
    failed = post_form(
        admin,
        SETTINGS,
        "/development/sources/billing/settings/script",
        {"intent": "test", "source": broken, "sample": "__pasted__", "payload": payload},
    )
    assert "syntax error" in failed.get_data(as_text=True) and "at line 2" in failed.get_data(as_text=True)
    refused = post_form(
        admin, SETTINGS, "/development/sources/billing/settings/script", {"intent": "save", "source": broken}
    )
    assert refused.status_code == 422 and "does not compile" in refused.get_data(as_text=True)
    saved = post_form(
        admin, SETTINGS, "/development/sources/billing/settings/script", {"intent": "save", "source": script}
    )
    assert saved.status_code == 302
    assert "ctx.body.ok === true" in page(admin)

"""``/v1/source_providers``: what a user can create a source from."""


def test_lists_every_installed_provider(api):
    entries = api.get("/v1/source_providers").get_json()["entries"]
    assert [entry["key"] for entry in entries] == [
        "clerk",
        "custom_http",
        "freshpaint",
        "jitsu",
        "legacy_http",
        "posthog",
        "rudderstack",
        "segment",
        "stripe",
        "supabase",
        "workos",
    ]


def test_provider_shows_its_defaults_and_examples(api):
    stripe = api.get("/v1/source_providers/stripe").get_json()
    assert stripe["provider"]["name"] == "Stripe"
    assert stripe["signed"] is True
    assert stripe["default_settings"]["idempotency_key_path"] == "body.id"
    assert stripe["default_settings"]["enforce_idempotency"] is True
    events = {(m["event_type"], m["action_type"]) for m in stripe["default_action_mappings"]}
    assert ("customer.created", "users_identify") in events
    assert ("invoice.paid", "workflows_trigger") in events
    assert "invoice.paid" in stripe["example_payloads"]


def test_unsigned_provider_is_marked(api):
    assert api.get("/v1/source_providers/supabase").get_json()["signed"] is False


def test_unknown_provider_is_404(api):
    response = api.get("/v1/source_providers/nope")
    assert response.status_code == 404
    assert response.get_json()["code"] == "provider_missing"


def test_requires_an_api_key(client):
    assert client.get("/v1/source_providers").status_code == 401


def test_source_from_a_provider_gets_its_default_mappings_which_can_be_switched_off(api):
    body = api.create_source("billing", provider="stripe")
    mappings = body["environment_settings"]["development"]["mappings"]
    assert {m["event_type"] for m in mappings} == {"customer.created", "invoice.created", "invoice.paid"}
    switched = [{**m, "active": m["event_type"] != "invoice.created"} for m in mappings]
    env = api.create_source("billing", mappings=switched)["environment_settings"]["development"]
    states = {m["event_type"]: m["active"] for m in env["mappings"]}
    assert states == {"customer.created": True, "invoice.created": False, "invoice.paid": True}
    production = api.get("/v1/sources/billing", environment="production").get_json()
    assert all(m["active"] for m in production["environment_settings"]["production"]["mappings"])

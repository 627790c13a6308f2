"""Each provider's example payloads, signed by the provider, through a real POST.

A source is created from the provider template (its default mappings), the
provider's secret is configured through the API, and every example must be
accepted, resolve to its event type and run exactly its default actions (and
the provider's implicit ones, such as a CDP source's identify handling).
"""

import json
import time

import pytest

from knock_sources.plugins import make_plugin_manager
from knock_sources.testing import make_secret, raw_json

PROVIDERS = {
    provider.slug: provider
    for provided in make_plugin_manager(load_entrypoints=False).hook.register_providers()
    for provider in provided
}
EXAMPLES = [
    pytest.param(slug, event_type, example, id=f"{slug}-{event_type}")
    for slug, provider in sorted(PROVIDERS.items())
    for event_type, examples in provider.example_payloads.items()
    for example in examples
]


def post_signed(client, endpoint, provider, secret, example, **sign_options):
    """POST ``example`` with its headers and the provider's signature headers."""
    raw = raw_json(example["body"])
    headers = {**example.get("headers", {}), **provider.sign(raw, secret, **sign_options)}
    headers.pop("content-type", None)
    return client.post(endpoint, data=raw, headers=headers, content_type="application/json")


@pytest.fixture
def secret():
    """The signing secret configured on the source."""
    return make_secret()


def create_provider_source(api, slug, secret):
    """Create a source from ``slug``'s template, with ``secret`` and every workflow it triggers."""
    api.create_source(slug, provider=slug, settings={"signing_secret": secret})
    for mapping in PROVIDERS[slug].default_mappings:
        if mapping.action_type == "workflows_trigger":
            api.create_workflow(mapping.action_parameters["key"])
    return api.endpoint(slug)


@pytest.mark.parametrize(("slug", "event_type", "example"), EXAMPLES)
def test_example_runs_the_default_actions(client, api, slug, event_type, example, secret):
    provider = PROVIDERS[slug]
    endpoint = create_provider_source(api, slug, secret)
    response = post_signed(client, endpoint, provider, secret, example)
    assert response.status_code == 204, response.get_json()
    [entry] = api.logs(slug)
    assert (entry["event"], entry["status"]) == (event_type, "processed"), json.dumps(entry, indent=1)
    implicit = provider.implicit_mappings(provider.default_settings(), event_type)
    expected = sorted(m.action_type for m in (*provider.default_mappings, *implicit) if m.event_type == event_type)
    assert sorted(action["action_type"] for action in entry["actions"]) == expected
    assert [action["error"] for action in entry["actions"] if action["action_status"] != "success"] == []


def test_stripe_customer_becomes_a_user(client, api, secret):
    endpoint = create_provider_source(api, "stripe", secret)
    post_signed(
        client, endpoint, PROVIDERS["stripe"], secret, PROVIDERS["stripe"].example_payloads["customer.created"][0]
    )
    user = api.get("/v1/users/cus_QH7rNTHwXhmYnB").get_json()
    assert (user["email"], user["name"], user["phone_number"]) == (
        "jenny.rosen@example.com",
        "Jenny Rosen",
        "+14155550123",
    )
    assert user["plan"] == "pro"


def test_stripe_invoice_paid_triggers_its_workflow_for_the_customer(client, api, secret):
    # As in Knock, only an identified recipient gets a run: the customer first.
    stripe = PROVIDERS["stripe"]
    endpoint = create_provider_source(api, "stripe", secret)
    post_signed(client, endpoint, stripe, secret, stripe.example_payloads["customer.created"][0])
    example = stripe.example_payloads["invoice.paid"][0]
    post_signed(client, endpoint, stripe, secret, example)
    [run] = api.get("/v1/workflows/invoice-paid/runs").get_json()["entries"]
    assert run["recipient"]["id"] == "cus_QH7rNTHwXhmYnB"
    assert run["data"] == example["body"]


@pytest.mark.parametrize("slug", ["stripe", "workos", "posthog"])
def test_a_redelivered_event_is_idempotent(client, api, secret, slug):
    provider = PROVIDERS[slug]
    endpoint = create_provider_source(api, slug, secret)
    example = next(iter(provider.example_payloads.values()))[0]
    for _ in range(2):
        assert post_signed(client, endpoint, provider, secret, example).status_code == 204
    assert [entry["status"] for entry in api.logs(slug)] == ["idempotent", "processed"]


def test_clerk_dedups_on_the_svix_message_id(client, api, secret):
    provider = PROVIDERS["clerk"]
    endpoint = create_provider_source(api, "clerk", secret)
    example = provider.example_payloads["user.updated"][0]
    for _ in range(2):
        response = post_signed(client, endpoint, provider, secret, example, msg_id="msg_2g7oRetriedDelivery000000000")
        assert response.status_code == 204
    assert [entry["status"] for entry in api.logs("clerk")] == ["idempotent", "processed"]


@pytest.mark.parametrize("slug", sorted(PROVIDERS))
def test_a_request_signed_with_another_secret_is_401_and_logged(client, api, secret, slug):
    provider = PROVIDERS[slug]
    endpoint = create_provider_source(api, slug, secret)
    response = post_signed(client, endpoint, provider, make_secret(), {"body": {"type": "x"}})
    assert response.status_code == 401
    assert response.get_json()["code"] == "signature_mismatch"
    assert secret not in response.get_data(as_text=True)
    [entry] = api.logs(slug)
    assert (entry["status"], entry["reason"]) == ("rejected", "signature_mismatch")


@pytest.mark.parametrize(("slug", "age"), [("stripe", 3600), ("clerk", 3600), ("workos", 3_600_000)])
def test_a_replayed_old_request_is_401(client, api, secret, slug, age):
    provider = PROVIDERS[slug]
    endpoint = create_provider_source(api, slug, secret)
    example = next(iter(provider.example_payloads.values()))[0]
    now = int(time.time() * (1000 if provider.timestamp_unit == "ms" else 1))
    response = post_signed(client, endpoint, provider, secret, example, timestamp=now - age)
    assert response.status_code == 401
    assert response.get_json()["code"] == "timestamp_out_of_tolerance"


def test_tolerance_setting_reaches_the_verifier(client, api, secret):
    endpoint = create_provider_source(api, "stripe", secret)
    api.create_source("stripe", settings={"tolerance_seconds": 7200})
    example = PROVIDERS["stripe"].example_payloads["customer.created"][0]
    response = post_signed(client, endpoint, PROVIDERS["stripe"], secret, example, timestamp=int(time.time()) - 3600)
    assert response.status_code == 204


@pytest.mark.parametrize("slug", ["stripe", "clerk", "workos"])
def test_a_signed_provider_without_a_secret_accepts_nothing(client, api, slug):
    api.create_source(slug, provider=slug)
    example = next(iter(PROVIDERS[slug].example_payloads.values()))[0]
    response = post_signed(client, api.endpoint(slug), PROVIDERS[slug], make_secret(), example)
    assert response.status_code == 401
    assert response.get_json()["code"] == "secret_missing"


@pytest.mark.parametrize("slug", ["supabase", "posthog"])
def test_an_unsigned_provider_without_a_secret_accepts_unverified(client, api, slug):
    api.create_source(slug, provider=slug)
    example = next(iter(PROVIDERS[slug].example_payloads.values()))[0]
    response = client.post(api.endpoint(slug), json=example["body"])
    assert response.status_code == 204
    [entry] = api.logs(slug)
    assert entry["status"] == "processed"
    assert entry["verification_status"] is None


@pytest.mark.parametrize("slug", ["supabase", "posthog"])
def test_the_shared_secret_is_redacted_from_stored_headers(client, api, secret, slug):
    endpoint = create_provider_source(api, slug, secret)
    example = next(iter(PROVIDERS[slug].example_payloads.values()))[0]
    assert post_signed(client, endpoint, PROVIDERS[slug], secret, example).status_code == 204
    [entry] = api.logs(slug)
    assert secret not in json.dumps(entry)


def test_rotated_secrets_both_verify(client, api, secret):
    old = make_secret()
    api.create_source(
        "stripe",
        provider="stripe",
        settings={
            "signing_secrets": [
                {"secret": old, "expires_at": "2999-01-01T00:00:00Z"},
                {"secret": secret, "expires_at": None},
            ]
        },
    )
    endpoint = api.endpoint("stripe")
    for signing_secret, example in zip(
        (old, secret), PROVIDERS["stripe"].example_payloads["invoice.paid"] * 2, strict=False
    ):
        body = {**example["body"], "id": f"evt_rotation_{signing_secret[-6:]}"}
        response = post_signed(client, endpoint, PROVIDERS["stripe"], signing_secret, {**example, "body": body})
        assert response.status_code == 204


@pytest.mark.parametrize("value", ["", "t=", "t=１７,v1=é", "ÿ" * 2000, "t=1,t=2,v1=00"])
def test_malformed_signature_headers_are_401_not_500(client, api, secret, value):
    endpoint = create_provider_source(api, "stripe", secret)
    response = client.post(
        endpoint,
        data=b"{}",
        content_type="application/json",
        headers={"Stripe-Signature": value.encode("utf-8").decode("latin-1")},
    )
    assert response.status_code == 401

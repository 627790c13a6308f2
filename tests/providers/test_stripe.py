"""Stripe: ``Stripe-Signature`` against stripe-python, the official verifier."""

import hashlib
import hmac
import time

import pytest
import stripe

from knock_sources import paths
from knock_sources.errors import SignatureError
from knock_sources.testing import config_for, make_envelope, raw_json, signed_envelope
from plugins.stripe import StripeProvider

PROVIDER = StripeProvider()
PAYLOAD = raw_json(PROVIDER.example_payloads["invoice.paid"][0]["body"])


def generate_header(payload, secret, *, timestamp=None, scheme="v1", signature=None):
    """Build a header the way stripe-python's own tests and Stripe's docs do."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    if signature is None:
        signed_payload = f"{timestamp}.{payload.decode('utf-8')}"
        signature = hmac.new(secret.encode("utf-8"), signed_payload.encode("utf-8"), hashlib.sha256).hexdigest()
    return f"t={timestamp},{scheme}={signature}"


def verify(header, secret, payload=PAYLOAD, **settings):
    PROVIDER.verify(make_envelope(payload, {"Stripe-Signature": header}), config_for(secret, **settings))


def rejection_code(header, secret, payload=PAYLOAD, **settings):
    with pytest.raises(SignatureError) as excinfo:
        verify(header, secret, payload, **settings)
    return excinfo.value.code


def test_sign_is_accepted_by_stripe_python(secret):
    header = PROVIDER.sign(PAYLOAD, secret)["Stripe-Signature"]
    assert stripe.WebhookSignature.verify_header(PAYLOAD, header, secret, tolerance=300) is True


def test_sign_with_explicit_timestamp_is_accepted_by_stripe_python(secret):
    header = PROVIDER.sign(PAYLOAD, secret, timestamp=int(time.time()) - 10)["Stripe-Signature"]
    assert stripe.WebhookSignature.verify_header(PAYLOAD, header, secret, tolerance=300) is True


def test_stripe_style_header_is_accepted(secret):
    verify(generate_header(PAYLOAD, secret), secret)


def test_stripe_construct_event_parses_the_example_we_sign(secret):
    header = PROVIDER.sign(PAYLOAD, secret)["Stripe-Signature"]
    event = stripe.Webhook.construct_event(PAYLOAD, header, secret)
    assert event.type == "invoice.paid"


def test_any_v1_signature_may_match(secret, other_secret):
    # While a secret is rolled Stripe sends one v1 per secret, the old one first.
    old = generate_header(PAYLOAD, other_secret).split(",")[1]
    verify(f"{generate_header(PAYLOAD, secret)},{old}", secret)
    verify(f"{generate_header(PAYLOAD, other_secret)},{generate_header(PAYLOAD, secret).split(',')[1]}", secret)


def test_v0_signatures_are_ignored(secret):
    header = generate_header(PAYLOAD, secret, scheme="v0")
    assert rejection_code(header, secret) == "signature_missing"


def test_a_valid_v0_does_not_rescue_a_bad_v1(secret):
    good = generate_header(PAYLOAD, secret).split(",")[1].replace("v1=", "v0=")
    header = generate_header(PAYLOAD, secret, signature="0" * 64) + "," + good
    assert rejection_code(header, secret) == "signature_mismatch"


def test_the_key_is_the_whole_whsec_string(secret):
    # Unlike Svix, Stripe does not base64-decode the part after whsec_.
    header = generate_header(PAYLOAD, secret.removeprefix("whsec_"))
    assert rejection_code(header, secret) == "signature_mismatch"


def test_signature_covers_the_timestamp(secret):
    header = generate_header(PAYLOAD, secret)
    timestamp = header.split(",")[0].removeprefix("t=")
    assert rejection_code(header.replace(timestamp, str(int(timestamp) - 1)), secret) == "signature_mismatch"


def test_right_length_wrong_signature_is_rejected(secret):
    assert rejection_code(generate_header(PAYLOAD, secret, signature="a" * 64), secret) == "signature_mismatch"


@pytest.mark.parametrize("age", [301, 3600, -301, -3600])
def test_timestamps_beyond_300_seconds_are_rejected(secret, age):
    header = generate_header(PAYLOAD, secret, timestamp=int(time.time()) - age)
    assert rejection_code(header, secret) == "timestamp_out_of_tolerance"


@pytest.mark.parametrize("age", [290, -290])
def test_timestamps_within_300_seconds_are_accepted(secret, age):
    verify(generate_header(PAYLOAD, secret, timestamp=int(time.time()) - age), secret)


def test_stale_timestamps_agree_with_stripe_python(secret):
    header = generate_header(PAYLOAD, secret, timestamp=int(time.time()) - 400)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(PAYLOAD, header, secret, tolerance=300)
    assert rejection_code(header, secret) == "timestamp_out_of_tolerance"


def test_tolerance_setting_overrides_the_default(secret):
    verify(generate_header(PAYLOAD, secret, timestamp=int(time.time()) - 400), secret, tolerance_seconds=600)


@pytest.mark.parametrize(
    ("header", "code"),
    [
        ("", "signature_missing"),
        ("v1=abc", "signature_malformed"),
        ("t=1700000000", "signature_missing"),
        ("t=now,v1=abc", "signature_malformed"),
        ("t=1700000000;v1=abc", "signature_malformed"),
    ],
)
def test_malformed_headers(secret, header, code):
    assert rejection_code(header, secret) == code


def test_fails_closed_without_a_secret():
    envelope = signed_envelope(PROVIDER, PAYLOAD, "whsec_anything")
    with pytest.raises(SignatureError) as excinfo:
        PROVIDER.verify(envelope, config_for())
    assert excinfo.value.code == "secret_missing"


@pytest.mark.parametrize(
    ("event_type", "action_type", "expected"),
    [
        (
            "customer.created",
            "users_identify",
            {
                "id": "cus_QH7rNTHwXhmYnB",
                "email": "jenny.rosen@example.com",
                "name": "Jenny Rosen",
                "phone_number": "+14155550123",
            },
        ),
        ("invoice.created", "workflows_trigger", {"key": "invoice-created", "recipients": "cus_QH7rNTHwXhmYnB"}),
        ("invoice.paid", "workflows_trigger", {"key": "invoice-paid", "recipients": "cus_QH7rNTHwXhmYnB"}),
    ],
)
def test_default_mappings_resolve_on_the_examples(event_type, action_type, expected):
    [mapping] = [m for m in PROVIDER.default_mappings if m.event_type == event_type]
    scope = {"body": PROVIDER.example_payloads[event_type][0]["body"], "headers": {}}
    resolved = {
        name: paths.resolve_parameter(spec, scope, literal=name == "key").value
        for name, spec in mapping.action_parameters.items()
    }
    assert mapping.action_type == action_type
    assert expected.items() <= resolved.items()


def test_invoice_triggers_send_the_whole_event_as_data():
    for mapping in PROVIDER.default_mappings:
        if mapping.action_type == "workflows_trigger":
            assert mapping.action_parameters["data"] == "body"


def test_default_settings_enforce_idempotency_on_the_event_id():
    settings = PROVIDER.default_settings()
    assert settings["idempotency_key_path"] == "body.id"
    assert settings["enforce_idempotency"] is True
    assert settings["timestamp_path"] == "body.created"

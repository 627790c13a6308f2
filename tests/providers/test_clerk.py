"""Clerk (Svix / Standard Webhooks) against svix-python, the official verifier."""

import base64
import hashlib
import hmac
import time
from datetime import datetime, timezone

import pytest
from svix.webhooks import Webhook, WebhookVerificationError

from knock_sources import paths
from knock_sources.errors import SignatureError
from knock_sources.testing import config_for, make_envelope, raw_json
from plugins.clerk import ClerkProvider

PROVIDER = ClerkProvider()
PAYLOAD = raw_json(PROVIDER.example_payloads["user.created"][0]["body"])
MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"


def svix_headers(secret, *, timestamp=None, msg_id=MSG_ID, prefix="svix", payload=PAYLOAD):
    """Sign with svix-python's own ``Webhook.sign``, as a Svix sender would."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    moment = datetime.fromtimestamp(timestamp, tz=timezone.utc)
    signature = Webhook(secret).sign(msg_id, moment, payload.decode("utf-8"))
    return {f"{prefix}-id": msg_id, f"{prefix}-timestamp": str(timestamp), f"{prefix}-signature": signature}


def verify(headers, *secrets, payload=PAYLOAD, **settings):
    PROVIDER.verify(make_envelope(payload, headers), config_for(*secrets, **settings))


def rejection_code(headers, *secrets, payload=PAYLOAD, **settings):
    with pytest.raises(SignatureError) as excinfo:
        verify(headers, *secrets, payload=payload, **settings)
    return excinfo.value.code


def test_sign_is_accepted_by_svix(secret):
    Webhook(secret).verify(PAYLOAD, PROVIDER.sign(PAYLOAD, secret))


def test_sign_with_explicit_timestamp_and_id_is_accepted_by_svix(secret):
    headers = PROVIDER.sign(PAYLOAD, secret, timestamp=int(time.time()) - 60, msg_id=MSG_ID)
    assert headers["svix-id"] == MSG_ID
    Webhook(secret).verify(PAYLOAD, headers)


def test_sign_generates_svix_style_message_ids(secret):
    first, second = (PROVIDER.sign(PAYLOAD, secret)["svix-id"] for _ in range(2))
    assert first != second
    assert first.startswith("msg_") and len(first) == 31 and first[4:].isalnum()


@pytest.mark.parametrize("prefix", ["svix", "webhook"])
def test_svix_signed_headers_are_accepted(secret, prefix):
    verify(svix_headers(secret, prefix=prefix), secret)


def test_secret_without_whsec_prefix_is_accepted(secret):
    verify(svix_headers(secret), secret.removeprefix("whsec_"))


def test_any_of_several_signatures_may_match(secret, other_secret):
    # During rotation Svix signs with every active secret, space-separated.
    headers = svix_headers(secret)
    headers["svix-signature"] = f"{svix_headers(other_secret)['svix-signature']} {headers['svix-signature']}"
    verify(headers, secret)


def test_unknown_signature_versions_are_skipped(secret):
    headers = svix_headers(secret)
    headers["svix-signature"] = "v1a,bm90IGFuIGVkMjU1MTkgc2lnbmF0dXJl " + headers["svix-signature"]
    verify(headers, secret)


def test_a_valid_signature_under_another_version_is_rejected(secret):
    headers = svix_headers(secret)
    headers["svix-signature"] = headers["svix-signature"].replace("v1,", "v2,")
    assert rejection_code(headers, secret) == "signature_missing"


def test_the_key_is_base64_decoded(secret):
    # Keyed with the raw whsec_ string (Stripe's way), the signature must not match.
    headers = svix_headers(secret)
    to_sign = f"{MSG_ID}.{headers['svix-timestamp']}.".encode() + PAYLOAD
    wrong = base64.b64encode(hmac.new(secret.encode(), to_sign, hashlib.sha256).digest()).decode()
    headers["svix-signature"] = f"v1,{wrong}"
    assert rejection_code(headers, secret) == "signature_mismatch"


@pytest.mark.parametrize("name", ["svix-id", "svix-timestamp"])
def test_signature_covers_id_and_timestamp(secret, name):
    headers = svix_headers(secret)
    headers[name] = {"svix-id": "msg_other", "svix-timestamp": str(int(headers["svix-timestamp"]) - 1)}[name]
    assert rejection_code(headers, secret) == "signature_mismatch"


@pytest.mark.parametrize("age", [301, -301, 86400])
def test_timestamps_beyond_five_minutes_either_way_are_rejected_like_svix(secret, age):
    headers = svix_headers(secret, timestamp=int(time.time()) - age)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(PAYLOAD, headers)
    assert rejection_code(headers, secret) == "timestamp_out_of_tolerance"


@pytest.mark.parametrize("age", [290, -290])
def test_timestamps_within_five_minutes_are_accepted(secret, age):
    verify(svix_headers(secret, timestamp=int(time.time()) - age), secret)


def test_tolerance_setting_overrides_the_default(secret):
    verify(svix_headers(secret, timestamp=int(time.time()) - 600), secret, tolerance_seconds=900)


def test_invalid_base64_secret_is_reported(secret):
    assert rejection_code(svix_headers(secret), "whsec_not base64!") == "secret_invalid"


def test_invalid_secret_next_to_a_valid_one_is_skipped(secret):
    verify(svix_headers(secret), "whsec_not base64!", secret)


def test_sign_refuses_an_invalid_secret():
    with pytest.raises(SignatureError) as excinfo:
        PROVIDER.sign(PAYLOAD, "whsec_not base64!")
    assert excinfo.value.code == "secret_invalid"


def test_incomplete_svix_headers_fall_back_to_webhook_headers(secret):
    headers = svix_headers(secret, prefix="webhook")
    headers["svix-id"] = MSG_ID
    verify(headers, secret)


@pytest.mark.parametrize("missing", ["svix-id", "svix-timestamp", "svix-signature"])
def test_each_header_is_required(secret, missing):
    headers = svix_headers(secret)
    del headers[missing]
    assert rejection_code(headers, secret) == "signature_missing"


@pytest.mark.parametrize("timestamp", ["now", "1.5e9", "-1", "１７００００００００"])
def test_malformed_timestamps(secret, timestamp):
    headers = {**svix_headers(secret), "svix-timestamp": timestamp}
    assert rejection_code(headers, secret) == "signature_malformed"


def test_duplicated_signature_header_still_verifies(secret):
    # Two identical headers arrive joined with ", " (RFC 9110).
    headers = svix_headers(secret)
    headers["svix-signature"] = f"{headers['svix-signature']}, {headers['svix-signature']}"
    verify(headers, secret)


def test_idempotency_key_is_the_svix_message_id(secret):
    example = PROVIDER.example_payloads["user.created"][0]
    scope = {"body": example["body"], "headers": example["headers"]}
    assert paths.resolve(PROVIDER.idempotency_key_path, scope) == example["headers"]["svix-id"]


@pytest.mark.parametrize(
    ("event_type", "action_type", "expected"),
    [
        (
            "user.created",
            "users_identify",
            {
                "id": "user_29w83sxmDNGwOuEthce5gg56FcC",
                "email": "ada@example.org",
                "phone_number": "+14155550199",
                "avatar": "https://img.clerk.com/eyJ0eXBlIjoiZGVmYXVsdCJ9",
                "properties": {"plan": "team"},
            },
        ),
        (
            "organization.updated",
            "tenants_set",
            {"id": "org_2g7nz3QbPbDZGJnmtsp5TrZJ2Xn", "name": "Acme Inc.", "properties": {"tier": "enterprise"}},
        ),
        ("organization.deleted", "tenants_delete", {"id": "org_2g7nz3QbPbDZGJnmtsp5TrZJ2Xn"}),
    ],
)
def test_default_mappings_resolve_on_the_examples(event_type, action_type, expected):
    [mapping] = [m for m in PROVIDER.default_mappings if m.event_type == event_type]
    example = PROVIDER.example_payloads[event_type][0]
    resolved = {name: paths.resolve(spec, example) for name, spec in mapping.action_parameters.items()}
    assert mapping.action_type == action_type
    assert resolved == expected


def test_private_metadata_is_never_mapped():
    for mapping in PROVIDER.default_mappings:
        assert "private_metadata" not in repr(mapping.action_parameters)

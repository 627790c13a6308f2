"""PostHog's Knock destination: track events, idempotency and the optional shared secret."""

import pytest

from knock_sources import paths
from knock_sources.errors import SignatureError
from knock_sources.testing import config_for, make_envelope, raw_json
from plugins.posthog import PostHogProvider

PROVIDER = PostHogProvider()
EXAMPLE = PROVIDER.example_payloads["$identify"][0]
PAYLOAD = raw_json(EXAMPLE["body"])


def test_examples_are_segment_style_track_events():
    for examples in PROVIDER.example_payloads.values():
        body = examples[0]["body"]
        assert body["type"] == "track"
        assert set(body) == {"type", "event", "userId", "properties", "messageId", "timestamp"}


def test_event_type_and_idempotency_key_come_from_the_body():
    scope = {"body": EXAMPLE["body"], "headers": {}}
    assert PROVIDER.event_type(lambda path: paths.resolve(path, scope)) == "$identify"
    assert paths.resolve(PROVIDER.idempotency_key_path, scope) == EXAMPLE["body"]["messageId"]


def test_idempotency_is_enforced_by_default():
    assert PROVIDER.default_settings()["enforce_idempotency"] is True


def test_unverifiable_without_a_secret():
    assert PROVIDER.is_verifiable(config_for()) is False


def test_sign_sends_a_bearer_token(secret):
    assert PROVIDER.sign(PAYLOAD, secret) == {"Authorization": f"Bearer {secret}"}


def test_bearer_token_is_accepted(secret, other_secret):
    envelope = make_envelope(PAYLOAD, {"Authorization": f"Bearer {secret}"})
    PROVIDER.verify(envelope, config_for(other_secret, secret))


@pytest.mark.parametrize(
    ("headers", "code"),
    [({}, "signature_missing"), ({"Authorization": "Bearer wrong"}, "signature_mismatch")],
)
def test_wrong_or_missing_token_is_rejected(secret, headers, code):
    with pytest.raises(SignatureError) as excinfo:
        PROVIDER.verify(make_envelope(PAYLOAD, headers), config_for(secret))
    assert excinfo.value.code == code


def test_secret_header_setting_names_another_header(secret):
    config = config_for(secret, secret_header="x-webhook-secret")
    PROVIDER.verify(make_envelope(PAYLOAD, {"X-Webhook-Secret": secret}), config)


@pytest.mark.parametrize("event_type", ["$identify", "$set"])
def test_identify_and_set_identify_the_user(event_type):
    [mapping] = [m for m in PROVIDER.default_mappings if m.event_type == event_type]
    body = PROVIDER.example_payloads[event_type][0]["body"]
    resolved = {name: paths.resolve(spec, {"body": body}) for name, spec in mapping.action_parameters.items()}
    assert mapping.action_type == "users_identify"
    assert resolved == {
        "id": "user_1042",
        "email": "alan@example.com",
        "name": "Alan Turing",
        "properties": body["properties"],
    }

"""Supabase Database Webhooks: composed event type and the optional shared secret."""

import pytest

from knock_sources import paths
from knock_sources.errors import SignatureError
from knock_sources.testing import config_for, make_envelope, raw_json
from plugins.supabase import SupabaseProvider

PROVIDER = SupabaseProvider()
PAYLOAD = raw_json(PROVIDER.example_payloads["auth.users:INSERT"][0]["body"])


def event_type(body):
    return PROVIDER.event_type(lambda path: paths.resolve(path, {"body": body, "headers": {}}))


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"schema": "auth", "table": "users", "type": "INSERT"}, "auth.users:INSERT"),
        ({"schema": "auth", "table": "users", "type": "UPDATE"}, "auth.users:UPDATE"),
        ({"schema": "public", "table": "orders", "type": "DELETE"}, "public.orders:DELETE"),
    ],
)
def test_event_type_is_schema_table_and_operation(body, expected):
    assert event_type(body) == expected


@pytest.mark.parametrize(
    "body",
    [
        {"table": "users", "type": "INSERT"},
        {"schema": "auth", "type": "INSERT"},
        {"schema": "auth", "table": "users"},
        {"schema": "auth", "table": "users", "type": 1},
        {"schema": "", "table": "users", "type": "INSERT"},
        {"schema": {"name": "auth"}, "table": "users", "type": "INSERT"},
    ],
)
def test_event_type_is_missing_when_a_part_is(body):
    assert event_type(body) is paths.MISSING


def test_there_is_no_single_event_type_path():
    assert PROVIDER.default_settings()["event_type_path"] is None


def test_unverifiable_without_a_secret():
    assert PROVIDER.is_verifiable(config_for()) is False


def test_no_idempotency_by_default():
    settings = PROVIDER.default_settings()
    assert settings["idempotency_key_path"] is None
    assert settings["enforce_idempotency"] is False


def test_sign_sends_a_bearer_token(secret):
    assert PROVIDER.sign(PAYLOAD, secret) == {"Authorization": f"Bearer {secret}"}


@pytest.mark.parametrize("template", ["Bearer {}", "bearer {}", "{}", "  Bearer {}  "])
def test_authorization_header_is_accepted(secret, template):
    PROVIDER.verify(make_envelope(PAYLOAD, {"Authorization": template.format(secret)}), config_for(secret))


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "signature_missing"),
        ({"Authorization": "Bearer wrong"}, "signature_mismatch"),
        ({"X-Webhook-Secret": "{}"}, "signature_missing"),
    ],
)
def test_wrong_or_missing_authorization_is_rejected(secret, headers, code):
    headers = {name: value.format(secret) for name, value in headers.items()}
    with pytest.raises(SignatureError) as excinfo:
        PROVIDER.verify(make_envelope(PAYLOAD, headers), config_for(secret))
    assert excinfo.value.code == code


def test_secret_header_setting_names_another_header(secret):
    config = config_for(secret, secret_header="X-Supabase-Secret")
    PROVIDER.verify(make_envelope(PAYLOAD, {"X-Supabase-Secret": secret}), config)
    with pytest.raises(SignatureError):
        PROVIDER.verify(make_envelope(PAYLOAD, {"Authorization": f"Bearer {secret}"}), config)


@pytest.mark.parametrize("event_type", ["auth.users:INSERT", "auth.users:UPDATE"])
def test_user_rows_identify_users(event_type):
    [mapping] = [m for m in PROVIDER.default_mappings if m.event_type == event_type]
    record = PROVIDER.example_payloads[event_type][0]["body"]["record"]
    scope = {"body": PROVIDER.example_payloads[event_type][0]["body"]}
    resolved = {name: paths.resolve(spec, scope) for name, spec in mapping.action_parameters.items()}
    assert mapping.action_type == "users_identify"
    assert resolved == {
        "id": record["id"],
        "email": record["email"],
        "phone_number": record["phone"],
        "properties": record["raw_user_meta_data"],
    }

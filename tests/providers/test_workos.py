"""WorkOS: ``WorkOS-Signature`` against the workos SDK's webhook verifier."""

import hashlib
import hmac
import time

import pytest
import workos

from knock_sources import paths
from knock_sources.errors import SignatureError
from knock_sources.testing import config_for, make_envelope, raw_json
from plugins.workos import WorkOSProvider

PROVIDER = WorkOSProvider()
PAYLOAD = raw_json(PROVIDER.example_payloads["dsync.user.created"][0]["body"])


@pytest.fixture(scope="module")
def webhooks():
    """The SDK's webhooks resource; building the client makes no request."""
    return workos.WorkOSClient(api_key="sk_test_contract", client_id="client_contract").webhooks


def now_ms():
    return int(time.time() * 1000)


def workos_header(payload, secret, *, timestamp=None, separator=", "):
    """Build the header as WorkOS documents it: ``t=<ms>, v1=<hex of "<t>.<body>">``."""
    timestamp = now_ms() if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{timestamp}.{payload.decode()}".encode(), hashlib.sha256).hexdigest()
    return f"t={timestamp}{separator}v1={digest}"


def verify(header, secret, payload=PAYLOAD, **settings):
    PROVIDER.verify(make_envelope(payload, {"WorkOS-Signature": header}), config_for(secret, **settings))


def rejection_code(header, secret, payload=PAYLOAD, **settings):
    with pytest.raises(SignatureError) as excinfo:
        verify(header, secret, payload, **settings)
    return excinfo.value.code


def test_sign_is_accepted_by_the_workos_sdk(webhooks, secret):
    header = PROVIDER.sign(PAYLOAD, secret)["WorkOS-Signature"]
    webhooks.verify_header(event_body=PAYLOAD, event_signature=header, secret=secret, tolerance=180)


def test_sign_with_explicit_ms_timestamp_is_accepted_by_the_workos_sdk(webhooks, secret):
    header = PROVIDER.sign(PAYLOAD, secret, timestamp=now_ms() - 5_000)["WorkOS-Signature"]
    webhooks.verify_header(event_body=PAYLOAD, event_signature=header, secret=secret)


def test_sdk_verify_event_parses_the_example_we_sign(webhooks, secret):
    header = PROVIDER.sign(PAYLOAD, secret)["WorkOS-Signature"]
    event = webhooks.verify_event(event_body=PAYLOAD, event_signature=header, secret=secret)
    assert event.event == "dsync.user.created"


@pytest.mark.parametrize("separator", [", ", ",", " , ", ",  "])
def test_documented_header_is_accepted_with_any_spacing(secret, separator):
    verify(workos_header(PAYLOAD, secret, separator=separator), secret)


def test_signed_content_uses_the_millisecond_timestamp_as_sent(secret):
    timestamp = now_ms()
    verify(workos_header(PAYLOAD, secret, timestamp=timestamp), secret)
    seconds_signed = workos_header(PAYLOAD, secret, timestamp=timestamp // 1000).split("v1=")[1]
    assert rejection_code(f"t={timestamp}, v1={seconds_signed}", secret) == "signature_mismatch"


def test_a_seconds_timestamp_is_out_of_tolerance(secret):
    header = workos_header(PAYLOAD, secret, timestamp=int(time.time()))
    assert rejection_code(header, secret) == "timestamp_out_of_tolerance"


@pytest.mark.parametrize("age_seconds", [181, -181, 3600])
def test_timestamps_beyond_180_seconds_are_rejected_like_the_sdk(webhooks, secret, age_seconds):
    header = workos_header(PAYLOAD, secret, timestamp=now_ms() - age_seconds * 1000)
    with pytest.raises(ValueError):
        webhooks.verify_header(event_body=PAYLOAD, event_signature=header, secret=secret)
    assert rejection_code(header, secret) == "timestamp_out_of_tolerance"


@pytest.mark.parametrize("age_seconds", [170, -170])
def test_timestamps_within_180_seconds_are_accepted(secret, age_seconds):
    verify(workos_header(PAYLOAD, secret, timestamp=now_ms() - age_seconds * 1000), secret)


def test_tolerance_setting_is_in_seconds(secret):
    verify(workos_header(PAYLOAD, secret, timestamp=now_ms() - 200_000), secret, tolerance_seconds=300)


def test_right_length_wrong_signature_is_rejected(secret):
    # The bug WorkOS fixed in PR #151: a wrong digest of the right length passed.
    header = f"t={now_ms()}, v1={'0' * 64}"
    assert rejection_code(header, secret) == "signature_mismatch"


@pytest.mark.parametrize(
    ("header", "code"),
    [
        ("", "signature_missing"),
        ("v1=abc", "signature_malformed"),
        ("t=1717689600000", "signature_missing"),
        ("t=1717689600000 v1=abc", "signature_malformed"),
        ("t=1717689600.5, v1=abc", "signature_malformed"),
    ],
)
def test_malformed_headers(secret, header, code):
    assert rejection_code(header, secret) == code


@pytest.mark.parametrize(
    ("event_type", "action_type", "expected"),
    [
        (
            "dsync.user.created",
            "users_identify",
            {"id": "directory_user_01E1X1B89NH8Z3SDFJR4H7RGX7", "email": "lela.block@foo-corp.com"},
        ),
        (
            "dsync.group.created",
            "objects_set",
            {
                "collection": "directory_groups",
                "id": "directory_group_01E1X5GPMMXF4T1DCERMVEEPVW",
                "name": "Developers",
            },
        ),
        (
            "dsync.group.deleted",
            "objects_delete",
            {"collection": "directory_groups", "id": "directory_group_01E1X5GPMMXF4T1DCERMVEEPVW"},
        ),
        (
            "dsync.group.user_added",
            "objects_subscribe",
            {
                "collection": "directory_groups",
                "id": "directory_group_01E1X5GPMMXF4T1DCERMVEEPVW",
                "recipients": "directory_user_01E1X1B89NH8Z3SDFJR4H7RGX7",
            },
        ),
        (
            "dsync.group.user_removed",
            "objects_unsubscribe",
            {
                "collection": "directory_groups",
                "id": "directory_group_01E1X5GPMMXF4T1DCERMVEEPVW",
                "recipients": "directory_user_01E1X1B89NH8Z3SDFJR4H7RGX7",
            },
        ),
        (
            "dsync.user.deleted",
            "workflows_trigger",
            {"key": "directory-user-deleted", "recipients": "directory_user_01E1X1B89NH8Z3SDFJR4H7RGX7"},
        ),
        (
            "connection.activated",
            "workflows_trigger",
            {"key": "sso-connection-activated", "recipients": "org_01EZTR6WYX1A0DSE2CYMGXQ24Y"},
        ),
        (
            "connection.deactivated",
            "workflows_trigger",
            {"key": "sso-connection-deactivated", "recipients": "org_01EZTR6WYX1A0DSE2CYMGXQ24Y"},
        ),
    ],
)
def test_default_mappings_resolve_on_the_examples(event_type, action_type, expected):
    [mapping] = [m for m in PROVIDER.default_mappings if m.event_type == event_type]
    scope = {"body": PROVIDER.example_payloads[event_type][0]["body"], "headers": {}}
    resolved = {
        name: paths.resolve_parameter(spec, scope, literal=name in {"key", "collection"}).value
        for name, spec in mapping.action_parameters.items()
    }
    assert mapping.action_type == action_type
    assert expected.items() <= resolved.items()


def test_every_preconfigured_event_has_a_default_mapping():
    documented = {
        "dsync.user.created",
        "dsync.user.updated",
        "dsync.user.deleted",
        "dsync.group.created",
        "dsync.group.updated",
        "dsync.group.deleted",
        "dsync.group.user_added",
        "dsync.group.user_removed",
        "connection.activated",
        "connection.deactivated",
    }
    assert {mapping.event_type for mapping in PROVIDER.default_mappings} == documented

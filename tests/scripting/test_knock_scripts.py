"""Knock's own scripts (the default, the seeds' examples) running as published."""

import hashlib
import hmac
import json

import pytest

from tests.support.scripts import (
    KNOCK_DEFAULT_SCRIPT,
    SECRET,
    STRIPE_STYLE_SCRIPT,
    make_ctx,
    run,
)

# --- Knock's scripts --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "variables, headers, verified",
    [
        ({"CUSTOM_HTTP_SIGNING_SECRET": SECRET}, {"x-webhook-secret": SECRET}, True),
        ({"CUSTOM_HTTP_SIGNING_SECRET": SECRET}, {"x-webhook-secret": "wrong"}, False),
        ({"CUSTOM_HTTP_SIGNING_SECRET": SECRET}, {}, False),
        ({}, {"x-webhook-secret": SECRET}, False),
    ],
    ids=["matching", "wrong secret", "no header", "no variable"],
)
def test_knock_default_script(runner, variables, headers, verified):
    result = run(runner, KNOCK_DEFAULT_SCRIPT, make_ctx(headers=headers, variables=variables))
    assert result == {"verified": verified}


def stripe_header(raw_body, secret, timestamp=1700000000):
    digest = hmac.new(secret.encode(), f"{timestamp}.{raw_body}".encode(), hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def test_hmac_script_verifies_a_python_signature(runner):
    body = {"id": "evt_1", "type": "customer.created", "data": {"object": {"name": "Zoë"}}}
    raw = json.dumps(body, ensure_ascii=False)
    ctx = make_ctx(
        body=body,
        raw_body=raw,
        variables={"STRIPE_SIGNING_SECRET": SECRET},
        headers={"stripe-signature": stripe_header(raw, SECRET)},
    )
    result = run(runner, STRIPE_STYLE_SCRIPT, ctx)
    assert result["verified"] is True
    assert result["expected"] == stripe_header(raw, SECRET).split("v1=")[1]
    assert result["event_type"] == "customer.created"


def test_hmac_script_rejects_a_tampered_body(runner):
    raw = json.dumps({"type": "customer.created"})
    ctx = make_ctx(
        raw_body=raw.replace("created", "deleted"),
        variables={"STRIPE_SIGNING_SECRET": SECRET},
        headers={"stripe-signature": stripe_header(raw, SECRET)},
    )
    assert run(runner, STRIPE_STYLE_SCRIPT, ctx)["verified"] is False

"""Stripe webhooks, signed with ``Stripe-Signature``.

Signature scheme: https://docs.stripe.com/webhooks#verify-manually
Event objects: https://docs.stripe.com/api/events/object
"""

from knock_sources import signing
from knock_sources.hookspecs import hookimpl
from knock_sources.providers import DefaultMapping, Provider

SIGNATURE_HEADER = "Stripe-Signature"


def _invoice_trigger(event_type, workflow_key):
    return DefaultMapping(
        event_type=event_type,
        action_type="workflows_trigger",
        action_parameters={
            "key": workflow_key,
            "recipients": "body.data.object.customer",
            "data": "body",
        },
    )


def _examples(*events):
    """Build ``example_payloads`` from ``(event id, type, created, object)`` in Stripe's envelope."""
    examples = {}
    for event_id, event_type, created, data_object in events:
        body = {
            "id": event_id,
            "object": "event",
            "api_version": "2024-06-20",
            "created": created,
            "data": {"object": data_object},
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": "req_Kf9BQd4sXBoYtW", "idempotency_key": None},
            "type": event_type,
        }
        headers = {
            "content-type": "application/json; charset=utf-8",
            "user-agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        }
        examples[event_type] = [{"body": body, "headers": headers}]
    return examples


_CUSTOMER = {
    "id": "cus_QH7rNTHwXhmYnB",
    "object": "customer",
    "address": None,
    "balance": 0,
    "created": 1717689000,
    "currency": None,
    "delinquent": False,
    "description": None,
    "email": "jenny.rosen@example.com",
    "invoice_prefix": "8A2B3C4D",
    "livemode": False,
    "metadata": {"plan": "pro", "account_id": "acct_42"},
    "name": "Jenny Rosen",
    "phone": "+14155550123",
    "preferred_locales": ["en"],
    "tax_exempt": "none",
}


def _invoice(status, amount_paid, paid_at):
    return {
        "id": "in_1PQxDnLkdIwHu7ixYzFjZ0aS",
        "object": "invoice",
        "account_country": "US",
        "amount_due": 2000,
        "amount_paid": amount_paid,
        "amount_remaining": 2000 - amount_paid,
        "billing_reason": "subscription_create",
        "collection_method": "charge_automatically",
        "created": 1717689600,
        "currency": "usd",
        "customer": "cus_QH7rNTHwXhmYnB",
        "customer_email": "jenny.rosen@example.com",
        "customer_name": "Jenny Rosen",
        "hosted_invoice_url": "https://invoice.stripe.com/i/acct_1Nv0FGQ9RKHgCVdK/test_YWNjdF8x",
        "lines": {
            "object": "list",
            "data": [
                {
                    "id": "il_1PQxDnLkdIwHu7ixfK3d9m2Q",
                    "object": "line_item",
                    "amount": 2000,
                    "currency": "usd",
                    "description": "1 × Pro plan (at $20.00 / month)",
                    "quantity": 1,
                }
            ],
            "has_more": False,
            "total_count": 1,
            "url": "/v1/invoices/in_1PQxDnLkdIwHu7ixYzFjZ0aS/lines",
        },
        "livemode": False,
        "metadata": {},
        "number": "8A2B3C4D-0001",
        "status": status,
        "status_transitions": {"finalized_at": 1717689605, "paid_at": paid_at},
        "subscription": "sub_1PQxDnLkdIwHu7ixMb0t6Ckq",
        "subtotal": 2000,
        "total": 2000,
    }


class StripeProvider(Provider):
    """Customers, invoices and payments from Stripe, verified with the endpoint's ``whsec_`` secret."""

    slug = "stripe"
    name = "Stripe"
    description = "Identify customers and trigger workflows from Stripe billing events."
    categories = ("Payments", "Billing")
    docs_url = "https://docs.stripe.com/webhooks"
    event_type_path = "body.type"
    timestamp_path = "body.created"
    # evt_... is stable across Stripe's retries of one event.
    idempotency_key_path = "body.id"
    #: stripe-python's ``Webhook.DEFAULT_TOLERANCE``; ``tolerance_seconds`` in settings overrides it.
    tolerance_seconds = 300
    timestamp_unit = "s"
    default_mappings = (
        DefaultMapping(
            event_type="customer.created",
            action_type="users_identify",
            action_parameters={
                "id": "body.data.object.id",
                "email": "body.data.object.email",
                "name": "body.data.object.name",
                "phone_number": "body.data.object.phone",
                "properties": "body.data.object.metadata",
            },
        ),
        _invoice_trigger("invoice.created", "invoice-created"),
        _invoice_trigger("invoice.paid", "invoice-paid"),
    )
    example_payloads = _examples(
        ("evt_1PQx9aLkdIwHu7ixAbCdEf01", "customer.created", 1717689000, _CUSTOMER),
        ("evt_1PQxDoLkdIwHu7ixAbCdEf02", "invoice.created", 1717689601, _invoice("draft", 0, None)),
        ("evt_1PQxEqLkdIwHu7ixAbCdEf03", "invoice.paid", 1717689666, _invoice("paid", 2000, 1717689665)),
    )

    def verify(self, envelope, config):
        """Raise ``SignatureError`` unless a ``v1`` signature matches a configured secret.

        Any ``v1`` entry may match: while a secret is rolled Stripe signs with
        the old and the new one. ``v0`` and unknown schemes are ignored so
        they cannot be used to downgrade.
        """
        secrets = signing.signing_secrets(config)
        header = signing.require_header(envelope, SIGNATURE_HEADER)
        timestamp, signatures = signing.parse_timestamped_header(header, SIGNATURE_HEADER)
        # The key is the whole "whsec_..." string as UTF-8, not base64-decoded (unlike Svix).
        message = timestamp.encode("ascii") + b"." + envelope.raw_body
        signing.check_signatures((signing.hmac_sha256_hex(s, message) for s in secrets), signatures)
        # stripe-python only rejects stale timestamps; we also refuse ones from the future.
        signing.check_tolerance(
            int(timestamp),
            signing.tolerance_seconds(config, self.tolerance_seconds),
            now=signing.now_seconds(),
        )

    def sign(self, raw_body, secret, *, timestamp=None):
        """Return a ``Stripe-Signature`` header for ``raw_body`` (``timestamp`` in Unix seconds)."""
        timestamp = int(signing.now_seconds()) if timestamp is None else int(timestamp)
        digest = signing.hmac_sha256_hex(secret, f"{timestamp}.".encode("ascii") + raw_body)
        return {SIGNATURE_HEADER: f"t={timestamp},v1={digest}"}


@hookimpl
def register_providers():
    """Register the Stripe provider."""
    return [StripeProvider()]

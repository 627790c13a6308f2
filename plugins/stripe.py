"""Stripe webhooks, signed with ``Stripe-Signature``.

Signature scheme: https://docs.stripe.com/webhooks#verify-manually
Event objects: https://docs.stripe.com/api/events/object
"""

from knock_sources import signing
from knock_sources.hookspecs import hookimpl
from knock_sources.providers import DefaultMapping, Provider, load_example_payloads

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
    example_payloads = load_example_payloads(__package__, slug)

    def verify(self, envelope, config):
        """Raise ``SignatureError`` unless a ``v1`` signature matches a configured secret.

        Any ``v1`` entry may match: while a secret is rolled Stripe signs with
        the old and the new one. ``v0`` and unknown schemes are ignored so
        they cannot be used to downgrade.
        """
        # The key is the whole "whsec_..." string as UTF-8, not base64-decoded (unlike Svix).
        # stripe-python only rejects stale timestamps; we also refuse ones from the future.
        signing.verify_timestamped_hmac(
            envelope, config, SIGNATURE_HEADER, tolerance=self.tolerance_seconds, unit=self.timestamp_unit
        )

    def sign(self, raw_body, secret, *, timestamp=None):
        """Return a ``Stripe-Signature`` header for ``raw_body`` (``timestamp`` in Unix seconds)."""
        value = signing.sign_timestamped_hmac(raw_body, secret, timestamp=timestamp, unit=self.timestamp_unit)
        return {SIGNATURE_HEADER: value}


@hookimpl
def register_providers():
    """Register the Stripe provider."""
    return [StripeProvider()]

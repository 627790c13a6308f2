"""Clerk webhooks, delivered by Svix and signed per Standard Webhooks.

Signature scheme: https://docs.svix.com/receiving/verifying-payloads/how-manual
and https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md
Clerk's events: https://clerk.com/docs/webhooks/overview
"""

import secrets as random_source
import string

from knock_sources import signing
from knock_sources.errors import SignatureError
from knock_sources.hookspecs import hookimpl
from knock_sources.providers import DefaultMapping, Provider, load_example_payloads

# Svix's own names first; white-labelled Svix and other Standard Webhooks
# senders use webhook-*. A set is used only when all three are present, as
# svix-python does.
HEADER_SETS = (
    ("svix-id", "svix-timestamp", "svix-signature"),
    ("webhook-id", "webhook-timestamp", "webhook-signature"),
)
_ID_ALPHABET = string.ascii_letters + string.digits


def _tenant_mapping(event_type):
    return DefaultMapping(
        event_type=event_type,
        action_type="tenants_set",
        action_parameters={
            "id": "body.data.id",
            "name": "body.data.name",
            "properties": "body.data.public_metadata",
        },
    )


def _user_mapping(event_type):
    # Clerk sends first_name and last_name separately; a preprocess script can
    # join them into a name. Email and phone are the first of their lists.
    return DefaultMapping(
        event_type=event_type,
        action_type="users_identify",
        action_parameters={
            "id": "body.data.id",
            "email": "body.data.email_addresses[0].email_address",
            "phone_number": "body.data.phone_numbers[0].phone_number",
            "avatar": "body.data.image_url",
            "properties": "body.data.public_metadata",
        },
    )


class ClerkProvider(Provider):
    """Users and organizations from Clerk, verified with the endpoint's ``whsec_`` secret."""

    slug = "clerk"
    name = "Clerk"
    description = "Identify users and keep tenants in sync from Clerk user and organization events."
    categories = ("Authentication",)
    docs_url = "https://clerk.com/docs/webhooks/sync-data"
    event_type_path = "body.type"
    timestamp_path = "body.timestamp"  # Unix milliseconds
    # The Svix message id is the same on every retry of one delivery.
    idempotency_key_path = "headers.svix-id"
    tolerance_seconds = 300
    timestamp_unit = "s"
    default_mappings = (
        _user_mapping("user.created"),
        _user_mapping("user.updated"),
        _tenant_mapping("organization.created"),
        _tenant_mapping("organization.updated"),
        DefaultMapping("organization.deleted", "tenants_delete", {"id": "body.data.id"}),
    )
    example_payloads = load_example_payloads(__package__, slug)

    def verify(self, envelope, config):
        """Raise ``SignatureError`` unless a ``v1`` signature matches a configured secret.

        The key is the base64 part after ``whsec_``; the signed content is
        ``<id>.<timestamp>.<raw body>``; the signature header is a
        space-separated list of ``v1,<base64>`` entries (several while a
        secret is rotated). Timestamps are checked both ways, as Svix does.
        """
        secrets = signing.signing_secrets(config)
        msg_id, timestamp, signature_header = _svix_headers(envelope)
        issued_at = signing.parse_timestamp(timestamp, "webhook timestamp")
        keys = [key for key in map(signing.decode_base64_secret, secrets) if key]
        if not keys:
            raise SignatureError("no configured secret is a valid whsec_ secret", code="secret_invalid")
        message = signing.to_bytes(f"{msg_id}.{timestamp}.") + envelope.raw_body
        candidates = []
        for entry in signature_header.split():
            version, _, signature = entry.partition(",")
            # "v1a" (ed25519) and unknown versions are skipped. A header sent
            # twice arrives joined with ", ", leaving a trailing comma.
            if version == "v1":
                candidates.append(signature.rstrip(","))
        signing.check_signatures((signing.hmac_sha256_base64(key, message) for key in keys), candidates)
        signing.check_tolerance(
            issued_at, signing.tolerance_seconds(config, self.tolerance_seconds), now=signing.now_seconds()
        )

    def sign(self, raw_body, secret, *, timestamp=None, msg_id=None):
        """Return ``svix-*`` headers for ``raw_body`` (``timestamp`` in Unix seconds).

        A fresh message id is generated unless ``msg_id`` is given.
        """
        key = signing.decode_base64_secret(secret)
        if key is None:
            raise SignatureError("the secret is not a valid whsec_ secret", code="secret_invalid")
        timestamp = int(signing.now_seconds()) if timestamp is None else int(timestamp)
        msg_id = msg_id or "msg_" + "".join(random_source.choice(_ID_ALPHABET) for _ in range(27))
        signature = signing.hmac_sha256_base64(key, signing.to_bytes(f"{msg_id}.{timestamp}.") + raw_body)
        return {"svix-id": msg_id, "svix-timestamp": str(timestamp), "svix-signature": f"v1,{signature}"}


def _svix_headers(envelope):
    """Return ``(id, timestamp, signature)`` from the first complete header set."""
    for names in HEADER_SETS:
        values = [envelope.header(name) for name in names]
        if all(value and value.strip() for value in values):
            return tuple(value.strip() for value in values)
    raise SignatureError(
        "the svix-id, svix-timestamp and svix-signature headers are required", code="signature_missing"
    )


@hookimpl
def register_providers():
    """Register the Clerk provider."""
    return [ClerkProvider()]

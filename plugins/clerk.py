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
from knock_sources.providers import DefaultMapping, Provider

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


def _examples(*events):
    """Build ``example_payloads`` from ``(event_type, data, svix message id)`` triples."""
    examples = {}
    for event_type, data, msg_id in events:
        body = {
            "data": data,
            "event_attributes": {"http_request": {"client_ip": "203.0.113.7", "user_agent": "Mozilla/5.0"}},
            "instance_id": "ins_2g7np7Hrk0SN6kj5EDMLDaKNL0S",
            "object": "event",
            "timestamp": data.get("updated_at", 1717690000000),
            "type": event_type,
        }
        headers = {
            "content-type": "application/json",
            "svix-id": msg_id,
            "user-agent": "Svix-Webhooks/1.24.0",
        }
        examples[event_type] = [{"body": body, "headers": headers}]
    return examples


def _user(updated_at, first_name):
    return {
        "id": "user_29w83sxmDNGwOuEthce5gg56FcC",
        "object": "user",
        "created_at": 1654012591514,
        "updated_at": updated_at,
        "email_addresses": [
            {
                "id": "idn_29w83yL7CwVlJXylYLxcslromF1",
                "object": "email_address",
                "email_address": "ada@example.org",
                "linked_to": [],
                "verification": {"status": "verified", "strategy": "email_code"},
            }
        ],
        "primary_email_address_id": "idn_29w83yL7CwVlJXylYLxcslromF1",
        "phone_numbers": [
            {
                "id": "idn_2g7nqHWBMkJ4Qj7YZ1V7Gz0k3Lc",
                "object": "phone_number",
                "phone_number": "+14155550199",
            }
        ],
        "external_id": None,
        "first_name": first_name,
        "last_name": "Lovelace",
        "username": "ada",
        "image_url": "https://img.clerk.com/eyJ0eXBlIjoiZGVmYXVsdCJ9",
        "public_metadata": {"plan": "team"},
        "private_metadata": {},
        "unsafe_metadata": {},
        "two_factor_enabled": False,
    }


def _organization(updated_at, name):
    return {
        "id": "org_2g7nz3QbPbDZGJnmtsp5TrZJ2Xn",
        "object": "organization",
        "name": name,
        "slug": "acme",
        "image_url": "https://img.clerk.com/eyJ0eXBlIjoib3JnIn0",
        "created_at": 1717689000000,
        "updated_at": updated_at,
        "created_by": "user_29w83sxmDNGwOuEthce5gg56FcC",
        "max_allowed_memberships": 5,
        "public_metadata": {"tier": "enterprise"},
        "private_metadata": {},
    }


_DELETED_ORGANIZATION = {"id": "org_2g7nz3QbPbDZGJnmtsp5TrZJ2Xn", "object": "organization", "deleted": True}


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
    example_payloads = _examples(
        ("user.created", _user(1654012591835, "Ada"), "msg_2g7o1vGQzAVp0lTUPkyB1nL3wXa"),
        ("user.updated", _user(1717689700000, "Augusta Ada"), "msg_2g7o2Rk1aAbVqL8sTz7uY3cWdPe"),
        ("organization.created", _organization(1717689000000, "Acme"), "msg_2g7o3Y6dEo8M9fN0pQ1rS2tU3vW"),
        ("organization.updated", _organization(1717689900000, "Acme Inc."), "msg_2g7o4Zt5Hq6Jk7Lm8Nn9Pp0Qr1S"),
        ("organization.deleted", _DELETED_ORGANIZATION, "msg_2g7o5Ab2Cd3Ef4Gh5Ij6Kl7Mn8Op"),
    )

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

"""Segment's "Webhooks (Actions)" destination, signed with ``X-Signature``.

The destination posts the whole Segment event (mapping "Send", data
``$.``); with batching on it posts a JSON array of events. It signs with
the destination's Shared Secret: ``X-Signature`` is the hex HMAC-SHA1 of
``JSON.stringify(data)`` of the first event only, which for a single event
is the body as sent and for a batch is the exact text of the array's first
element (segmentio/action-destinations, ``destinations/webhook``). The
other elements of a batch are therefore covered by no signature: Segment's
scheme, not ours. Track calls are typed ``track/<event>``, other calls by
their type; identify calls identify the user (``handle_identifies``).
"""

import json

from knock_sources import signing
from knock_sources.hookspecs import hookimpl
from knock_sources.ingest.track import SegmentSpecProvider
from knock_sources.providers import DefaultMapping, load_example_payloads

SIGNATURE_HEADER = "X-Signature"


def signed_span(raw_body: bytes) -> bytes:
    """Return the bytes Segment signs: the body, or the exact text of a JSON array's first element.

    A body that is not a readable array is returned whole, so that it is
    checked (and fails) like any other.
    """
    stripped = raw_body.lstrip()
    if not stripped.startswith(b"["):
        return raw_body
    try:
        text = stripped.decode("utf-8")
        start = len(text) - len(text[1:].lstrip())
        _, end = json.JSONDecoder().raw_decode(text, start)
    except ValueError:
        return raw_body
    return text[start:end].encode("utf-8")


class SegmentProvider(SegmentSpecProvider):
    """Track and identify calls from Segment's Webhooks (Actions) destination."""

    slug = "segment"
    name = "Segment"
    description = "Trigger workflows from Segment track events and keep users in sync from identify calls."
    docs_url = "https://segment.com/docs/connections/destinations/catalog/actions-webhook/"
    # The signature covers no timestamp; replays are caught by messageId idempotency.
    signed = True
    timestamped = False
    secret_header = None
    default_mappings = (
        DefaultMapping(
            event_type="track/user-signed-up",
            action_type="workflows_trigger",
            action_parameters={"key": "user-signup", "recipients": "body.userId", "data": "body.properties"},
        ),
    )
    example_payloads = load_example_payloads(__package__, slug)

    def verify(self, envelope, config):
        """Raise ``SignatureError`` unless ``X-Signature`` is the HMAC-SHA1 of the signed span under a secret."""
        secrets = signing.signing_secrets(config)
        signature = signing.require_header(envelope, SIGNATURE_HEADER)
        message = signed_span(envelope.raw_body)
        signing.check_signatures((signing.hmac_sha1_hex(secret, message) for secret in secrets), [signature])

    def sign(self, raw_body, secret, *, timestamp=None):
        """Return the ``X-Signature`` header Segment attaches to ``raw_body`` (a single event or a batch)."""
        return {SIGNATURE_HEADER: signing.hmac_sha1_hex(secret, signed_span(raw_body))}


@hookimpl
def register_providers():
    """Register the Segment provider."""
    return [SegmentProvider()]

"""Knock's legacy HTTP source (``legacy_http``): one Segment ``track`` event per request.

The body is a Segment track call (https://segment.com/docs/connections/spec/track/):
``type`` must be ``track``, ``event`` names the event, ``properties`` is a
map, and ``userId``, ``messageId`` (the deduplication key, used when
idempotency is enforced) and ``timestamp`` (ISO-8601, else the time of
ingestion) are optional. Anything else is answered 400 with the field
errors; an identify call is told where identify calls go, and a JSON array
that there is no batch endpoint. Workflows are started by their
source-event triggers, whose paths address Knock's normalized event:
``data.<key>`` for ``properties.<key>``, ``user_id`` and ``event``.
"""

from knock_sources.errors import PayloadError
from knock_sources.hookspecs import hookimpl
from knock_sources.ingest import track
from knock_sources.providers import SharedSecretProvider, load_example_payloads


class LegacyHttpProvider(SharedSecretProvider):
    """Segment-style track events from any service, as Knock's legacy HTTP source takes them."""

    slug = "legacy_http"
    name = "HTTP (legacy)"
    description = "Send Segment-style track events from your own services and trigger workflows from them."
    categories = ("Infrastructure",)
    docs_url = "https://docs.knock.app/integrations/sources/legacy/http"
    # Authenticated by the URL's token; a shared secret may be added.
    secret_header = "x-webhook-secret"
    tracking_api = True
    event_type_path = "body.event"
    timestamp_path = "body.timestamp"
    idempotency_key_path = "body.messageId"
    example_payloads = load_example_payloads(__package__, slug)

    def split(self, body):
        """One event per request: a JSON array is refused, with the reason."""
        if isinstance(body, list):
            raise PayloadError(
                "The legacy HTTP source takes one event per request; there is no batch endpoint.",
                code="batch_not_supported",
            )
        return [body]

    def normalize(self, body):
        """Refuse anything but one valid track event (400 with field errors); return its normalized form."""
        track.check_legacy_track(body)
        return track.normalize(body)

    def default_settings(self):
        """messageId deduplicates only once idempotency is enforced for the environment, as in Knock."""
        return {**super().default_settings(), "enforce_idempotency": False}


@hookimpl
def register_providers():
    """Register the legacy HTTP provider."""
    return [LegacyHttpProvider()]

"""PostHog's Knock destination: Segment-style ``track`` events, unsigned.

PostHog's Knock destination (https://posthog.com/docs/cdp/destinations/knock)
posts ``{type, event, userId, properties, messageId, timestamp}`` with no
signature. A shared secret can still be required: send it from PostHog's
generic webhook destination (https://posthog.com/docs/cdp/destinations/webhook)
as ``Authorization: Bearer <secret>``, or in the header named by the
``secret_header`` setting; it is compared in constant time.
"""

from knock_sources.hookspecs import hookimpl
from knock_sources.providers import DefaultMapping, SharedSecretProvider, load_example_payloads

SECRET_HEADER = "authorization"

_IDENTIFY = {
    "id": "body.userId",
    "email": "body.properties.email",
    "name": "body.properties.name",
    "properties": "body.properties",
}


class PostHogProvider(SharedSecretProvider):
    """Product events from PostHog's Knock destination."""

    slug = "posthog"
    name = "PostHog"
    description = "Identify users from PostHog person updates and map product events to workflows."
    categories = ("Analytics", "CDP")
    docs_url = "https://posthog.com/docs/cdp/destinations/knock"
    event_type_path = "body.event"
    timestamp_path = "body.timestamp"  # ISO-8601
    # messageId is the PostHog event's uuid, stable across retries.
    idempotency_key_path = "body.messageId"
    secret_header = SECRET_HEADER
    default_mappings = (
        DefaultMapping("$identify", "users_identify", _IDENTIFY),
        DefaultMapping("$set", "users_identify", _IDENTIFY),
    )
    example_payloads = load_example_payloads(__package__, slug)


@hookimpl
def register_providers():
    """Register the PostHog provider."""
    return [PostHogProvider()]

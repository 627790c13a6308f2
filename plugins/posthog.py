"""PostHog's Knock destination: Segment-style ``track`` events, unsigned.

PostHog's Knock destination (https://posthog.com/docs/cdp/destinations/knock)
posts ``{type, event, userId, properties, messageId, timestamp}`` with no
signature. A shared secret can still be required: send it from PostHog's
generic webhook destination (https://posthog.com/docs/cdp/destinations/webhook)
as ``Authorization: Bearer <secret>``, or in the header named by the
``secret_header`` setting; it is compared in constant time.
"""

from knock_sources.hookspecs import hookimpl
from knock_sources.providers import DefaultMapping, SharedSecretProvider

SECRET_HEADER = "authorization"

_IDENTIFY = {
    "id": "body.userId",
    "email": "body.properties.email",
    "name": "body.properties.name",
    "properties": "body.properties",
}


def _example(event, message_id, properties):
    body = {
        "type": "track",
        "event": event,
        "userId": "user_1042",
        "properties": {**properties, "email": "alan@example.com", "name": "Alan Turing"},
        # messageId is the PostHog event's uuid, stable across retries.
        "messageId": message_id,
        "timestamp": "2024-06-06T15:36:12.301Z",
    }
    return [{"body": body, "headers": {"content-type": "application/json"}}]


class PostHogProvider(SharedSecretProvider):
    """Product events from PostHog's Knock destination."""

    slug = "posthog"
    name = "PostHog"
    description = "Identify users from PostHog person updates and map product events to workflows."
    categories = ("Analytics", "CDP")
    docs_url = "https://posthog.com/docs/cdp/destinations/knock"
    event_type_path = "body.event"
    timestamp_path = "body.timestamp"  # ISO-8601
    idempotency_key_path = "body.messageId"
    secret_header = SECRET_HEADER
    default_mappings = (
        DefaultMapping("$identify", "users_identify", _IDENTIFY),
        DefaultMapping("$set", "users_identify", _IDENTIFY),
    )
    example_payloads = {
        "$identify": _example(
            "$identify",
            "0190eb8a-6c1d-7d2e-9f3a-4b5c6d7e8f90",
            {
                "$anon_distinct_id": "0190eb89-0f1e-7a2b-8c3d-4e5f6a7b8c9d",
                "$lib": "web",
                "$current_url": "https://app.example.com/welcome",
                "$set": {"email": "alan@example.com", "name": "Alan Turing"},
            },
        ),
        "$set": _example(
            "$set",
            "0190eb8c-1a2b-7c3d-8e4f-5a6b7c8d9e0f",
            {"$lib": "posthog-python", "$set": {"plan": "enterprise"}, "plan": "enterprise"},
        ),
    }


@hookimpl
def register_providers():
    """Register the PostHog provider."""
    return [PostHogProvider()]

"""RudderStack's Webhook destination: full RudderStack (Segment-spec) events, unsigned.

The destination posts each event as JSON with only the headers configured
on it (rudderlabs/rudder-transformer, ``destinations/webhook``); nothing is
signed. A shared secret can still be required: add the header
``Authorization: Bearer <secret>`` to the destination (or name another one
with the ``secret_header`` setting). RudderStack puts identify traits under
``context.traits``; "handle identifies" reads them there when there are no
top-level ``traits``.
"""

from knock_sources.hookspecs import hookimpl
from knock_sources.ingest.track import SegmentSpecProvider
from knock_sources.providers import DefaultMapping, load_example_payloads


class RudderStackProvider(SegmentSpecProvider):
    """Track and identify calls from RudderStack's Webhook destination."""

    slug = "rudderstack"
    name = "RudderStack"
    description = "Trigger workflows from RudderStack track events and keep users in sync from identify calls."
    docs_url = "https://www.rudderstack.com/docs/destinations/webhooks/"
    default_mappings = (
        DefaultMapping(
            event_type="track/order_completed",
            action_type="workflows_trigger",
            action_parameters={"key": "order-completed", "recipients": "body.userId", "data": "body.properties"},
        ),
    )
    example_payloads = load_example_payloads(__package__, slug)


@hookimpl
def register_providers():
    """Register the RudderStack provider."""
    return [RudderStackProvider()]

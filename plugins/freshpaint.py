"""Freshpaint's webhook destination (beta, as in Knock): Segment-spec events, unsigned.

No public description of the destination's requests exists; as Knock does,
events are taken in the Segment spec (``type``, ``event``, ``userId``,
``properties``, ``traits``, ``messageId``, ``timestamp``). An optional
shared secret is checked in ``Authorization: Bearer <secret>`` (or the
header named by the ``secret_header`` setting).
"""

from knock_sources.hookspecs import hookimpl
from knock_sources.ingest.track import SegmentSpecProvider
from knock_sources.providers import load_example_payloads


class FreshpaintProvider(SegmentSpecProvider):
    """Track and identify calls from Freshpaint, in the Segment spec."""

    slug = "freshpaint"
    name = "Freshpaint"
    description = "Beta: sync users from Freshpaint identify calls and trigger workflows from track events."
    categories = ("Analytics", "CDP", "Healthcare")
    docs_url = "https://www.freshpaint.io/"
    example_payloads = load_example_payloads(__package__, slug)


@hookimpl
def register_providers():
    """Register the Freshpaint provider."""
    return [FreshpaintProvider()]

"""Jitsu's webhook destination: Segment-compatible events, unsigned (beta, as in Knock).

Jitsu posts each ``AnalyticsServerEvent`` as JSON with the headers
configured as ``"name: value"`` strings (jitsucom/jitsu,
``webhook-destination.ts``), and retries anything but a 2xx. Nothing is
signed; to require a shared secret configure the header
``Authorization: Bearer <secret>``. Jitsu keeps only the text between the
first and the second colon of a header line, so the secret must contain no
colon.
"""

from knock_sources.hookspecs import hookimpl
from knock_sources.ingest.track import SegmentSpecProvider
from knock_sources.providers import load_example_payloads


class JitsuProvider(SegmentSpecProvider):
    """Track and identify calls from Jitsu's webhook destination."""

    slug = "jitsu"
    name = "Jitsu"
    description = "Beta: sync users from Jitsu identify calls and trigger workflows from track events."
    categories = ("Analytics", "CDP", "Open source")
    docs_url = "https://docs.jitsu.com/destinations/"
    example_payloads = load_example_payloads(__package__, slug)


@hookimpl
def register_providers():
    """Register the Jitsu provider."""
    return [JitsuProvider()]

"""The RQ job entry points: the worker's boundary, as views are the web's.

RQ imports and calls these by dotted path inside ``flask worker``'s app
context; each fetches the app state and hands it down, so that the domain
modules take plain values.
"""

from knock_sources.state import current_state
from knock_sources.worker import jobs


def drain_pending() -> int:
    """Process the event ids waiting in the pending list; see ``jobs.drain``."""
    return jobs.drain(current_state())

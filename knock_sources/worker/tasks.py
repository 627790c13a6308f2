"""The RQ job entry points: the worker's boundary, as views are the web's.

RQ imports and calls these by dotted path inside ``flask worker``'s app
context; each fetches the app state and hands it down, so that the domain
modules take plain values.
"""

from rq import Queue, get_current_job

from knock_sources.state import current_state
from knock_sources.worker import jobs


def drain_pending() -> int:
    """Process the event ids waiting in the pending set; see ``jobs.drain``.

    On the queue and connection the job came from: the worker's, which waits
    out a Redis outage, not the app state's, which fails fast for the web.
    """
    job = get_current_job()
    return jobs.drain(current_state(), Queue(job.origin, connection=job.connection))

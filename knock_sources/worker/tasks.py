"""The RQ job entry points: the worker's boundary, as views are the web's.

RQ imports and calls these by dotted path inside ``flask worker``'s app
context; each fetches the app state and hands it down, so that the domain
modules take plain values.
"""

import contextlib
import logging

from rq import Queue, get_current_job

from knock_sources import store
from knock_sources.control import replay
from knock_sources.errors import NotFound
from knock_sources.observability import logs
from knock_sources.state import current_state
from knock_sources.worker import jobs

log = logging.getLogger(__name__)


@contextlib.contextmanager
def _job(**fields):
    """Bind the RQ job's id (and ``fields``) to the lines logged while it runs, and only then."""
    job = get_current_job()
    logs.start(job_id=job.id if job else None, **fields)
    try:
        yield
    finally:
        logs.start()


def drain_pending() -> int:
    """Process the event ids waiting in the pending set; see ``jobs.drain``.

    On the queue and connection the job came from: the worker's, which waits
    out a Redis outage, not the app state's, which fails fast for the web.
    """
    with _job():
        job = get_current_job()
        return jobs.drain(current_state(), Queue(job.origin, connection=job.connection))


def run_replay(replay_id: int) -> None:
    """Run a slice of a replay (it queues the rest itself); see ``control.replay.run``."""
    with _job(replay_id=replay_id), store.db.connection_context():
        try:
            replay.run(current_state(), replay_id, seconds=replay.SLICE_SECONDS)
        except NotFound:
            # Its source was deleted, and the replay with it: nothing is left to do.
            log.info("replay %s no longer exists", replay_id)

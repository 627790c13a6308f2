"""Ingest without its durable write, for ``bench/floor.py``: what everything else costs.

The real app (``wsgi:app``) with the event-log INSERT replaced by a counter
that hands out ids: each request is still looked up by its token, read,
parsed, verified (Stripe's scheme), counted in the metrics, logged by
gunicorn and handed to the dispatcher, which pushes its id to Redis, but no
row is written and no request thread waits for PostgreSQL. Set beside
``commit_each`` (the write and nothing else) it splits ingest's cost in two.
Only ``bench/floor.py`` serves it: importing it changes the app for the
whole process.
"""

from __future__ import annotations

import itertools
import os

from knock_sources.ingest import eventlog

# Ids no real row has, distinct per worker process (the dispatcher pushes them).
_ids = itertools.count(10**12 + os.getpid() * 10**7)


def _counted_id(params: list) -> int:
    """Stand in for ``eventlog.insert_row``: the next id, nothing written."""
    return next(_ids)


eventlog.insert_row = _counted_id

from wsgi import app  # noqa: E402

__all__ = ["app"]

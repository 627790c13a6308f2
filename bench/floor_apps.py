"""The floor's apps: the least an endpoint that commits each request before answering can cost.

Plain WSGI callables, below even Flask's cost (the bare endpoint's): they
read the body and answer 204 after a durable write. ``commit_each`` commits
one row per request (autocommit, a one-column table, no index but the
primary key) before answering, as ingest does; ``group_commit`` hands each
body to ingest's own ``GroupCommit``, so that the requests of one process
that arrive while a write is in flight share the next one. No JSON, no
signature, no pool, no hand-over to Redis: whatever ingest does beyond this
is its own cost. ``bench/floor.py`` runs them.
"""

from __future__ import annotations

import os
import threading

import psycopg2

from knock_sources.ingest.group_commit import GroupCommit

#: The table both apps write; ``bench/floor.py`` creates it.
TABLE = "floor_log"
#: How ``bench/floor.py`` finds these apps' PostgreSQL backends.
APPLICATION_NAME = "ks-floor"
_connections = threading.local()


def connection():
    """This thread's own connection (autocommit), as a pool would hand a thread one."""
    found = getattr(_connections, "connection", None)
    if found is None:
        found = psycopg2.connect(os.environ["FLOOR_DATABASE_URL"], application_name=APPLICATION_NAME)
        found.autocommit = True
        _connections.connection = found
    return found


def insert(bodies: list[str]) -> list[int]:
    """Commit one row per body in one statement; return their ids."""
    cursor = connection().cursor()
    values = ", ".join(["(%s)"] * len(bodies))
    cursor.execute(f"INSERT INTO {TABLE} (body) VALUES {values} RETURNING id", bodies)
    return [row[0] for row in cursor.fetchall()]


group = GroupCommit(insert)


def _body(environ) -> str:
    return environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)).decode()


def _accepted(start_response) -> list:
    start_response("204 No Content", [])
    return []


def commit_each(environ, start_response):
    """Read the body, commit it alone, accept it."""
    insert([_body(environ)])
    return _accepted(start_response)


def group_commit(environ, start_response):
    """Read the body, commit it with the requests queued beside it, accept it."""
    group.submit(_body(environ))
    return _accepted(start_response)

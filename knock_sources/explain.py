"""One line saying what is wrong and how to fix it, for the failures a first run meets.

The CLI turns a database or Redis it cannot use into such a line instead of
a traceback (``cli.init_app``): a PostgreSQL database that does not exist, a
server that is not running, a schema ``flask init-db`` has not created yet,
an unreachable Redis. Addresses are shown without their password.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import redis
from peewee import InterfaceError, OperationalError, ProgrammingError

#: What ``explain`` turns into a line; anything else is a bug and keeps its traceback.
EXPLAINED = (OperationalError, InterfaceError, ProgrammingError, redis.ConnectionError, redis.TimeoutError)

_DATABASE_HINTS = (
    (re.compile(r'database "(?P<name>[^"]+)" does not exist'), "create it (createdb {name}) or point {key} at one"),
    (re.compile(r"no such table|relation \S+ does not exist"), "run flask init-db to create the schema"),
    (re.compile(r"password authentication failed|role \S+ does not exist"), "check the user and password in {key}"),
    (re.compile(r"unable to open database file"), "check that the directory in {key} exists and is writable"),
    (re.compile(r"refused|could not connect|timed? ?out|could not translate host"), "start PostgreSQL or fix {key}"),
)


def without_password(url: str) -> str:
    """``url`` with any password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def _first_line(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return re.sub(r"^.*?FATAL:\s*", "", text) or type(exc).__name__


def explain(exc: Exception, config) -> str:
    """The line for ``exc`` (one of ``EXPLAINED``) raised by a command of the app configured by ``config``."""
    if isinstance(exc, (redis.ConnectionError, redis.TimeoutError)):
        return (
            f"Redis at {without_password(config['REDIS_URL'])} is unreachable ({_first_line(exc)}): "
            "start Redis or fix KNOCK_SOURCES_REDIS_URL."
        )
    problem = _first_line(exc)
    hint = "check KNOCK_SOURCES_DATABASE_URL"
    for pattern, advice in _DATABASE_HINTS:
        found = pattern.search(problem)
        if found:
            hint = advice.format(key="KNOCK_SOURCES_DATABASE_URL", **found.groupdict())
            break
    return f"The database at {without_password(config['DATABASE_URL'])} cannot be used ({problem}): {hint}."

"""The store: Peewee's deferred database, the base model and the values every row shares.

``db`` is a ``DatabaseProxy`` initialised by ``store.schema.init_app`` from
``DATABASE_URL``: SQLite under ``instance/`` by default, a pooled PostgreSQL
connection in production. The control plane (sources, mappings, logs, keys,
variables) is in ``control.py``, the data plane (users, objects, tenants,
audiences, workflows and their runs) in ``dataplane.py``, the schema and its
migrations in ``schema.py``, PostgreSQL's day partitions of the logs (their
upkeep and retention) in ``partitions.py``.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import threading
from datetime import datetime, timezone
from typing import Any

from peewee import (
    DatabaseProxy,
    IntegrityError,
    InterfaceError,
    Model,
    OperationalError,
    QueryEvent,
    TextField,
)

db = DatabaseProxy()


#: The name of ``undone_on_error``'s savepoints: a rollback goes to the most recent one of that name.
KEPT_SAVEPOINT = "ks_undone_on_error"


@contextlib.contextmanager
def undone_on_error():
    """Run a block in a savepoint that is rolled back if the block raises, and kept if it does not.

    ``db.atomic()`` releases its savepoint when the block succeeds: a round
    trip for nothing inside a transaction, whose commit (or an enclosing
    savepoint's release) ends this savepoint too. So this one is for blocks
    inside a transaction that ends soon (an action, inside its event's
    savepoint); outside a transaction it is ``db.atomic()``.
    """
    if not db.in_transaction():
        with db.atomic():
            yield
        return
    db.execute_sql(f'SAVEPOINT "{KEPT_SAVEPOINT}"')
    try:
        yield
    except BaseException:
        db.execute_sql(f'ROLLBACK TO SAVEPOINT "{KEPT_SAVEPOINT}"')
        raise


class NeedsSavepoints(Exception):
    """A block run without a savepoint failed after writing: only a savepoint could have undone it alone.

    Raised by ``undone_if_unwritten``; whoever chose to run without
    savepoints rolls back further and runs the work again with them.
    """


_writes = threading.local()


def count_writes(event: QueryEvent) -> None:
    """Count, per thread (a thread's connection), the statements that may have changed data: all but SELECTs.

    A Peewee query hook, installed on the database by ``schema.make_database``.
    """
    if not event.sql.startswith("SELECT"):
        _writes.count = getattr(_writes, "count", 0) + 1


def writes_so_far() -> int:
    """The number of statements other than SELECTs this thread has sent: a mark to compare with later."""
    return getattr(_writes, "count", 0)


@contextlib.contextmanager
def undone_if_unwritten():
    """Run a block without a savepoint, for a block that usually succeeds; a failure needs no undo if it wrote nothing.

    A block that raises after sending a statement that may have written
    raises ``NeedsSavepoints`` instead (from the error), as only a savepoint
    could have undone it alone; one that wrote nothing raises its own error,
    as ``undone_on_error`` would have after a rollback. Database errors pass
    through as they are: they end the transaction anyway.
    """
    mark = writes_so_far()
    try:
        yield
    except (OperationalError, InterfaceError, NeedsSavepoints):
        raise
    except Exception as exc:
        if writes_so_far() != mark:
            raise NeedsSavepoints(f"{type(exc).__name__} after writing") from exc
        raise


def utcnow() -> datetime:
    """Return the current time as a naive UTC datetime (how rows store it)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def to_utc_naive(value: datetime | None) -> datetime | None:
    """Return ``value`` as naive UTC, the way rows store times."""
    if value is not None and value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value


def isoformat(value: datetime | None) -> str | None:
    """Format a stored (naive UTC) time as ISO-8601 with a ``Z``."""
    return None if value is None else value.isoformat() + "Z"


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def unstorable(text: str) -> str | None:
    """Say what in ``text`` no database text column can hold (NUL, a lone surrogate), or ``None``.

    PostgreSQL refuses both (psycopg2 raises ``ValueError`` for a NUL, and a
    lone surrogate cannot be encoded as UTF-8), so identifiers and query
    values holding them are refused before they reach a query.
    """
    found = _UNSTORABLE.search(text)
    if found is None:
        return None
    if found.group() == "\x00":
        return "a NUL character (\\u0000)"
    return f"a lone surrogate (\\u{ord(found.group()):04x})"


def find_unstorable(value: Any, path: tuple = ()) -> tuple[tuple, str] | None:
    """Return ``(path, problem)`` for the first string (key or value) inside ``value`` that is ``unstorable``.

    ``path`` is the keys and list indexes leading to it.
    """
    if isinstance(value, str):
        problem = unstorable(value)
        return (path, problem) if problem else None
    if isinstance(value, dict):
        for key, item in value.items():
            problem = unstorable(key) if isinstance(key, str) else None
            found = ((*path, key), problem) if problem else find_unstorable(item, (*path, key))
            if found:
                return found
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            found = find_unstorable(item, (*path, index))
            if found:
                return found
    return None


def _number_or_text(text: str) -> float | str:
    number = float(text)
    # Rows written before ingestion refused them may hold numbers JSON cannot
    # carry; they are read as their text, so no response ever holds Infinity.
    return number if math.isfinite(number) else text


# What ``json.dumps(value, allow_nan=False, separators=(",", ":"))`` builds on every
# call, built once: an encoder keeps no state between calls, so threads share it.
_COMPACT_JSON = json.JSONEncoder(allow_nan=False, separators=(",", ":"))


class JSONField(TextField):
    """JSON stored as text on every backend.

    Text rather than PostgreSQL's jsonb because hostile payloads may hold
    ``\\u0000`` or lone surrogates, which jsonb refuses; ``json.dumps``
    escapes both, so any body that parsed can be logged. NaN and Infinity are
    refused at parse time and here.
    """

    def db_value(self, value):
        """Serialise ``value`` compactly."""
        if value is None:
            return None
        return _COMPACT_JSON.encode(value)

    def python_value(self, value):
        """Parse the stored text."""
        return None if value is None else json.loads(value, parse_float=_number_or_text)


class StorableTextField(TextField):
    """Text from outside (rejected bodies, messages quoting a payload), stored whatever it holds.

    For debugging text, not identifiers: a NUL or a lone surrogate, which no
    database text column can hold, is stored as U+FFFD.
    """

    def db_value(self, value):
        """Replace what cannot be stored."""
        if isinstance(value, str):
            value = _UNSTORABLE.sub("\ufffd", value)
        return super().db_value(value)


def table_name(model_class) -> str:
    """Name tables ``ks_<snake_case>``: no clash with reserved words or other apps."""
    return "ks_" + re.sub(r"(?<!^)(?=[A-Z])", "_", model_class.__name__).lower()


class BaseModel(Model):
    """Binds every model to the deferred database."""

    class Meta:
        database = db
        table_function = table_name

    @classmethod
    def get_or_create_row(cls, **keys):
        """Return ``(row, created)`` for ``keys``, creating the row; safe against a concurrent creator."""
        row = cls.get_or_none(**keys)
        if row is not None:
            return row, False
        return cls.create_row(**keys)

    @classmethod
    def create_row(cls, **keys):
        """Return ``(row, created)`` for ``keys`` known to be missing: a concurrent creator's row if it won."""
        try:
            with db.atomic():
                return cls.create(**keys), True
        except IntegrityError:
            return cls.get(**keys), False


# Event statuses: the closed set of states an EventLog moves through.
PENDING = "pending"
PROCESSING = "processing"
PROCESSED = "processed"
FAILED = "failed"
IDEMPOTENT = "idempotent"
REJECTED = "rejected"
EVENT_STATUSES = (PENDING, PROCESSING, PROCESSED, FAILED, IDEMPOTENT, REJECTED)
#: What a replay may select: finished events (pending ones are still on their way).
REPLAYABLE_STATUSES = (PROCESSED, FAILED, IDEMPOTENT, REJECTED)

# Action statuses.
SUCCESS = "success"
ERROR = "error"
SKIPPED = "skipped"

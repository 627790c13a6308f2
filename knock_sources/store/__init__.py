"""The store: Peewee's deferred database, the base model and the values every row shares.

``db`` is a ``DatabaseProxy`` initialised by ``store.schema.init_app`` from
``DATABASE_URL``: SQLite under ``instance/`` by default, a pooled PostgreSQL
connection in production. The control plane (sources, mappings, logs, keys,
variables) is in ``control.py``, the data plane (users, objects, tenants,
audiences, workflows and their runs) in ``dataplane.py``, the schema and its
migrations in ``schema.py``.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone

from peewee import (
    DatabaseProxy,
    IntegrityError,
    Model,
    TextField,
)

db = DatabaseProxy()


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
        return json.dumps(value, allow_nan=False, separators=(",", ":"))

    def python_value(self, value):
        """Parse the stored text."""
        return None if value is None else json.loads(value)


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

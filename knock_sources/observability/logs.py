"""Structured logs: ``LOG_FORMAT=json`` writes one JSON object per line, ``text`` (the default) readable lines.

Every line carries what is known where it was written: the request id (the
``X-Request-Id`` a client or proxy sent, or a fresh one, echoed in the
response), the source and environment, the event log id, the RQ job id and
the replay id. They live in a context variable that the request, the job
and the event bind, so domain code logs as usual and never passes them on.

Nothing secret is logged: secrets are never put in messages (see the
reliability checks), and ingest URLs, whose token is the credential, are
logged with the token replaced (``redact_path``).
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import random
import re
import sys
from collections.abc import Mapping
from types import MappingProxyType

from flask import g, request
from pythonjsonlogger.json import JsonFormatter

FORMATS = ("text", "json")
REQUEST_ID_HEADER = "X-Request-Id"
CONTEXT_FIELDS = ("request_id", "source", "environment", "event_log_id", "job_id", "replay_id")
# An immutable mapping as the default: bound dicts are replaced, never changed.
_context: contextvars.ContextVar[Mapping] = contextvars.ContextVar(
    "knock_sources_log_context", default=MappingProxyType({})
)
_TOKEN_IN_PATH = re.compile(r"(/integrations/receive/)[^/?\s\"]+")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_MARK = "_knock_sources_handler"


def start(**fields) -> None:
    """Begin a new unit of work (a request, a job): drop what was bound before, bind ``fields``."""
    _context.set({key: value for key, value in fields.items() if value is not None})


def bind(**fields) -> contextvars.Token:
    """Add ``fields`` to the current unit of work; returns a token for ``unbind``."""
    return _context.set({**_context.get(), **{key: value for key, value in fields.items() if value is not None}})


def unbind(token: contextvars.Token) -> None:
    """Restore what was bound before ``bind`` returned ``token``."""
    _context.reset(token)


@contextlib.contextmanager
def bound(**fields):
    """Bind ``fields`` for the duration of a ``with`` block."""
    token = bind(**fields)
    try:
        yield
    finally:
        unbind(token)


def current() -> dict:
    """What is bound now."""
    return dict(_context.get())


def request_id(given: str | None) -> str | None:
    """Return ``given`` if it is a usable request id (a proxy's), else ``None``."""
    return given if given and _REQUEST_ID.match(given) else None


def start_request(given: str | None) -> str:
    """Begin the unit of work of a request that sent ``given`` as its ``X-Request-Id``; return its request id.

    The id sent, if usable, else a fresh one: 32 random hex digits, from
    ``random`` (reseeded in each forked worker), which unlike ``uuid4`` makes
    no system call, where the GIL could pass to another thread mid-request.
    """
    rid = request_id(given) or f"{random.getrandbits(128):032x}"
    start(request_id=rid)
    return rid


def redact_path(text: str) -> str:
    """Replace ingest tokens in ``text`` (a URL, a request line)."""
    return _TOKEN_IN_PATH.sub(r"\1[redacted]", text)


class ContextFilter(logging.Filter):
    """Puts the bound fields on each record, and redacts ingest tokens in its message."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Annotate ``record``; never drops it."""
        for key, value in _context.get().items():
            setattr(record, key, value)
        message = record.getMessage()
        if "/integrations/receive/" in message:
            record.msg, record.args = redact_path(message), None
        return True


class TextFormatter(logging.Formatter):
    """``time level logger: message [key=value ...]``."""

    def __init__(self):
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        """Format ``record`` with its bound fields at the end of the first line."""
        text = super().format(record)
        fields = " ".join(f"{key}={getattr(record, key)}" for key in CONTEXT_FIELDS if hasattr(record, key))
        if not fields:
            return text
        first, newline, rest = text.partition("\n")
        return f"{first} [{fields}]{newline}{rest}"


def json_formatter() -> logging.Formatter:
    """One JSON object per record: time, level, logger, message, the bound fields, any traceback."""
    return JsonFormatter(
        "{asctime}{levelname}{name}{message}",
        style="{",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        datefmt="%Y-%m-%dT%H:%M:%S%z",
    )


def formatter(log_format: str) -> logging.Formatter:
    """The formatter for ``LOG_FORMAT``."""
    return json_formatter() if log_format == "json" else TextFormatter()


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (tests replace it)."""

    def __init__(self):
        super().__init__()

    @property
    def stream(self):
        """The current standard error."""
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


def configure(log_format: str, level: str) -> logging.Handler:
    """Install (once per process) or update the root handler for ``log_format`` and ``level``."""
    if log_format not in FORMATS:
        raise ValueError(f"LOG_FORMAT must be one of {', '.join(FORMATS)}, not {log_format!r}")
    root = logging.getLogger()
    handler = next((h for h in root.handlers if getattr(h, _MARK, False)), None)
    if handler is None:
        handler = _StderrHandler()
        setattr(handler, _MARK, True)
        handler.addFilter(ContextFilter())
        root.addHandler(handler)
    handler.setFormatter(formatter(log_format))
    root.setLevel(level.upper())
    # Peewee logs each statement with its parameters at DEBUG: tokens, API key
    # digests, encrypted secrets. Never, whatever the level.
    logging.getLogger("peewee").setLevel(max(logging.INFO, root.level))
    return handler


def init_app(app) -> None:
    """Configure logging from the app's ``LOG_FORMAT`` and ``LOG_LEVEL``; bind a request id per request."""
    configure(app.config["LOG_FORMAT"], app.config["LOG_LEVEL"])

    @app.before_request
    def _start_request():
        g.request_id = start_request(request.headers.get(REQUEST_ID_HEADER))

    @app.after_request
    def _echo_request_id(response):
        rid = g.get("request_id")
        if rid:
            response.headers[REQUEST_ID_HEADER] = rid
        return response

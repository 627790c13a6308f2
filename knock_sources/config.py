"""Configuration: the defaults, and their validation at start-up.

Environment variables prefixed ``KNOCK_SOURCES_`` override each key
(``KNOCK_SOURCES_DATABASE_URL`` sets ``DATABASE_URL``); values are parsed as
JSON when they parse, so numbers and lists work, and comma-separated strings
are accepted where lists are expected. ``validate`` checks every key when
the app is created, so a mistyped value stops the start with a message
naming it instead of failing every request.
"""

from __future__ import annotations

import re
from typing import Any

import limits
from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates_schema

from knock_sources.errors import ConfigurationError
from knock_sources.observability.exposition import parse_bind
from knock_sources.observability.logs import FORMATS

DEFAULTS: dict[str, Any] = {
    # None: SQLite at instance/knock_sources.db (set by create_app).
    "DATABASE_URL": None,
    # None: jobs run in-process right after the event is logged.
    "REDIS_URL": None,
    # Encrypts signing secrets and secret variables at rest: set it in production.
    "SECRET_KEY": "dev-insecure-change-me",
    # Older keys that still decrypt (Flask 3.1's name); `flask rotate-secrets`
    # re-encrypts everything under SECRET_KEY so that they can be dropped.
    "SECRET_KEY_FALLBACKS": [],
    "PUBLIC_BASE_URL": "http://127.0.0.1:8000",
    # The first one is the default of every API call's ``?environment=``.
    "ENVIRONMENTS": ["development", "production"],
    "IDEMPOTENCY_WINDOW_SECONDS": 86400,
    "MAX_PAYLOAD_BYTES": 1024 * 1024,
    "SCRIPT_TIMEOUT_MS": 250,
    "SCRIPT_MEMORY_MB": 32,
    "LOG_RETENTION_DAYS": 30,
    # `flask purge` deletes workflow runs created longer ago; None: LOG_RETENTION_DAYS.
    "WORKFLOW_RUN_RETENTION_DAYS": None,
    "QUEUE_NAME": "knock_sources",
    # Events still pending this long after receipt are re-enqueued by the sweeper.
    "SWEEP_GRACE_SECONDS": 60,
    # How often `flask worker` runs the sweeper.
    "SWEEP_INTERVAL_SECONDS": 30,
    "JOB_TIMEOUT_SECONDS": 300,
    # `/healthz` answers 503 once the oldest pending event has waited longer
    # than this; more than SWEEP_GRACE_SECONDS, after which the sweeper acts.
    "HEALTHZ_MAX_PENDING_AGE_SECONDS": 300,
    # How long a process trusts its cached view of a source's token, settings
    # and secrets; API writes clear the local cache immediately.
    "SOURCE_CACHE_SECONDS": 5,
    # How long a source environment's previous URL token keeps working after
    # `POST /v1/sources/{key}/rotate_token` (24 h, as Svix does for secrets).
    "TOKEN_GRACE_SECONDS": 86400,
    # The Segment-compatible tracking API (/segment/v1): the largest event, the
    # largest request (after gzip is inflated; RudderStack's SDK sends up to
    # 4 MB), and the browser origins allowed to call it (CORS; "*" for any).
    "SEGMENT_MAX_EVENT_BYTES": 32 * 1024,
    "SEGMENT_MAX_REQUEST_BYTES": 500 * 1024,
    "SEGMENT_CORS_ORIGINS": [],
    "LOAD_PLUGIN_ENTRYPOINTS": True,
    # Plugins that must not load: dotted module paths or entry-point names.
    "DISABLED_PLUGINS": [],
    # Plugin objects registered in addition to the built-in and installed ones (tests, embedding).
    "EXTRA_PLUGINS": [],
    # Dashboard sign-ins last this long, then the administrator signs in again.
    "SESSION_LIFETIME_HOURS": 12,
    # Failed or not, sign-in attempts per client address (``limits`` syntax: "10 per minute", "5/minute;50/hour").
    "LOGIN_RATE_LIMIT": "10 per minute",
    # Logs: "text" (readable lines) or "json" (one object per line).
    "LOG_FORMAT": "text",
    "LOG_LEVEL": "INFO",
    # Prometheus metrics. GET /metrics is answered only on METRICS_BIND (a
    # second listener that gunicorn.conf.py binds, host:port) or with
    # "Authorization: Bearer <METRICS_TOKEN>"; by default on neither, so it is
    # never public. Each `flask worker` serves its own on WORKER_METRICS_BIND.
    "METRICS_ENABLED": True,
    "METRICS_TOKEN": None,
    "METRICS_BIND": None,
    "WORKER_METRICS_BIND": "127.0.0.1:9465",
    # How often the backlog gauges (pending events, oldest age, workers) are sampled.
    "METRICS_SAMPLE_SECONDS": 10,
    # Replays: events per replay at most; the RQ queue (lower priority than
    # QUEUE_NAME's; default QUEUE_NAME-replay); how long a running replay may
    # go without progress before the sweeper resumes it elsewhere.
    "REPLAY_MAX_EVENTS": 10000,
    "REPLAY_QUEUE_NAME": None,
    "REPLAY_STALE_SECONDS": 300,
}

#: Keys whose values are never repeated in an error message.
SECRET_KEYS = frozenset({"SECRET_KEY", "SECRET_KEY_FALLBACKS", "METRICS_TOKEN"})

DEVELOPMENT_SECRET_KEY = DEFAULTS["SECRET_KEY"]
ENVIRONMENT_SLUG = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
#: First path segments of the API, ingestion and the tracking API: no environment may be called so,
#: since the dashboard's pages live under ``/<environment>/``.
RESERVED_SLUGS = ("v1", "segment", "integrations", "static")


def _whole(minimum: int = 1, **kwargs) -> fields.Integer:
    return fields.Integer(strict=True, validate=validate.Range(min=minimum), **kwargs)


def _is_whole(value) -> bool:
    try:
        _whole().deserialize(value)
    except ValidationError:
        return False
    return True


def _bind(value: str | None) -> None:
    try:
        parse_bind(value)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None


def _slug(value: str) -> None:
    if not ENVIRONMENT_SLUG.fullmatch(value):
        raise ValidationError("must be lower-case letters, digits, '-' or '_', at most 64 characters")
    if value in RESERVED_SLUGS:
        raise ValidationError(f"{value!r} is the start of other URLs; choose another name")


def _rate_limit(value: str) -> None:
    try:
        limits.parse_many(value)
    except ValueError:
        raise ValidationError("must be a rate limit such as '10 per minute' or '5/minute;50/hour'") from None


class ConfigSchema(Schema):
    """What each configuration key must hold. Keys it does not know (Flask's own) pass through."""

    class Meta:
        unknown = EXCLUDE

    DATABASE_URL = fields.String(validate=validate.Regexp(r"^(sqlite|postgres(ql)?)(\+\w+)?://"))
    REDIS_URL = fields.String(allow_none=True, validate=validate.Regexp(r"^rediss?://|^unix://"))
    SECRET_KEY = fields.String(validate=validate.Length(min=1))
    SECRET_KEY_FALLBACKS = fields.List(fields.String(validate=validate.Length(min=1)))
    PUBLIC_BASE_URL = fields.String(validate=validate.Regexp(r"^https?://[^/\s]+"))
    ENVIRONMENTS = fields.List(fields.String(validate=_slug), validate=validate.Length(min=1))
    IDEMPOTENCY_WINDOW_SECONDS = _whole()
    MAX_PAYLOAD_BYTES = _whole()
    SCRIPT_TIMEOUT_MS = _whole()
    SCRIPT_MEMORY_MB = _whole()
    LOG_RETENTION_DAYS = _whole()
    # None only when LOG_RETENTION_DAYS, which it follows, is itself invalid (``normalise``).
    WORKFLOW_RUN_RETENTION_DAYS = _whole(allow_none=True)
    QUEUE_NAME = fields.String(validate=validate.Length(min=1, max=128))
    SWEEP_GRACE_SECONDS = _whole(minimum=0)
    SWEEP_INTERVAL_SECONDS = _whole()
    JOB_TIMEOUT_SECONDS = _whole()
    HEALTHZ_MAX_PENDING_AGE_SECONDS = _whole()
    SOURCE_CACHE_SECONDS = fields.Float(validate=validate.Range(min=0))
    TOKEN_GRACE_SECONDS = _whole(minimum=0)
    SEGMENT_MAX_EVENT_BYTES = _whole()
    SEGMENT_MAX_REQUEST_BYTES = _whole()
    SEGMENT_CORS_ORIGINS = fields.List(fields.String(validate=validate.Regexp(r"^(\*|https?://[^/\s]+)$")))
    LOAD_PLUGIN_ENTRYPOINTS = fields.Boolean(truthy={True}, falsy={False})
    DISABLED_PLUGINS = fields.List(fields.String())
    EXTRA_PLUGINS = fields.List(fields.Raw())
    SESSION_LIFETIME_HOURS = _whole()
    LOGIN_RATE_LIMIT = fields.String(validate=_rate_limit)
    LOG_FORMAT = fields.String(validate=validate.OneOf(FORMATS))
    LOG_LEVEL = fields.String(validate=validate.OneOf(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]))
    METRICS_ENABLED = fields.Boolean(truthy={True}, falsy={False})
    METRICS_TOKEN = fields.String(allow_none=True, validate=validate.Length(min=1))
    METRICS_BIND = fields.String(allow_none=True, validate=_bind)
    WORKER_METRICS_BIND = fields.String(allow_none=True, validate=_bind)
    METRICS_SAMPLE_SECONDS = fields.Float(validate=validate.Range(min=0.01))
    REPLAY_MAX_EVENTS = _whole()
    REPLAY_QUEUE_NAME = fields.String(validate=validate.Length(min=1, max=128))
    REPLAY_STALE_SECONDS = _whole()

    @validates_schema
    def _pending_age_after_grace(self, data, **kwargs):
        grace, limit = data.get("SWEEP_GRACE_SECONDS"), data.get("HEALTHZ_MAX_PENDING_AGE_SECONDS")
        if grace is not None and limit is not None and limit <= grace:
            # Otherwise an event waiting for its first sweep would already count as stalled.
            raise ValidationError(
                "must be more than KNOCK_SOURCES_SWEEP_GRACE_SECONDS", "HEALTHZ_MAX_PENDING_AGE_SECONDS"
            )


def normalise(config) -> None:
    """Accept comma-separated strings where lists are expected."""
    for key in ("ENVIRONMENTS", "DISABLED_PLUGINS", "SECRET_KEY_FALLBACKS", "SEGMENT_CORS_ORIGINS"):
        value = config.get(key)
        if isinstance(value, str):
            config[key] = [item.strip() for item in value.split(",") if item.strip()]
    if isinstance(config.get("PUBLIC_BASE_URL"), str):
        config["PUBLIC_BASE_URL"] = config["PUBLIC_BASE_URL"].rstrip("/")
    config["REPLAY_QUEUE_NAME"] = config.get("REPLAY_QUEUE_NAME") or f"{config.get('QUEUE_NAME')}-replay"
    if config.get("WORKFLOW_RUN_RETENTION_DAYS") is None and _is_whole(config.get("LOG_RETENTION_DAYS")):
        # Followed only when usable: a bad LOG_RETENTION_DAYS is reported once, under its own name.
        config["WORKFLOW_RUN_RETENTION_DAYS"] = config["LOG_RETENTION_DAYS"]
    config["LOG_FORMAT"] = str(config.get("LOG_FORMAT")).lower()
    config["LOG_LEVEL"] = str(config.get("LOG_LEVEL")).upper()


def validate_config(config) -> None:
    """Raise ``ConfigurationError`` naming every key whose value is unusable.

    The message shows the offending values except those of ``SECRET_KEYS``,
    which are never repeated anywhere.
    """
    errors = ConfigSchema().validate(dict(config))
    if errors:
        problems = []
        for key, messages in sorted(errors.items()):
            shown = "" if key in SECRET_KEYS else f" (got {config.get(key)!r})"
            problems.append(f"KNOCK_SOURCES_{key}{shown}: {_first(messages)}")
        raise ConfigurationError("Invalid configuration: " + "; ".join(problems))


def _first(messages) -> str:
    while isinstance(messages, (dict, list)):
        messages = next(iter(messages.values())) if isinstance(messages, dict) else messages[0]
    return str(messages)


def warn_if_insecure(config, logger) -> None:
    """Log a warning when a server or worker starts with the development secret key (not in tests)."""
    if config["SECRET_KEY"] == DEVELOPMENT_SECRET_KEY and not config.get("TESTING"):
        logger.warning(
            "KNOCK_SOURCES_SECRET_KEY is not set: signing secrets and secret variables are "
            "encrypted with a public development key. Set it before storing real secrets."
        )

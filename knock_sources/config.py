"""Default configuration. Environment variables prefixed ``KNOCK_SOURCES_``
override each key (``KNOCK_SOURCES_DATABASE_URL`` sets ``DATABASE_URL``);
values are parsed as JSON when they parse, so numbers and lists work.
"""

from knock_sources.errors import ConfigurationError
from knock_sources.observability.exposition import parse_bind
from knock_sources.observability.logs import FORMATS

DEFAULTS = {
    # None: SQLite at instance/knock_sources.db (set by create_app).
    "DATABASE_URL": None,
    # None: jobs run in-process right after the event is logged.
    "REDIS_URL": None,
    # Encrypts signing secrets and secret variables at rest: set it in production.
    "SECRET_KEY": "dev-insecure-change-me",
    "PUBLIC_BASE_URL": "http://127.0.0.1:8000",
    "ENVIRONMENTS": ["development", "production"],
    "IDEMPOTENCY_WINDOW_SECONDS": 86400,
    "MAX_PAYLOAD_BYTES": 1024 * 1024,
    "SCRIPT_TIMEOUT_MS": 250,
    "SCRIPT_MEMORY_MB": 32,
    "LOG_RETENTION_DAYS": 30,
    "QUEUE_NAME": "knock_sources",
    # Events still pending this long after receipt are re-enqueued by the sweeper.
    "SWEEP_GRACE_SECONDS": 60,
    # How often `flask worker` runs the sweeper.
    "SWEEP_INTERVAL_SECONDS": 30,
    "JOB_TIMEOUT_SECONDS": 300,
    # How long a process trusts its cached view of a source's token, settings
    # and secrets; API writes clear the local cache immediately.
    "SOURCE_CACHE_SECONDS": 5,
    "LOAD_PLUGIN_ENTRYPOINTS": True,
    # Plugins that must not load: dotted module paths or entry-point names.
    "DISABLED_PLUGINS": [],
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
    # QUEUE_NAME's); how long a running replay may go without progress before
    # the sweeper resumes it elsewhere.
    "REPLAY_MAX_EVENTS": 10000,
    "REPLAY_QUEUE_NAME": None,
    "REPLAY_STALE_SECONDS": 300,
}


DEVELOPMENT_SECRET_KEY = DEFAULTS["SECRET_KEY"]


def normalise(config):
    """Accept comma-separated strings where lists are expected."""
    for key in ("ENVIRONMENTS", "DISABLED_PLUGINS"):
        value = config.get(key)
        if isinstance(value, str):
            config[key] = [item.strip() for item in value.split(",") if item.strip()]
    config["PUBLIC_BASE_URL"] = config["PUBLIC_BASE_URL"].rstrip("/")
    config["REPLAY_QUEUE_NAME"] = config["REPLAY_QUEUE_NAME"] or f"{config['QUEUE_NAME']}-replay"
    config["LOG_FORMAT"] = str(config["LOG_FORMAT"]).lower()
    config["LOG_LEVEL"] = str(config["LOG_LEVEL"]).upper()


def validate(config):
    """Stop the start with a clear message for a setting that cannot work."""
    if config["LOG_FORMAT"] not in FORMATS:
        raise ConfigurationError(f"KNOCK_SOURCES_LOG_FORMAT must be one of {', '.join(FORMATS)}.")
    if config["LOG_LEVEL"] not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ConfigurationError("KNOCK_SOURCES_LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL.")
    for key in ("METRICS_BIND", "WORKER_METRICS_BIND"):
        try:
            parse_bind(config[key])
        except ValueError as exc:
            raise ConfigurationError(f"KNOCK_SOURCES_{key}: {exc}.") from None
    for key in ("METRICS_SAMPLE_SECONDS", "REPLAY_MAX_EVENTS", "REPLAY_STALE_SECONDS"):
        value = config[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ConfigurationError(f"KNOCK_SOURCES_{key} must be a positive number.")


def warn_if_insecure(config, logger):
    """Log a warning when a server-backed deployment still uses the development secret key."""
    if config["SECRET_KEY"] == DEVELOPMENT_SECRET_KEY and not config.get("TESTING"):
        logger.warning(
            "KNOCK_SOURCES_SECRET_KEY is not set: signing secrets and secret variables are "
            "encrypted with a public development key. Set it before storing real secrets."
        )

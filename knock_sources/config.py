"""Default configuration. Environment variables prefixed ``KNOCK_SOURCES_``
override each key (``KNOCK_SOURCES_DATABASE_URL`` sets ``DATABASE_URL``);
values are parsed as JSON when they parse, so numbers and lists work.
"""

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
    # Dashboard sign-ins last this long, then the administrator signs in again.
    "SESSION_LIFETIME_HOURS": 12,
    # Failed or not, sign-in attempts per client address (Flask-Limiter syntax).
    "LOGIN_RATE_LIMIT": "10 per minute",
}


DEVELOPMENT_SECRET_KEY = DEFAULTS["SECRET_KEY"]


def normalise(config):
    """Accept comma-separated strings where lists are expected."""
    for key in ("ENVIRONMENTS", "DISABLED_PLUGINS"):
        value = config.get(key)
        if isinstance(value, str):
            config[key] = [item.strip() for item in value.split(",") if item.strip()]
    config["PUBLIC_BASE_URL"] = config["PUBLIC_BASE_URL"].rstrip("/")


def warn_if_insecure(config, logger):
    """Log a warning when a server-backed deployment still uses the development secret key."""
    if config["SECRET_KEY"] == DEVELOPMENT_SECRET_KEY and not config.get("TESTING"):
        logger.warning(
            "KNOCK_SOURCES_SECRET_KEY is not set: signing secrets and secret variables are "
            "encrypted with a public development key. Set it before storing real secrets."
        )

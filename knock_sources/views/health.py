"""``GET /healthz``: database and queue reachability, for load balancers."""

import logging

from flask import Blueprint, jsonify
from peewee import PeeweeException
from redis import RedisError

from knock_sources import store
from knock_sources.state import current_state

log = logging.getLogger(__name__)

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """Answer 200 when the database (and Redis, if configured) answer, 503 otherwise."""
    checks = {}
    try:
        store.db.execute_sql("SELECT 1")
        checks["database"] = "ok"
    except PeeweeException as exc:
        log.warning("health check: database unreachable: %s", exc)
        checks["database"] = "unreachable"
    queue = current_state().queue
    if queue is None:
        checks["queue"] = "embedded"
    else:
        try:
            queue.connection.ping()
            checks["queue"] = "ok"
        except RedisError as exc:
            log.warning("health check: Redis unreachable: %s", exc)
            checks["queue"] = "unreachable"
    healthy = "unreachable" not in checks.values()
    return jsonify({"status": "ok" if healthy else "degraded", "checks": checks}), 200 if healthy else 503

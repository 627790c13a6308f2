"""``GET /healthz``: whether the pipeline is up and moving, for load balancers and monitoring.

200 ``ok`` when the database (and Redis, if configured) answer, at least one
worker is alive in queued mode, and the oldest pending event has waited no
longer than ``HEALTHZ_MAX_PENDING_AGE_SECONDS``; 503 ``degraded`` otherwise.
The body names each check and reports the live workers, the number of
pending events and the age of the oldest, so that a stalled pipeline is
visible before anyone notices missing notifications.
"""

import logging

from flask import Blueprint, jsonify
from peewee import PeeweeException
from redis import RedisError

from knock_sources.state import current_state
from knock_sources.store import utcnow
from knock_sources.worker import jobs

log = logging.getLogger(__name__)

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """Answer 200 when every check passes, 503 ``degraded`` otherwise (see the module's documentation)."""
    state = current_state()
    checks, report = {}, {}
    try:
        backlog = jobs.backlog()
    except PeeweeException as exc:
        log.warning("health check: database unreachable: %s", exc)
        checks["database"] = "unreachable"
    else:
        checks["database"] = "ok"
        age = None if backlog.oldest_received_at is None else (utcnow() - backlog.oldest_received_at).total_seconds()
        report["pending"] = {"count": backlog.count, "capped": backlog.capped, "oldest_age_seconds": age}
        stalled = age is not None and age > state.config["HEALTHZ_MAX_PENDING_AGE_SECONDS"]
        checks["pending"] = "stalled" if stalled else "ok"
    if state.queue is None:
        checks["queue"] = checks["workers"] = "embedded"
    else:
        try:
            alive = jobs.workers_alive(state.queue)
        except RedisError as exc:
            log.warning("health check: Redis unreachable: %s", exc)
            checks["queue"] = "unreachable"
        else:
            checks["queue"] = "ok"
            checks["workers"] = "ok" if alive else "none_alive"
            report["workers"] = {"alive": alive}
    healthy = all(value in ("ok", "embedded") for value in checks.values())
    body = {"status": "ok" if healthy else "degraded", "checks": checks, **report}
    return jsonify(body), 200 if healthy else 503

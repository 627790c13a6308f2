"""``GET /metrics``: Prometheus' text format, for every process of the server at once.

Access is decided by ``observability.exposition.access``: on the metrics
listener, or with the metrics bearer token; elsewhere the route does not
exist, so the public ingest host never shows it.
"""

from flask import Blueprint, Response, request

from knock_sources.errors import AuthenticationRequired, NotFound
from knock_sources.observability import exposition, metrics
from knock_sources.state import current_state

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def scrape():
    """Answer the metrics of every web process (multiprocess mode) plus the cached backlog gauges."""
    state = current_state()
    bind = exposition.parse_bind(state.config["METRICS_BIND"])
    verdict = exposition.access(
        state.config["METRICS_TOKEN"],
        bind[1] if bind else None,
        request.environ.get("SERVER_PORT"),
        request.headers.get("Authorization"),
    )
    if verdict == exposition.MISSING:
        raise NotFound("The requested URL was not found on the server.", code="not_found")
    if verdict == exposition.UNAUTHORIZED:
        raise AuthenticationRequired("Send the metrics token as 'Authorization: Bearer <token>'.")
    return Response(metrics.render(state.backlog), mimetype=exposition.CONTENT_TYPE_LATEST)

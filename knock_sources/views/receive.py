"""The public ingestion endpoint, authenticated by its unguessable token."""

from flask import Blueprint, request

from knock_sources import ingest
from knock_sources.state import current_state

bp = Blueprint("receive", __name__)


def delivery_from_request(http_request) -> ingest.Delivery:
    """Return the plain-value ``Delivery`` of a Werkzeug request."""
    headers: dict[str, str] = {}
    for name, value in http_request.headers.items():
        name = name.lower()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return ingest.Delivery(
        headers=headers,
        stream=http_request.stream,
        content_length=http_request.content_length,
        mimetype=http_request.mimetype,
        remote_ip=http_request.remote_addr,
        charset=http_request.mimetype_params.get("charset"),
    )


@bp.post("/integrations/receive/<token>")
def receive(token):
    """Accept one event: 204 once it is durably logged (see ``ingest.receive``)."""
    ingest.receive(current_state(), token, delivery_from_request(request))
    return "", 204

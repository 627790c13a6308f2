"""Helpers for the Segment-style tests: sources that take track events, and calls to the tracking API."""

from __future__ import annotations

import base64
import gzip
import json


def basic(write_key: str, password: str = "") -> dict:
    """Return the ``Authorization: Basic`` header an SDK sends for ``write_key``."""
    token = base64.b64encode(f"{write_key}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def write_key(api, key: str, environment: str = "development") -> str:
    """Return the write key of a source environment, as the API shows it."""
    body = api.get(f"/v1/sources/{key}", environment=environment).get_json()
    return body["environment_settings"][environment]["settings"]["write_key"]


def post_call(client, route: str, body, *, headers=None, compress=False, content_type="application/json"):
    """POST ``body`` (JSON, or raw bytes) to ``/segment/v1/<route>``, gzip-compressed if asked."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = dict(headers or {})
    if compress:
        data = gzip.compress(data)
        headers["Content-Encoding"] = "gzip"
    return client.post(f"/segment/v1/{route}", data=data, headers=headers, content_type=content_type)


def track(event: str, user_id: str = "ada", message_id: str | None = None, **properties) -> dict:
    """Return a track call as SDKs send it in a batch."""
    call = {"type": "track", "event": event, "userId": user_id, "properties": properties}
    if message_id is not None:
        call["messageId"] = message_id
    return call


def identify(user_id: str, message_id: str | None = None, **traits) -> dict:
    """Return an identify call."""
    call = {"type": "identify", "userId": user_id, "traits": traits}
    if message_id is not None:
        call["messageId"] = message_id
    return call

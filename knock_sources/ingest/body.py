"""Reading and parsing a request body: size limit, content type, JSON or form encoding.

Used by ingestion (steps 2 and 3 of the pipeline) and by the JSON API, which
parses its own bodies with the same rules so that a body one accepts the
other accepts too.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qsl

from knock_sources.errors import PayloadError, PayloadTooLarge, UnsupportedMediaType

JSON_TYPES = ("application/json", "text/plain", "")
FORM_TYPE = "application/x-www-form-urlencoded"


def read_body(stream, content_length: int | None, limit: int) -> bytes:
    """Read at most ``limit`` bytes; ``PayloadTooLarge`` before reading more."""
    if content_length is not None and content_length > limit:
        raise PayloadTooLarge(f"The body is over the {limit}-byte limit.")
    raw = stream.read(limit + 1)
    if len(raw) > limit:
        raise PayloadTooLarge(f"The body is over the {limit}-byte limit.")
    return raw


def parse_body(raw: bytes, mimetype: str) -> tuple[dict, str]:
    """Parse a JSON or form-encoded body; return the dict and the decoded text.

    Raises a ``SourcesError`` for anything else.
    """
    if mimetype != FORM_TYPE and mimetype not in JSON_TYPES and not mimetype.endswith("+json"):
        raise UnsupportedMediaType(f"Content type {mimetype!r} is not supported; send JSON or form-encoded data.")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise PayloadError("The body is not valid UTF-8.", code="invalid_utf8") from None
    if mimetype == FORM_TYPE:
        return _parse_form(text), text
    try:
        body = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise PayloadError("The JSON body is nested too deeply.", code="too_deep") from None
    except ValueError as exc:
        raise PayloadError(f"The body is not valid JSON: {exc}", code="malformed_json") from None
    if not isinstance(body, dict):
        raise PayloadError("The JSON body must be an object.", code="not_an_object")
    return body, text


def is_form(mimetype: str) -> bool:
    """Return whether ``mimetype`` is form encoding (stored as parsed, not as received)."""
    return mimetype == FORM_TYPE


def _reject_constant(name):
    raise ValueError(f"{name} is not valid JSON")


def _parse_form(text: str) -> dict:
    body: dict = {}
    for key, value in parse_qsl(text, keep_blank_values=True):
        if key in body:
            previous = body[key]
            body[key] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            body[key] = value
    return body

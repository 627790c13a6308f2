"""Reading and parsing a request body: size limit, content encoding, content type, JSON or form encoding.

Used by ingestion (steps 2 and 3 of the pipeline), by the tracking API and
by the JSON API, which parses its own bodies with the same rules so that a
body one accepts the other accepts too.
"""

from __future__ import annotations

import json
import zlib
from urllib.parse import parse_qsl

from knock_sources.errors import PayloadError, PayloadTooLarge, UnsupportedMediaType

JSON_TYPES = ("application/json", "text/plain", "")
FORM_TYPE = "application/x-www-form-urlencoded"
GZIP_ENCODINGS = ("gzip", "x-gzip")
IDENTITY_ENCODINGS = ("", "identity")
# Inflated in steps of this size, so that a bomb is stopped at the limit, not after it exploded.
INFLATE_CHUNK = 64 * 1024


def read_body(stream, content_length: int | None, limit: int) -> bytes:
    """Read at most ``limit`` bytes; ``PayloadTooLarge`` before reading more.

    ``content_length`` is ``None`` for a chunked body, which is capped while
    it is read.
    """
    if content_length is not None and content_length > limit:
        raise PayloadTooLarge(f"The body is over the {limit}-byte limit.")
    raw = stream.read(limit + 1)
    if len(raw) > limit:
        raise PayloadTooLarge(f"The body is over the {limit}-byte limit.")
    return raw


def inflate(raw: bytes, encoding: str, limit: int) -> bytes:
    """Return ``raw`` decoded from its ``Content-Encoding`` (gzip or none), at most ``limit`` bytes.

    Werkzeug does not decode request bodies, so this is done here, in
    bounded steps: a body that inflates past ``limit`` is refused with
    ``PayloadTooLarge`` having cost no more than ``limit`` bytes of memory.
    A body marked gzip that is not gzip is a ``PayloadError``; an encoding
    other than gzip is ``UnsupportedMediaType``.
    """
    encoding = encoding.strip().lower()
    if encoding in IDENTITY_ENCODINGS:
        return raw
    if encoding not in GZIP_ENCODINGS:
        raise UnsupportedMediaType(
            f"Content encoding {encoding!r} is not supported; send gzip or no encoding.",
            code="unsupported_content_encoding",
        )
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    out = bytearray()
    pending = raw
    try:
        while not decompressor.eof:
            chunk = decompressor.decompress(pending, INFLATE_CHUNK)
            out += chunk
            if len(out) > limit:
                raise PayloadTooLarge(f"The body inflates past the {limit}-byte limit.")
            pending = decompressor.unconsumed_tail
            if not chunk and not pending:
                break
    except zlib.error:
        raise PayloadError("The body is marked gzip but is not valid gzip data.", code="malformed_gzip") from None
    if not decompressor.eof:
        raise PayloadError("The gzip body is truncated.", code="malformed_gzip")
    return bytes(out)


def decode_json(raw: bytes):
    """Parse ``raw`` as UTF-8 JSON of any shape; return the value and the decoded text.

    Raises ``PayloadError`` for invalid UTF-8, invalid JSON (NaN and
    Infinity included) and nesting too deep to parse.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise PayloadError("The body is not valid UTF-8.", code="invalid_utf8") from None
    try:
        return json.loads(text, parse_constant=_reject_constant), text
    except RecursionError:
        raise PayloadError("The JSON body is nested too deeply.", code="too_deep") from None
    except ValueError as exc:
        raise PayloadError(f"The body is not valid JSON: {exc}", code="malformed_json") from None


def parse_body(raw: bytes, mimetype: str, *, allow_array: bool = False) -> tuple[dict | list, str]:
    """Parse a JSON or form-encoded body; return the dict (or, if allowed, the list) and the decoded text.

    Raises a ``SourcesError`` for anything else.
    """
    if mimetype != FORM_TYPE and mimetype not in JSON_TYPES and not mimetype.endswith("+json"):
        raise UnsupportedMediaType(f"Content type {mimetype!r} is not supported; send JSON or form-encoded data.")
    if mimetype == FORM_TYPE:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise PayloadError("The body is not valid UTF-8.", code="invalid_utf8") from None
        return _parse_form(text), text
    body, text = decode_json(raw)
    if not isinstance(body, dict) and not (allow_array and isinstance(body, list)):
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

"""Reading and parsing a request body: size limit, content encoding, character set, content type, JSON or form.

Used by ingestion (steps 2 and 3 of the pipeline), by the tracking API and
by the JSON API, which parses its own bodies with the same rules so that a
body one accepts the other accepts too. Every refusal is a ``SourcesError``
with its status:

- a body that cannot be read (a malformed chunked encoding), inflated or
  decoded, or JSON that is malformed, nested too deeply, not an object, or
  holds a number JSON cannot carry (``NaN``, ``Infinity``, ``1e999999``): 400;
- a content type, content encoding or character set that is not supported: 415;
- a body over the limit, before or after inflating: 413.

Text is decoded by its byte-order mark, else by the ``charset`` parameter,
else as UTF-8. JSON is parsed at once (C speed); a form body is parsed when
first needed, in linear time, so that a source whose provider verifies the
raw bytes does no body-proportional work for a request it refuses.
"""

from __future__ import annotations

import codecs
import json
import math
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from urllib.parse import parse_qsl

from knock_sources.errors import PayloadError, PayloadTooLarge, UnsupportedMediaType

JSON_TYPES = ("application/json", "text/plain", "")
FORM_TYPE = "application/x-www-form-urlencoded"
# UTF-32's marks first: UTF-32-LE's begins with UTF-16-LE's.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
# Python text codecs that are not character sets a sender could mean: they
# turn escapes in the text into arbitrary characters.
_NOT_CHARSETS = frozenset({"unicode_escape", "raw_unicode_escape", "idna", "punycode", "undefined"})
GZIP_ENCODINGS = ("gzip", "x-gzip")
IDENTITY_ENCODINGS = ("", "identity")
# Inflated in steps of this size, so that a bomb is stopped at the limit, not after it exploded.
INFLATE_CHUNK = 64 * 1024
JSON_AS_FORM_NOTE = (
    "the body was sent form-encoded (curl -d without a Content-Type) but is a JSON object, so it was read "
    "as JSON; send it with Content-Type: application/json"
)


def read_body(stream, content_length: int | None, limit: int) -> bytes:
    """Read at most ``limit`` bytes; ``PayloadTooLarge`` before reading more, ``PayloadError`` if unreadable.

    ``content_length`` is ``None`` for a chunked body, which is capped while
    it is read.
    """
    if content_length is not None and content_length > limit:
        raise PayloadTooLarge(f"The body is over the {limit}-byte limit.")
    try:
        raw = stream.read(limit + 1)
    except Exception as exc:
        # Only the server's reader runs here, refusing the framing: a chunk
        # size that is not hexadecimal, a chunk cut short. Each server has its
        # own exceptions (gunicorn's ParseException subclasses, Werkzeug's
        # OSError and ClientDisconnected), none of them an error of ours.
        raise PayloadError(
            "The body could not be read: its transfer encoding is malformed.",
            code="malformed_body",
            detail=f"the body could not be read: {type(exc).__name__}",
        ) from None
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


def decode(raw: bytes, charset: str | None = None) -> tuple[str, str]:
    """Return the body's text and the encoding it was decoded with (by BOM, ``charset``, else UTF-8)."""
    encoding, start = _encoding(raw, charset)
    try:
        return raw[start:].decode(encoding), encoding
    except UnicodeDecodeError:
        if encoding == "utf-8":
            raise PayloadError("The body is not valid UTF-8.", code="invalid_utf8") from None
        raise PayloadError(f"The body is not valid {encoding}.", code="invalid_encoding") from None


def _encoding(raw: bytes, charset: str | None) -> tuple[str, int]:
    for bom, encoding in _BOMS:
        if raw.startswith(bom):
            return encoding, len(bom)
    if not charset:
        return "utf-8", 0
    try:
        info = codecs.lookup(charset)
    except LookupError:
        info = None
    if info is None or not getattr(info, "_is_text_encoding", True) or info.name.replace("-", "_") in _NOT_CHARSETS:
        raise UnsupportedMediaType(
            f"Character set {charset[:64]!r} is not supported; send UTF-8.", code="unsupported_charset"
        )
    return info.name, 0


class _NumberOutOfRange(ValueError):
    pass


def _finite(text: str) -> float:
    number = float(text)
    if math.isinf(number):
        raise _NumberOutOfRange(text)
    return number


def _reject_constant(name):
    raise ValueError(f"{name} is not valid JSON")


def decode_json(raw: bytes, charset: str | None = None):
    """Decode ``raw`` and parse it as JSON of any shape; return the value and the decoded text."""
    text, _ = decode(raw, charset)
    return _loads(text), text


def _loads(text: str):
    try:
        return json.loads(text, parse_constant=_reject_constant, parse_float=_finite)
    except RecursionError:
        raise PayloadError("The JSON body is nested too deeply.", code="too_deep") from None
    except _NumberOutOfRange as exc:
        raise PayloadError(
            f"The body holds a number JSON cannot carry: {str(exc)[:40]} is out of range.", code="number_out_of_range"
        ) from None
    except ValueError as exc:
        raise PayloadError(f"The body is not valid JSON: {exc}", code="malformed_json") from None


def parse_json(text: str, *, allow_array: bool = False) -> dict | list:
    """Parse a JSON object (or, if allowed, an array); ``PayloadError`` for anything else."""
    body = _loads(text)
    if not isinstance(body, dict) and not (allow_array and isinstance(body, list)):
        raise PayloadError("The JSON body must be an object.", code="not_an_object")
    return body


def _parse_form(text: str, encoding: str) -> dict:
    """Parse form encoding into a dict; a repeated key's values become a list. Linear in the body."""
    body: dict = {}
    for key, value in parse_qsl(text, keep_blank_values=True, encoding=encoding):
        previous = body.setdefault(key, value)
        if previous is value:
            continue
        if isinstance(previous, list):
            previous.append(value)
        else:
            body[key] = [previous, value]
    return body


def _json_object(text: str) -> dict | None:
    """``text`` as a JSON object when it is one, else ``None`` (a form body that is really JSON)."""
    if not text.lstrip().startswith("{"):
        return None
    try:
        return parse_json(text)
    except PayloadError:
        return None


@dataclass(frozen=True)
class RequestBody:
    """A request body, decoded; ``data`` is parsed on first use for forms, at once for JSON.

    ``allow_array``: a JSON array is accepted too (a batch, for providers that send them).
    """

    text: str
    encoding: str
    form: bool
    allow_array: bool = False

    @classmethod
    def parse(cls, raw: bytes, mimetype: str, charset: str | None = None, *, allow_array: bool = False) -> RequestBody:
        """Check the content type, decode, and parse JSON; raises a ``SourcesError``."""
        form = mimetype == FORM_TYPE
        if not form and mimetype not in JSON_TYPES and not mimetype.endswith("+json"):
            raise UnsupportedMediaType(f"Content type {mimetype!r} is not supported; send JSON or form-encoded data.")
        text, encoding = decode(raw, charset)
        body = cls(text, encoding, form, allow_array)
        if not form:
            body.data  # noqa: B018 - parsed now: a malformed JSON body is refused before verification
        return body

    @cached_property
    def _parsed(self) -> tuple[dict | list, bool]:
        if not self.form:
            return parse_json(self.text, allow_array=self.allow_array), False
        as_json = _json_object(self.text)
        if as_json is not None:
            return as_json, True
        return _parse_form(self.text, self.encoding), False

    @property
    def data(self) -> dict | list:
        """The parsed body."""
        return self._parsed[0]

    @property
    def note(self) -> str | None:
        """Something the sender should know about how the body was read (a JSON body sent as a form)."""
        return JSON_AS_FORM_NOTE if self._parsed[1] else None

    @property
    def json_text(self) -> str | None:
        """The JSON text received, when it can be stored as is (valid JSON, decoded from UTF-8)."""
        return self.text if self.encoding == "utf-8" and (not self.form or self._parsed[1]) else None

    def verifier_view(self) -> dict | list | Mapping:
        """What a provider's verifier sees as the body: ``data``, or for a form a view that parses only when read."""
        return _Deferred(self) if self.form else self.data


class _Deferred(Mapping):
    def __init__(self, body: RequestBody):
        self._body = body

    def __getitem__(self, key):
        return self._body.data[key]

    def __iter__(self) -> Iterator:
        return iter(self._body.data)

    def __len__(self) -> int:
        return len(self._body.data)

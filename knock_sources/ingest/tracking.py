"""The Segment-compatible tracking API: calls from Segment's and RudderStack's SDKs, one event log per item.

An application instrumented with those SDKs points their host at
``<PUBLIC_BASE_URL>/segment`` and keeps sending ``track``, ``identify`` and
the rest; the write key is the token of a source environment whose provider
takes such calls (``Provider.tracking_api``). What the real clients do, and
so what this module accepts (reference: cdp-and-dashboards.md, section A):

- the write key arrives as the HTTP Basic username (rudder-sdk-python,
  segment-analytics-python 2.4), as ``writeKey`` in the body
  (segment-analytics-python up to 2.3, analytics.js), or both; two that
  differ are refused;
- bodies are JSON whatever the content type (analytics.js sends
  ``text/plain``), gzip-compressed (rudder-sdk-python's default) and
  chunked; sizes are capped while reading and after inflating;
- a batch is accepted with 200 even when some items are not: each bad item
  is logged as rejected and reported in the answer, never failing the rest;
- SDKs resend a batch they got no 200 for with the same messageIds, so a
  messageId received before is logged as idempotent and runs nothing;
- ``timestamp`` is kept when given, otherwise corrected for the device's
  clock skew (``receivedAt - (sentAt - originalTimestamp)``); ``receivedAt``
  is always ours.

Each accepted item is one pending event log, processed by the worker like
an event from any other source.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from knock_sources.errors import AuthenticationRequired, PayloadError, PayloadTooLarge, SourcesError
from knock_sources.ingest import body, count_request, eventlog, find_source_environment, track, verification
from knock_sources.ingest.cache import ReceivingEnvironment
from knock_sources.observability.metrics import ACCEPTED
from knock_sources.observability.metrics import IDEMPOTENT as IDEMPOTENT_OUTCOME
from knock_sources.providers import Envelope
from knock_sources.signing import constant_time_equal
from knock_sources.store import PENDING, REJECTED, utcnow
from knock_sources.worker import idempotency, jobs, rules

if TYPE_CHECKING:
    from knock_sources.state import KnockSources

#: Route -> the call type it sets; ``None`` for the batch routes.
ROUTES = {
    "track": "track",
    "t": "track",
    "identify": "identify",
    "i": "identify",
    "page": "page",
    "p": "page",
    "screen": "screen",
    "s": "screen",
    "group": "group",
    "g": "group",
    "alias": "alias",
    "a": "alias",
    "batch": None,
    "b": None,
    "import": None,
}
#: Batch-level keys merged into every item (the item's own keys win).
BATCH_DEFAULTS = ("context", "integrations")
# The write key authenticated the call: recorded like a verified signature.
VERIFIED = verification.Verdict(verification.VerificationStatus.ENFORCED_VERIFIED)


@dataclass(frozen=True)
class Rejection:
    """One item of a call that was not accepted: its position, messageId, code and message."""

    index: int
    message_id: str | None
    code: str
    message: str


@dataclass(frozen=True)
class Outcome:
    """What became of a call: how many items were accepted (retries included) and which were not."""

    accepted: int
    rejected: list[Rejection]
    #: Accepted items that are not SDK retries of earlier ones.
    new: int = 0


def basic_username(authorization: str | None) -> str | None:
    """Return the username of an ``Authorization: Basic`` header, or ``None`` (other schemes included)."""
    scheme, _, credentials = (authorization or "").strip().partition(" ")
    if scheme.lower() != "basic" or not credentials.strip():
        return None
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise AuthenticationRequired("The Basic credentials are not valid base64.", code="invalid_write_key") from None
    return decoded.partition(":")[0] or None


def body_write_key(payload: dict) -> str | None:
    """Return ``writeKey`` from the body: top level, else the first batch item's (as analytics.js sends)."""
    key = payload.get("writeKey")
    batch = payload.get("batch")
    if key is None and isinstance(batch, list) and batch and isinstance(batch[0], dict):
        key = batch[0].get("writeKey")
    return key if isinstance(key, str) and key else None


def find_writer(state: KnockSources, write_key: str | None) -> ReceivingEnvironment:
    """Return the source environment a write key names; ``AuthenticationRequired`` when none does."""
    if write_key is None:
        raise AuthenticationRequired(
            "Send the write key as the HTTP Basic username or as writeKey in the body.", code="write_key_missing"
        )
    try:
        return find_source_environment(state.cache, write_key)
    except SourcesError as exc:
        if exc.status != 404:
            raise
        raise AuthenticationRequired("The write key is not valid.", code="invalid_write_key") from None


def receive_calls(state: KnockSources, route: str, delivery) -> Outcome:
    """Accept one call to ``/segment/v1/<route>``: every acceptable item becomes a committed event log.

    Raises a ``SourcesError`` when the request as a whole is refused (and for
    a single-call route, when its one item is), after logging it against the
    source environment once one is known. Each request is counted by its
    outcome: ``accepted``, ``idempotent`` (only SDK retries), or the refusal's code.
    """
    started = time.perf_counter()
    found: list[ReceivingEnvironment] = []
    try:
        outcome = _receive_calls(state, route, delivery, found)
    except SourcesError as exc:
        count_request(state.metrics, found[0] if found else None, exc.code, started, route="segment")
        raise
    counted_as = IDEMPOTENT_OUTCOME if outcome.accepted and not outcome.new else ACCEPTED
    count_request(state.metrics, found[0], counted_as, started, route="segment")
    return outcome


def _receive_calls(state: KnockSources, route: str, delivery, found: list) -> Outcome:
    """``receive_calls``, telling ``found`` the source environment once it is known."""
    config = state.config
    basic = basic_username(delivery.headers.get("authorization"))
    receiving = find_writer(state, basic) if basic else None
    if receiving is not None:
        found.append(receiving)
    in_body = None
    headers = verification.stored_headers(delivery.headers, verification.CREDENTIAL_HEADERS)
    raw = b""
    try:
        limit = config["SEGMENT_MAX_REQUEST_BYTES"]
        raw = body.read_body(delivery.stream, delivery.content_length, limit)
        raw = body.inflate(raw, delivery.headers.get("content-encoding", ""), limit)
        payload, _ = body.decode_json(raw)
        if not isinstance(payload, dict):
            raise PayloadError("The JSON body must be an object.", code="not_an_object")
        in_body = body_write_key(payload)
        if basic and in_body and not constant_time_equal(basic, in_body):
            raise AuthenticationRequired(
                "The Basic write key and the body's writeKey differ.", code="write_key_mismatch"
            )
        if receiving is None:
            receiving = find_writer(state, in_body)
            found.append(receiving)
        provider = state.registry.providers.get(receiving.provider)
        if provider is None or not provider.tracking_api:
            raise SourcesError(
                f"Sources of kind {receiving.provider!r} do not take tracking API calls; "
                "use a legacy_http, segment, rudderstack, jitsu or freshpaint source.",
                code="tracking_not_supported",
                status=403,
            )
        calls = calls_of(route, payload)
    except SourcesError as exc:
        if receiving is not None:
            # The write key is a credential: never stored, even inside a refused body.
            for key in filter(None, (basic, in_body)):
                raw = raw.replace(key.encode("utf-8"), verification.REDACTED.encode("ascii"))
            # Not an ingest URL's request: a replay could not verify it as one.
            eventlog.log_rejection(receiving, exc, headers, raw, delivery.remote_ip, replayable=False)
        raise
    received_at = utcnow()
    envelope = Envelope(delivery.headers, raw, payload, delivery.remote_ip, received_at)
    batch = ROUTES[route] is None
    context = CallContext(
        route_type=ROUTES[route],
        defaults={name: payload[name] for name in BATCH_DEFAULTS if batch and isinstance(payload.get(name), dict)},
        sent_at=payload.get("sentAt") if batch else None,
        received_at=received_at,
        max_bytes=config["SEGMENT_MAX_EVENT_BYTES"],
    )
    entries = [check_item(provider, receiving, item, context) for item in calls]
    window = timedelta(seconds=config["IDEMPOTENCY_WINDOW_SECONDS"])
    stored = eventlog.persist_batch(receiving, envelope, headers, VERIFIED, entries, window=window)
    for row in stored:
        if row.status == PENDING:
            jobs.submit_event(state, row.id)
    rejected = [
        Rejection(index, _message_id(entry.body), entry.rejection.code, entry.rejection.message)
        for index, entry in enumerate(entries)
        if entry.rejection is not None
    ]
    if not batch and rejected:
        raise entries[0].rejection
    new = sum(1 for row in stored if row.status == PENDING)
    return Outcome(sum(1 for row in stored if row.status != REJECTED), rejected, new)


def calls_of(route: str, payload: dict) -> list:
    """Return the items of a call: the body for a single-call route, ``batch`` for the batch routes."""
    if ROUTES[route] is not None:
        return [payload]
    batch = payload.get("batch")
    if not isinstance(batch, list):
        raise PayloadError("A batch call needs a batch array.", code="invalid_batch")
    if not batch:
        raise PayloadError("The batch array holds no calls.", code="empty_batch")
    return batch


@dataclass(frozen=True)
class CallContext:
    """What every item of one request shares: the route's type, the batch's defaults, the times, the size cap."""

    route_type: str | None
    #: Batch-level ``context`` and ``integrations``.
    defaults: dict
    #: The batch's ``sentAt``, for items without their own.
    sent_at: object
    received_at: datetime
    max_bytes: int


def check_item(provider, receiving: ReceivingEnvironment, item, context: CallContext) -> eventlog.Entry:
    """Check and complete one item on its own: an accepted ``eventlog.Entry``, or one carrying its rejection."""
    if isinstance(item, dict):
        # The write key is a credential, never stored.
        item = {key: value for key, value in item.items() if key != "writeKey"}
    try:
        if not isinstance(item, dict):
            raise PayloadError("A call must be a JSON object.", code="not_an_object")
        size = len(json.dumps(item, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass"))
        if size > context.max_bytes:
            raise PayloadTooLarge(
                f"The call is {size} bytes, over the {context.max_bytes}-byte limit.", code="event_too_large"
            )
        call = complete(item, context)
        normalized = provider.normalize(call)
    except SourcesError as exc:
        return eventlog.Entry(item, rejection=exc)
    scope = rules.make_scope(call, None, None, normalized)
    return eventlog.Entry(
        call,
        normalized,
        message_key=idempotency.message_key(call.get("messageId")),
        event_type=rules.identify_event(provider, receiving.settings, scope)[0],
    )


def complete(item: dict, context: CallContext) -> dict:
    """Return the call as it is stored: typed by its route, batch defaults merged, checked, timed.

    Ids sent as numbers become text (``track.check_call``).
    """
    call = dict(item)
    if context.route_type is not None:
        call["type"] = context.route_type
    for name, default in context.defaults.items():
        own = call.get(name)
        if own is None:
            call[name] = default
        elif isinstance(own, dict):
            call[name] = {**default, **own}
    call = track.check_call(call)
    stamp_times(call, context.sent_at, context.received_at)
    return call


def stamp_times(call: dict, batch_sent_at, received_at: datetime) -> None:
    """Set ``receivedAt`` (always ours) and, when the caller sent none, ``timestamp``.

    The timestamp is ``receivedAt - (sentAt - originalTimestamp)``: the time
    of the call corrected for the device's clock, with the item's ``sentAt``
    or else the batch's; ``originalTimestamp`` alone is taken as it is, and
    nothing at all means the time of receipt.
    """
    call["receivedAt"] = _iso(received_at)
    if call.get("timestamp") is not None:
        return
    original = _parse(call.get("originalTimestamp"))
    sent = _parse(call.get("sentAt", batch_sent_at))
    if original is not None and sent is not None:
        call["timestamp"] = _iso(received_at - (sent - original))
    else:
        call["timestamp"] = _iso(original or received_at)


def _parse(value) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(timezone.utc).replace(tzinfo=None)
    return parsed


def _iso(value: datetime) -> str:
    return value.isoformat(timespec="milliseconds") + "Z"


def _message_id(item) -> str | None:
    message_id = item.get("messageId") if isinstance(item, dict) else None
    return message_id if isinstance(message_id, str) else None

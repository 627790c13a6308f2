"""The Segment spec: the one home of the rules for Segment-style calls (track, identify, page, ...).

Three kinds of source take such calls, each with its own strictness:

- the legacy HTTP source accepts one ``track`` event per request, checked
  field by field (``check_legacy_track``, Knock's legacy schema);
- CDP webhook destinations (Segment, RudderStack, Jitsu, Freshpaint) send
  whole Segment events, checked only as far as the pipeline needs them
  (``check_event``): ``SegmentSpecProvider`` is their base class;
- the tracking API, which SDKs call directly, applies Segment's HTTP API
  rules on top (``check_call``: a valid method, a user or anonymous id).

Every one of them stores Knock's normalized form beside the call
(``normalize``): ``event`` (the event name, or the call type), ``user_id``
(``userId``) and ``data`` (``properties``, or the traits of identify and
group calls, taken from ``context.traits`` when there are no top-level
``traits``, as RudderStack sends them).
"""

from __future__ import annotations

from typing import Any, Mapping

from marshmallow import INCLUDE, Schema, fields, validate

from knock_sources.errors import InvalidEvent, PayloadError
from knock_sources.paths import MISSING
from knock_sources.providers import DefaultMapping, SharedSecretProvider

#: The methods of the Segment spec.
SPEC_TYPES = ("track", "identify", "page", "screen", "group", "alias")
#: Identifier fields; SDKs may send numbers, which are taken as text.
ID_FIELDS = ("userId", "anonymousId", "groupId", "previousId")
#: Where identify calls go instead of the legacy source.
IDENTIFY_HINT = (
    "The legacy HTTP source accepts track events only, not identify calls: identify users through the "
    "tracking API (POST /segment/v1/identify) or a CDP source (segment, rudderstack) with handle_identifies on."
)

#: What "handle identifies" runs for an identify call: Knock's legacy Segment mapping.
IDENTIFY_MAPPING = DefaultMapping(
    event_type="identify",
    action_type="users_identify",
    action_parameters={
        "id": "body.userId",
        "name": "data.name",
        "email": "data.email",
        "phone_number": "data.phone",
        "avatar": "data.avatar",
        "locale": "data.locale",
        "timezone": "data.timezone",
        "properties": "data",
    },
)


def traits_of(call: Mapping[str, Any]) -> dict:
    """Return a call's traits: top-level ``traits``, else ``context.traits``, else ``{}``."""
    traits = call.get("traits")
    if isinstance(traits, dict):
        return traits
    context = call.get("context")
    traits = context.get("traits") if isinstance(context, dict) else None
    return traits if isinstance(traits, dict) else {}


def normalize(call: Mapping[str, Any]) -> dict:
    """Return Knock's normalized form of a Segment call: ``{"event", "user_id", "data"}``."""
    kind = call.get("type")
    if kind in ("identify", "group"):
        data = traits_of(call)
    else:
        properties = call.get("properties")
        data = properties if isinstance(properties, dict) else {}
    return {
        "event": call.get("event") if kind == "track" else kind,
        "user_id": call.get("userId"),
        "data": data,
    }


def event_type(call_type: Any, event: Any):
    """Return the event type of the CDP templates: ``track/<event>`` or the call type; ``MISSING`` if neither."""
    if call_type == "track":
        return f"track/{event}" if isinstance(event, str) and event else MISSING
    return call_type if isinstance(call_type, str) and call_type else MISSING


def check_event(call) -> None:
    """Raise ``PayloadError`` unless ``call`` is an event the pipeline can type: an object with a type."""
    if not isinstance(call, dict):
        raise PayloadError("An event must be a JSON object.", code="not_an_object")
    if not (isinstance(call.get("type"), str) and call["type"]):
        raise InvalidEvent("The event has no type.", {"type": ["Missing a string type."]}, code="missing_type")
    if call["type"] == "track" and not (isinstance(call.get("event"), str) and call["event"]):
        raise InvalidEvent(
            "A track call needs an event name.", {"event": ["Missing a string event."]}, code="missing_event"
        )


def check_call(call) -> dict:
    """Apply Segment's HTTP API rules to one call; return it with numeric ids as text.

    Raises ``PayloadError`` with Segment's codes where it has them
    (``no_user_anon_id``) and ours otherwise.
    """
    check_event(call)
    if call["type"] not in SPEC_TYPES:
        raise InvalidEvent(
            f"Unknown call type {call['type']!r}.",
            {"type": [f"Must be one of: {', '.join(SPEC_TYPES)}."]},
            code="invalid_type",
        )
    call = dict(call)
    for name in ID_FIELDS:
        value = call.get(name)
        if isinstance(value, bool) or not isinstance(value, (str, int, float, type(None))):
            raise InvalidEvent(f"{name} must be a string.", {name: ["Not a valid id."]}, code="invalid_id")
        if isinstance(value, (int, float)):
            call[name] = str(int(value)) if float(value).is_integer() else str(value)
    if not (call.get("userId") or call.get("anonymousId")):
        raise InvalidEvent(
            "Every call needs a userId or an anonymousId.",
            {"userId": ["Missing a userId or an anonymousId."]},
            code="no_user_anon_id",
        )
    required = {"group": ("groupId",), "alias": ("previousId", "userId")}.get(call["type"], ())
    missing = {name: ["Missing data for required field."] for name in required if not call.get(name)}
    if missing:
        raise InvalidEvent(f"A {call['type']} call needs {' and '.join(missing)}.", missing, code="missing_field")
    return call


class LegacyTrackSchema(Schema):
    """Knock's legacy HTTP event: a Segment ``track`` call (other Segment keys are allowed)."""

    class Meta:
        unknown = INCLUDE

    type = fields.String(required=True, validate=validate.OneOf(["track"]))
    event = fields.String(required=True, validate=validate.Length(min=1, max=255))
    properties = fields.Dict(allow_none=True)
    userId = fields.String(allow_none=True)
    messageId = fields.String(allow_none=True)
    timestamp = fields.DateTime(format="iso", allow_none=True)


_legacy_schema = LegacyTrackSchema()


def check_legacy_track(body: dict) -> None:
    """Raise ``InvalidEvent`` (400, with field errors) unless ``body`` is one legacy track event."""
    if body.get("type") == "identify":
        raise InvalidEvent(IDENTIFY_HINT, {"type": ["Must be track."]}, code="identify_not_supported")
    errors = _legacy_schema.validate(body)
    if errors:
        raise InvalidEvent("The body is not a valid track event.", errors)


class SegmentSpecProvider(SharedSecretProvider):
    """Base class of CDP sources sending Segment-spec events (Segment, RudderStack, Jitsu, Freshpaint).

    Events are typed ``track/<event>`` for track calls and by their call
    type otherwise; the time is ``body.timestamp`` and the idempotency key
    ``body.messageId`` (on by default). A JSON array is a batch. With the
    ``handle_identifies`` setting on (the default), identify calls create or
    update the user (``IDENTIFY_MAPPING``). Unsigned unless a subclass signs:
    an optional shared secret goes in ``Authorization: Bearer <secret>``.
    """

    categories = ("Analytics", "CDP")
    batches = True
    tracking_api = True
    # The type is composed from two fields (see event_type).
    event_type_path = None
    timestamp_path = "body.timestamp"
    # Every Segment-spec sender fills messageId and keeps it across retries.
    idempotency_key_path = "body.messageId"
    secret_header = "authorization"

    def event_type(self, resolve):
        """Return ``track/<event>`` for a track call, else the call type (``identify``, ``page``...)."""
        return event_type(resolve("body.type"), resolve("body.event"))

    def normalize(self, body):
        """Check that the event has a type (and a track call an event name); return its normalized form."""
        check_event(body)
        return normalize(body)

    def default_settings(self):
        """CDP sources identify users from identify calls unless ``handle_identifies`` is switched off."""
        return {**super().default_settings(), "handle_identifies": True}

    def implicit_mappings(self, settings, event_type):
        """Identify the user of an identify call while ``handle_identifies`` is on."""
        if event_type == IDENTIFY_MAPPING.event_type and settings.get("handle_identifies", True):
            return (IDENTIFY_MAPPING,)
        return ()

    def describe(self):
        """Describe the provider, with the mapping "handle identifies" runs."""
        return {**super().describe(), "handle_identifies_mapping": IDENTIFY_MAPPING.to_dict()}

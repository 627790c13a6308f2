"""The rules for one event, wherever it is judged: its scope, type, timestamp and mappings.

The worker's batches (``batch.py``), the rehearsal of a payload and a
replay's dry run all read an event through here, so that what they report
is what processing does.
"""

from __future__ import annotations

from datetime import datetime, timezone

from knock_sources.paths import MISSING, resolve
from knock_sources.providers import Provider
from knock_sources.store import unstorable
from knock_sources.store.control import Mapping

UNKNOWN_EVENT_TYPE = "unknown"
MAX_EVENT_TYPE_LENGTH = 255
# Unix timestamps above this are taken as milliseconds (year 5138 in seconds).
MILLISECONDS_THRESHOLD = 10**11


def scope_of(event_log) -> dict:
    """Return the ``{body, headers, preprocess}`` scope that paths resolve against."""
    return make_scope(event_log.body, event_log.headers, event_log.preprocess_output, event_log.normalized)


def make_scope(
    body: dict | None, headers: dict | None, preprocess: dict | None, normalized: dict | None = None
) -> dict:
    """Return the scope paths resolve against: ``body``, ``headers`` (lower-cased) and ``preprocess``.

    A Segment-style event's normalized form (``event``, ``user_id``,
    ``data``) overlays its body, so that Knock's legacy paths
    (``data.<key>`` for ``properties.<key>``) and raw paths
    (``properties.<key>``, ``userId``) both resolve.
    """
    body = body or {}
    if normalized:
        body = {**body, **normalized}
    return {"body": body, "headers": headers or {}, "preprocess": preprocess or {}}


def select_mappings(provider, source_environment_id: int, settings: dict, event_type: str, stored=None) -> list:
    """Return the mappings an event runs: the active stored ones, then the provider's implicit ones.

    Implicit mappings (a CDP source's "handle identifies") are unsaved
    ``Mapping`` rows: they run and are logged like the others, with no
    mapping id. Processing and rehearsal both select through here;
    ``stored`` is the active stored mappings when the caller loaded them
    already (a batch loads all of its events' at once).
    """
    implicit = [
        Mapping(
            source_environment=source_environment_id,
            event_type=event_type,
            action_type=default.action_type,
            action_parameters=default.action_parameters,
        )
        for default in provider.implicit_mappings(settings, event_type)
    ]
    if stored is None:
        pair = (source_environment_id, event_type)
        stored = Mapping.active_for_each([pair])[pair]
    return [*stored, *implicit]


#: Stands in for a provider whose plugin is gone: its settings still name
#: the paths, and its events must still finish rather than fail internally.
_PLAIN_PROVIDER = Provider()


def provider_for(registry, slug: str) -> Provider:
    """Return the installed provider ``slug``, or a plain ``Provider`` when it is not installed."""
    return registry.providers.get(slug) or _PLAIN_PROVIDER


def identify_event(provider, settings: dict, scope: dict) -> tuple[str, str | None]:
    """Return ``(event type, None)``, or ``("unknown", why)`` when the event cannot be identified.

    The event type path must resolve to a string (a number is taken as its
    text) of at most 255 characters that a database can store: a NUL or a
    lone surrogate from a payload is named, not stored.
    """
    path = settings.get("event_type_path")
    if path:
        value = resolve(path, scope)
    else:
        value = provider.event_type(lambda p: resolve(p, scope) if p else MISSING)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value:
        return UNKNOWN_EVENT_TYPE, "the event type path did not resolve to a string"
    if len(value) > MAX_EVENT_TYPE_LENGTH:
        return UNKNOWN_EVENT_TYPE, f"the event type is longer than {MAX_EVENT_TYPE_LENGTH} characters"
    problem = unstorable(value)
    if problem:
        return UNKNOWN_EVENT_TYPE, f"the event type holds {problem}, which cannot be stored"
    return value, None


def resolve_timestamp(path: str | None, scope: dict, default: datetime) -> datetime:
    """Return the event time from ISO-8601 or unix seconds; ``default`` when unusable."""
    if not path:
        return default
    value = resolve(path, scope)
    try:
        if isinstance(value, str):
            if value.strip().lstrip("-").replace(".", "", 1).isdigit():
                value = float(value)
            else:
                parsed = datetime.fromisoformat(value.strip())
                if parsed.tzinfo is not None:
                    parsed = parsed.astimezone(timezone.utc).replace(tzinfo=None)
                return parsed
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if abs(value) >= MILLISECONDS_THRESHOLD:
                value = value / 1000
            return datetime.fromtimestamp(value, timezone.utc).replace(tzinfo=None)
    except (ValueError, OverflowError, OSError):
        pass
    return default

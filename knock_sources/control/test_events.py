""" "Send test event": a new event through the real ingest path, signed as its sender would sign it.

A provider's example payload is signed with that provider's own ``sign()``
and the environment's current secret, then handed to ``ingest.receive``
exactly as a request from the provider would be: verified, logged, its
mappings run. A stored sample can be sent again the same way. Either is a
new event, with its own log (as Hookdeck's bookmarks are, unlike a retry).
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass

from peewee import fn

from knock_sources import ingest
from knock_sources.control.rehearsal import sample_envelope
from knock_sources.errors import NotFound, SourcesError
from knock_sources.ingest.cache import snapshot
from knock_sources.store import REJECTED, utcnow
from knock_sources.store.control import EventLog, KnownEvent


@dataclass(frozen=True)
class Sent:
    """What became of a test event: its log row and, when it was refused, why."""

    event_log_id: int | None
    accepted: bool
    status: int
    code: str | None = None
    message: str | None = None


def example_payload(provider, event_type: str) -> dict:
    """Return the provider's first example request for ``event_type``; ``NotFound`` if it has none."""
    examples = (provider.example_payloads or {}).get(event_type) if provider else None
    if not examples:
        raise NotFound(f"There is no example payload for {event_type!r}.", code="example_missing")
    return examples[0]


def stored_sample(source_env, event_type: str) -> dict:
    """Return the last sample stored for ``event_type``; ``NotFound`` if none was received."""
    known = KnownEvent.get_or_none(source_environment=source_env, event_type=event_type)
    if known is None or not known.sample_payload:
        raise NotFound(f"No {event_type!r} event has been received yet.", code="sample_missing")
    return known.sample_payload


def send_example(state, source_env, event_type: str, remote_ip: str | None = None) -> Sent:
    """Sign the provider's example ``event_type`` payload and send it through ingestion."""
    provider = state.registry.providers.get(source_env.source.provider)
    return send(state, source_env, example_payload(provider, event_type), remote_ip)


def send_sample(state, source_env, event_type: str, remote_ip: str | None = None) -> Sent:
    """Send the last stored ``event_type`` sample again, signed afresh, as a new event."""
    return send(state, source_env, stored_sample(source_env, event_type), remote_ip)


def send(state, source_env, payload: dict, remote_ip: str | None = None) -> Sent:
    """Sign ``payload`` (``{"body", "headers"}``) for ``source_env`` and pass it to ``ingest.receive``.

    Signed with the environment's current secret when it has one; without
    one it is sent unsigned, and a provider that requires a signature
    refuses it, as it would refuse any sender.
    """
    envelope = sample_envelope(payload)
    raw = envelope.raw_body
    headers = {name: value for name, value in envelope.headers.items() if name != "content-length"}
    headers.setdefault("content-type", "application/json")
    provider = state.registry.providers.get(source_env.source.provider)
    secrets = snapshot(source_env, state.keyring).verification_config(utcnow())["signing_secrets"]
    if provider is not None and secrets:
        signed = provider.sign(raw, secrets[0], timestamp=int(time.time()))
        headers.update({name.lower(): value for name, value in signed.items()})
    headers["user-agent"] = "knock-sources dashboard (send test event)"
    delivery = ingest.Delivery(
        headers=headers,
        stream=io.BytesIO(raw),
        content_length=len(raw),
        mimetype=headers["content-type"].split(";")[0].strip().lower(),
        remote_ip=remote_ip,
    )
    newest_before = EventLog.select(fn.MAX(EventLog.id)).scalar() or 0
    try:
        event_log_ids = ingest.receive(state, source_env.token, delivery)
    except SourcesError as exc:
        rejected = (
            EventLog.select(EventLog.id)
            .where(
                (EventLog.source_environment == source_env.id)
                & (EventLog.id > newest_before)
                & (EventLog.status == REJECTED)
            )
            .order_by(EventLog.id)
            .first()
        )
        return Sent(rejected.id if rejected else None, False, exc.status, exc.code, exc.message)
    # A batch (a CDP's JSON array) is one log per element: show the first.
    return Sent(event_log_ids[0] if event_log_ids else None, True, 204)


def example_event_types(provider) -> list[str]:
    """Return the event types the provider has example payloads for."""
    return sorted((provider.example_payloads or {}) if provider else ())

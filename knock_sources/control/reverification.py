"""A stored rejected request, rebuilt and verified again: what replay and its dry run share.

A rejected event keeps its headers and, when it was small enough, its whole
body (``raw_complete``). Replaying it means rebuilding the request from them
and judging it again with the current secrets and script, its timestamps as
of its arrival, so that a request rejected for a secret rotated too late is
accepted once the secret is fixed, and a stale one stays stale.
"""

from __future__ import annotations

from datetime import timezone
from typing import TYPE_CHECKING

from knock_sources import signing
from knock_sources.ingest import body as ingest_body
from knock_sources.ingest import verification
from knock_sources.ingest.cache import ReceivingEnvironment
from knock_sources.providers import Envelope
from knock_sources.store.control import EventLog
from knock_sources.worker import rules

if TYPE_CHECKING:
    from knock_sources.state import KnockSources


class NotReplayable(Exception):
    """A stored rejected request that cannot be sent again: ``reason`` is its code, ``problem`` its field error."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.problem = {"field": "raw_excerpt", "message": message}


def rejected_envelope(original: EventLog) -> Envelope:
    """Rebuild the request of a rejected event from its stored body and headers.

    Raises ``NotReplayable`` when the body was not kept whole, and the
    ``SourcesError`` ingestion would raise for a body that does not parse.
    """
    if not original.raw_complete or original.raw_excerpt is None:
        raise NotReplayable("body_not_stored", "only the start of this request's body was stored")
    raw = original.raw_excerpt.encode("utf-8")
    headers = dict(original.headers or {})
    content_type = headers.get("content-type", "")
    mimetype = content_type.split(";")[0].strip().lower()
    charset = next(
        (part.split("=", 1)[1].strip().strip('"') for part in content_type.split(";")[1:] if "charset=" in part),
        None,
    )
    parsed = ingest_body.RequestBody.parse(raw, mimetype, charset, allow_array=True).data
    if isinstance(parsed, list):
        raise NotReplayable("batch", "a batch is replayed event by event: its elements' own logs can be replayed")
    return Envelope(headers, raw, parsed, original.remote_ip, original.received_at)


def reverify(state: KnockSources, receiving: ReceivingEnvironment, original: EventLog):
    """Verify and normalize a stored rejected request again, with the current secrets, as of its arrival.

    Returns ``(envelope, verdict, normalized)``; raises what ingestion would
    refuse it with, or ``NotReplayable``. The dry run and the real run both
    call it.
    """
    envelope = rejected_envelope(original)
    provider = state.registry.providers.get(receiving.provider)
    with signing.as_of(envelope.received_at.replace(tzinfo=timezone.utc).timestamp()):
        verdict = verification.verify(
            provider,
            receiving,
            envelope,
            envelope.received_at,
            lambda source, ctx: state.scripts.run(receiving.token, source, ctx),
            lambda: state.cache.variables(receiving.environment_id),
        )
    return envelope, verdict, rules.provider_for(state.registry, receiving.provider).normalize(envelope.body)

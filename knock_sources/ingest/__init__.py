"""The web half of the pipeline (steps 1 to 6): from an ingest request to a committed, handed-over event.

``receive`` looks the source environment up by token (``cache.py``), reads
and parses the body (``body.py``), verifies it (``verification.py``),
commits the pending ``EventLog`` (``eventlog.py``, the durability point),
hands the event to the worker and returns its id. Each refusal is a
``SourcesError`` carrying its status and is logged as ``rejected`` with its
reason code, so no input produces a 500 and a misconfigured sender can be
debugged. Everything takes plain values: the view turns the HTTP request
into a ``Delivery``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

from peewee import PeeweeException

from knock_sources.errors import LogUnavailable, NotFound, PayloadError, SourcesError
from knock_sources.ingest import body, eventlog, verification
from knock_sources.ingest.cache import ReceivingEnvironment, SourceCache
from knock_sources.observability import logs
from knock_sources.observability.metrics import ACCEPTED, NO_SOURCE, Recorder
from knock_sources.providers import Envelope
from knock_sources.scripting import ScriptError
from knock_sources.store import PENDING, utcnow
from knock_sources.worker import jobs

if TYPE_CHECKING:
    from knock_sources.state import KnockSources

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Delivery:
    """One request to an ingest URL, as plain values.

    ``headers`` has lower-cased names, repeated headers joined with ``", "``;
    ``stream`` is read only up to the size limit; ``charset`` is the content
    type's ``charset`` parameter, if any.
    """

    headers: dict[str, str]
    stream: BinaryIO
    content_length: int | None
    mimetype: str
    remote_ip: str | None
    charset: str | None = None


def find_source_environment(cache: SourceCache, token: str) -> ReceivingEnvironment:
    """Return the active source environment for ``token``, or raise ``NotFound``."""
    try:
        receiving = cache.get(token)
    except PeeweeException as exc:
        log.error("could not look up a source token: %s", exc)
        raise LogUnavailable("The event could not be recorded; retry later.") from None
    if receiving is None:
        raise NotFound("No source is configured for this URL.", code="source_missing")
    return receiving


def receive(state: KnockSources, token: str, delivery: Delivery) -> list[int]:
    """Run steps 1 to 6 for one request and return the ids of the persisted ``EventLog`` rows.

    One id for one event; for a batch (a JSON array sent to a provider that
    ``batches``) one per element, rejected elements included, all committed
    in one transaction. Raises a ``SourcesError`` for every refusal, after
    logging it against the source environment when there is one. Each
    request is counted by its outcome: ``accepted`` or the refusal's code.
    """
    started = time.perf_counter()
    receiving = None
    try:
        receiving = find_source_environment(state.cache, token)
        logs.bind(source=receiving.source_key, environment=receiving.environment)
        event_log_ids = _receive(state, receiving, delivery)
    except SourcesError as exc:
        count_request(state.metrics, receiving, exc.code, started)
        raise
    count_request(state.metrics, receiving, ACCEPTED, started)
    return event_log_ids


def count_request(
    metrics: Recorder, receiving: ReceivingEnvironment | None, outcome: str, started: float, route: str = "receive"
) -> None:
    """Count one ingest request by source environment (if it was found) and outcome, with its duration."""
    source, environment = (receiving.source_key, receiving.environment) if receiving else (NO_SOURCE, NO_SOURCE)
    metrics.ingest(source, environment, outcome, time.perf_counter() - started, route)


def timed_script(state: KnockSources, receiving: ReceivingEnvironment):
    """Return the ``RunScript`` of ingest: the source's cached script, counted and timed."""

    def run(source: str, ctx: dict) -> dict:
        started = time.perf_counter()
        outcome = "ok"
        try:
            # Keyed by token: unique per source environment, even across databases.
            return state.scripts.run(receiving.token, source, ctx)
        except ScriptError as error:
            outcome = error.kind
            raise
        finally:
            state.metrics.script_run(outcome, time.perf_counter() - started)

    return run


def _receive(state: KnockSources, receiving: ReceivingEnvironment, delivery: Delivery) -> list[int]:
    provider = state.registry.providers.get(receiving.provider)
    headers = verification.stored_headers(delivery.headers, verification.redacted_headers(receiving.settings, provider))
    raw = None
    try:
        raw = body.read_body(delivery.stream, delivery.content_length, state.config["MAX_PAYLOAD_BYTES"])
        request_body = body.RequestBody.parse(raw, delivery.mimetype, delivery.charset, allow_array=True)
        received_at = utcnow()
        # The provider verifies the raw bytes; a form body is parsed only if it reads it.
        unparsed = Envelope(delivery.headers, raw, request_body.verifier_view(), delivery.remote_ip, received_at)
        status = verification.verify_provider(provider, receiving, unparsed, received_at)
        parsed = request_body.data
        envelope = Envelope(delivery.headers, raw, parsed, delivery.remote_ip, received_at)
        verdict = verification.verify_script(
            status,
            receiving,
            envelope,
            timed_script(state, receiving),
            lambda: state.cache.variables(receiving.environment_id),
        )
        events = provider.split(parsed)
        if not isinstance(parsed, list):
            normalized = provider.normalize(parsed)
    except SourcesError as exc:
        eventlog.log_rejection(receiving, exc, headers, raw, delivery.remote_ip)
        raise
    if isinstance(parsed, list):
        return _receive_batch(state, receiving, provider, envelope, headers, verdict, events)
    # A JSON body is stored as the text received when it can be: it parsed, so
    # it is valid JSON, and re-serialising it would cost more than the insert.
    event_log_id = eventlog.persist(
        receiving,
        envelope,
        headers,
        verdict,
        body_text=request_body.json_text,
        normalized=normalized,
        note=request_body.note,
    )
    logs.bind(event_log_id=event_log_id)
    jobs.submit_event(state, event_log_id)
    return [event_log_id]


def check_item(provider, item) -> eventlog.Entry:
    """Validate one element of a batch on its own: an accepted ``Entry``, or one carrying its rejection."""
    try:
        if not isinstance(item, dict):
            raise PayloadError("An event must be a JSON object.", code="not_an_object")
        return eventlog.Entry(item, provider.normalize(item))
    except SourcesError as exc:
        return eventlog.Entry(item, rejection=exc)


def _receive_batch(state, receiving, provider, envelope, headers, verdict, events) -> list[int]:
    entries = [check_item(provider, item) for item in events]
    stored = eventlog.persist_batch(receiving, envelope, headers, verdict, entries)
    pending = [row.id for row in stored if row.status == PENDING]
    for event_log_id in pending:
        jobs.submit_event(state, event_log_id)
    if not pending:
        raise PayloadError(
            "No element of the array is a valid event; each is logged as rejected.", code="no_valid_events"
        )
    return [row.id for row in stored]

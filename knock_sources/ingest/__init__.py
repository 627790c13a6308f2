"""The web-side pipeline (DESIGN.md section 2, steps 1-6).

Look up the source environment by token, check size and content type, parse,
verify, persist the ``EventLog`` (the durability point), enqueue, answer.
Everything else happens in the worker. Each refusal is a ``SourcesError``
carrying its status and is logged as ``rejected`` with its reason code, so no
input produces a 500 and a misconfigured sender can be debugged.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from functools import lru_cache
from urllib.parse import parse_qsl

from flask import current_app
from peewee import IntegrityError, InterfaceError, OperationalError, PeeweeException

from knock_sources.errors import (
    LogUnavailable,
    NotFound,
    PayloadError,
    PayloadTooLarge,
    SignatureError,
    SourcesError,
    UnsupportedMediaType,
)
from knock_sources.ingest.cache import ReceivingEnvironment, SourceCache
from knock_sources.ingest.verification import RUNNER_EXTENSION, build_context, run_script, script_source
from knock_sources.providers import Envelope
from knock_sources.store import PENDING, REJECTED, db, utcnow
from knock_sources.store.control import EventLog, SourceEnvironment
from knock_sources.worker import jobs

log = logging.getLogger(__name__)

REJECTED_EXCERPT_BYTES = 4096
JSON_TYPES = ("application/json", "text/plain", "")
FORM_TYPE = "application/x-www-form-urlencoded"
# Headers that carry credentials are never stored or shown back.
REDACTED_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "x-webhook-secret", "x-api-key"})
REDACTED = "[redacted]"


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


def stored_headers(headers: dict, extra_redacted: str | None = None) -> dict:
    """Return ``headers`` with credential-bearing ones redacted for storage."""
    redacted = REDACTED_HEADERS | ({extra_redacted.lower()} if extra_redacted else set())
    return {name: (REDACTED if name in redacted else value) for name, value in headers.items()}


def receive(registry, config: dict, cache: SourceCache, token: str, request) -> int:
    """Run steps 1-6 for one request and return the id of the persisted ``EventLog``.

    ``request`` is the Werkzeug request; only its stream, headers and
    metadata are read. Raises a ``SourcesError`` for every refusal, after
    logging it against the source environment when there is one.
    """
    receiving = find_source_environment(cache, token)
    headers: dict[str, str] = {}
    for name, value in request.headers.items():
        name = name.lower()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    raw = b""
    provider = registry.providers.get(receiving.provider)
    secret_header = receiving.settings.get("secret_header") or getattr(provider, "secret_header", None)
    try:
        raw = read_body(request.stream, request.content_length, config["MAX_PAYLOAD_BYTES"])
        body, text = parse_body(raw, request.mimetype)
        received_at = utcnow()
        envelope = Envelope(headers, raw, body, request.mimetype, request.remote_addr, received_at)
        verification_status = verify(provider, receiving, envelope, received_at)
        verdict = run_environment_script(receiving, envelope, cache)
    except SourcesError as exc:
        _log_rejection(receiving, exc, stored_headers(headers, secret_header), raw, request.remote_addr)
        raise
    # A JSON body is stored as the text received: it parsed, so it is valid
    # JSON, and re-serialising it would cost more than the insert.
    body_text = text if request.mimetype != FORM_TYPE else None
    event_log_id = persist(
        receiving,
        envelope,
        stored_headers(headers, secret_header),
        verdict.verification_status if verdict else verification_status,
        body_text=body_text,
        preprocess_output=verdict.preprocess_output if verdict else None,
        error=f"script {verdict.error.kind}: {verdict.error}" if verdict and verdict.error else None,
    )
    jobs.hand_over(event_log_id)
    return event_log_id


def run_environment_script(receiving: ReceivingEnvironment, envelope: Envelope, cache: SourceCache):
    """Run the environment's script, if it has one; return its ``ScriptVerdict`` or ``None``.

    Raises ``SignatureError`` when verification is enforced and not given.
    """
    source = script_source(receiving.settings)
    if not source:
        return None
    ctx = build_context(envelope, cache.variables(receiving.environment_id))
    enforce = bool(receiving.settings.get("enforce_verification"))
    # Keyed by token: unique per source environment, even across databases.
    return run_script(current_app.extensions[RUNNER_EXTENSION], receiving.token, source, ctx, enforce)


def verify(provider, receiving: ReceivingEnvironment, envelope: Envelope, now: datetime) -> str | None:
    """Verify ``envelope`` with the source's provider; return the verification status."""
    if provider is None:
        # Fail closed: a source whose provider plugin is gone accepts nothing.
        raise SignatureError(f"The {receiving.provider!r} provider is not installed.", code="provider_missing")
    provider_config = receiving.verification_config(now)
    if not provider.is_verifiable(provider_config):
        return None
    try:
        provider.verify(envelope, provider_config)
    except SignatureError:
        raise
    except Exception:
        # A verifier bug must not turn into a 500 or, worse, an acceptance.
        log.exception("the %s verifier failed unexpectedly", provider.slug)
        raise SignatureError("The request could not be verified.", code="verifier_error") from None
    return "enforced:verified"


_PERSISTED_COLUMNS = (
    "source_environment",
    "status",
    "headers",
    "body",
    "remote_ip",
    "verification_status",
    "received_at",
    "preprocess_output",
    "error",
)


@lru_cache(maxsize=4)
def _insert_sql(param: str) -> str:
    """The hot path's INSERT, built once: the ORM's query builder costs more than the write."""
    fields = [EventLog._meta.fields[name] for name in _PERSISTED_COLUMNS]
    columns = ", ".join(f'"{field.column_name}"' for field in fields)
    params = ", ".join([param] * len(fields))
    return f'INSERT INTO "{EventLog._meta.table_name}" ({columns}) VALUES ({params}) RETURNING "id"'


def insert_row(params: list) -> int:
    """Insert one event row, committed when it returns (autocommit), and return its id.

    Pooled connections are not pinged when checked out, so one the server
    dropped is only found here: reconnect once and retry.
    """
    for attempt in (1, 2):
        try:
            return db.execute_sql(_insert_sql(db.param), params).fetchone()[0]
        except (InterfaceError, OperationalError):
            if attempt == 2:
                raise
            db.close()
            db.connect()
    raise AssertionError("unreachable")


def persist(
    receiving: ReceivingEnvironment,
    envelope: Envelope,
    headers: dict,
    verification_status,
    *,
    body_text=None,
    preprocess_output=None,
    error=None,
) -> int:
    """Commit the pending ``EventLog`` (the durability point) and return its id.

    ``body_text`` is the body's JSON text when it is already at hand. Raises
    ``LogUnavailable`` when the database cannot take it, so that the sender
    retries, and ``NotFound`` when the source was deleted meanwhile.
    """
    values = (
        receiving.id,
        PENDING,
        headers,
        envelope.body,
        envelope.remote_ip,
        verification_status,
        envelope.received_at,
        preprocess_output,
        error,
    )
    fields = EventLog._meta.fields
    try:
        params = [
            body_text if name == "body" and body_text is not None else fields[name].db_value(value)
            for name, value in zip(_PERSISTED_COLUMNS, values, strict=True)
        ]
    except RecursionError:
        raise PayloadError("The JSON body is nested too deeply.", code="too_deep") from None
    try:
        return insert_row(params)
    except IntegrityError as exc:
        if not SourceEnvironment.select().where(SourceEnvironment.id == receiving.id).exists():
            # Deleted since this process cached its token.
            raise NotFound("No source is configured for this URL.", code="source_missing") from None
        log.error("could not write the event log for source environment %s: %s", receiving.id, exc)
    except PeeweeException as exc:
        log.error("could not write the event log for source environment %s: %s", receiving.id, exc)
    raise LogUnavailable("The event could not be recorded; retry later.")


def _log_rejection(receiving: ReceivingEnvironment, error: SourcesError, headers: dict, raw: bytes, remote_ip) -> None:
    try:
        EventLog.create(
            source_environment=receiving.id,
            status=REJECTED,
            reason=error.code,
            error=error.detail or error.message,
            headers=headers,
            raw_excerpt=raw[:REJECTED_EXCERPT_BYTES].decode("utf-8", "replace"),
            remote_ip=remote_ip,
            verification_status="enforced:unverified" if isinstance(error, SignatureError) else None,
        )
    except PeeweeException as exc:
        # The caller still gets its 4xx; losing the debug row is the lesser harm.
        log.error("could not log a rejected request for source environment %s: %s", receiving.id, exc)

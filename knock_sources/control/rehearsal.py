"""Dry runs: test a script, or rehearse a payload through the whole pipeline.

Nothing here writes to the database. A rehearsal runs verification, the
script, event-type, timestamp and idempotency-key resolution and each active
mapping's parameter resolution and validation exactly as a real event would
go through them, and reports what would happen and why not.
"""

from __future__ import annotations

import json
import time

from knock_sources.actions.base import order_key
from knock_sources.actions.runner import check_parameters
from knock_sources.errors import SignatureError
from knock_sources.ingest.verification import build_context, judge, script_source
from knock_sources.paths import resolve
from knock_sources.providers import Envelope
from knock_sources.scripting import ScriptError
from knock_sources.store import SUCCESS, utcnow
from knock_sources.store.control import Mapping
from knock_sources.worker import idempotency, processing


def sample_envelope(payload: dict) -> Envelope:
    """Build the envelope of a sample ``{"body", "headers"[, "raw_body"]}`` payload."""
    body = payload.get("body") or {}
    raw = payload.get("raw_body")
    raw_body = raw.encode("utf-8") if raw is not None else json.dumps(body, separators=(",", ":")).encode()
    headers = {name.lower(): str(value) for name, value in (payload.get("headers") or {}).items()}
    return Envelope(headers, raw_body, body, headers.get("content-type", "application/json"), None, utcnow())


def try_script(runner, source: str, envelope: Envelope, variables: dict) -> dict:
    """Run ``source`` once on a sample; return its output or its error, and the time taken."""
    started = time.perf_counter()
    try:
        output, error = runner.run_once(source, build_context(envelope, variables)), None
    except ScriptError as exc:
        output, error = None, exc.to_dict()
    return {
        "output": output,
        "verified": bool(output) and output.get("verified") is True,
        "error": error,
        "duration_ms": round((time.perf_counter() - started) * 1000, 3),
    }


def rehearse(registry, runner, receiving, source_env, envelope: Envelope, variables: dict) -> dict:
    """Return what the pipeline would do with ``envelope``, without writing anything."""
    errors = []
    verification_status = None
    provider = registry.providers.get(receiving.provider)
    config = receiving.verification_config(utcnow())
    if provider is not None and provider.is_verifiable(config):
        try:
            provider.verify(envelope, config)
            verification_status = "enforced:verified"
        except SignatureError as exc:
            verification_status = "enforced:unverified"
            errors.append({"field": "verification", "message": exc.message})
    preprocess_output = None
    source = script_source(receiving.settings)
    if source:
        enforce = bool(receiving.settings.get("enforce_verification"))
        try:
            result, error = runner.run_once(source, build_context(envelope, variables)), None
        except ScriptError as exc:
            result, error = None, exc
        try:
            verdict = judge(result, error, enforce)
            verification_status, preprocess_output = verdict.verification_status, verdict.preprocess_output
            if verdict.error:
                errors.append({"field": "preprocess_script", "message": str(verdict.error)})
        except SignatureError as exc:
            verification_status = "enforced:unverified"
            errors.append({"field": "preprocess_script", "message": exc.detail or exc.message})
    scope = {"body": envelope.body, "headers": dict(envelope.headers), "preprocess": preprocess_output or {}}
    settings = receiving.settings
    event_type = processing.resolve_event_type(provider or registry.providers["custom_http"], settings, scope)
    if event_type == processing.UNKNOWN_EVENT_TYPE:
        errors.append({"field": "event_type_path", "message": "the event type path did not resolve to a string"})
    key = None
    if settings.get("enforce_idempotency") and settings.get("idempotency_key_path"):
        key = idempotency.valid_key(resolve(settings["idempotency_key_path"], scope))
    actions = _rehearse_actions(registry, source_env, event_type, scope, errors)
    succeeded = sum(1 for action in actions if action["action_status"] == SUCCESS)
    return {
        "log_id": None,
        "status": "error" if errors else "ok",
        "event": event_type,
        "occurred_at": processing.resolve_timestamp(
            settings.get("timestamp_path"), scope, envelope.received_at
        ).isoformat()
        + "Z",
        "idempotency_key": key,
        "verification_status": verification_status,
        "preprocess_output": preprocess_output,
        "actions": actions,
        "action_logs_count": len(actions),
        "successful_action_logs_count": succeeded,
        "failed_action_logs_count": len(actions) - succeeded,
        "errors": errors or None,
    }


def _rehearse_actions(registry, source_env, event_type: str, scope: dict, errors: list) -> list[dict]:
    if event_type == processing.UNKNOWN_EVENT_TYPE:
        return []
    mappings = sorted(
        Mapping.select().where(
            (Mapping.source_environment == source_env) & (Mapping.event_type == event_type) & (Mapping.active == True)  # noqa: E712
        ),
        key=lambda mapping: (order_key(mapping.action_type), mapping.id),
    )
    actions = []
    for mapping in mappings:
        action = registry.actions.get(mapping.action_type)
        if action is None:
            status, payload, error = "error", None, f"unknown action type {mapping.action_type!r}"
        else:
            status, payload, error = check_parameters(action, mapping.action_parameters, scope)
        if error:
            errors.append({"field": f"mappings.{mapping.action_type}", "message": error})
        actions.append(
            {
                "action_type": mapping.action_type,
                "action_parameters": mapping.action_parameters,
                "action_payload": payload,
                "action_status": status,
                "error": error,
            }
        )
    return actions

"""Dry runs: test a script, or rehearse a payload through the whole pipeline.

Nothing here writes to the database. A rehearsal is composed of the
pipeline's own pieces (``ingest.verification.verify``, the event-type,
timestamp and idempotency-key resolution of the worker, the provider's
normalization, ``rules.select_mappings`` and ``actions.runner.plan``),
so it cannot disagree with a real event about what would happen; it reports
what would happen and why not.
"""

from __future__ import annotations

import json
import time

from knock_sources.actions.runner import plan
from knock_sources.errors import SignatureError, SourcesError
from knock_sources.ingest import verification
from knock_sources.paths import MISSING, is_literal, resolve_parameter, validate_parameter_spec
from knock_sources.providers import Envelope
from knock_sources.scripting import ScriptError
from knock_sources.store import SUCCESS, utcnow
from knock_sources.worker import idempotency, rules


def sample_envelope(payload: dict) -> Envelope:
    """Build the envelope of a sample ``{"body", "headers"[, "raw_body"]}`` payload."""
    body = payload.get("body") or {}
    raw = payload.get("raw_body")
    raw_body = raw.encode("utf-8") if raw is not None else json.dumps(body, separators=(",", ":")).encode()
    headers = {name.lower(): str(value) for name, value in (payload.get("headers") or {}).items()}
    return Envelope(headers, raw_body, body, None, utcnow())


def check_parameter(spec, sample: dict | None, *, literal: bool = False) -> dict:
    """What one mapping parameter resolves to against a stored sample (the editor's mark beside it).

    Returns ``{"state", "value"}``: ``state`` is ``unset``, ``literal`` (a
    configured value), ``invalid`` (the path does not parse; ``value`` says
    why), ``no_sample`` (nothing received yet to resolve against),
    ``missing`` (the path finds nothing in the sample) or ``resolves``.
    """
    if spec is None or spec == "":
        return {"state": "unset", "value": None}
    problems = validate_parameter_spec(spec, literal=literal)
    if problems:
        return {"state": "invalid", "value": problems[0]}
    if literal or is_literal(spec) or not isinstance(spec, (str, dict)):
        return {"state": "literal", "value": resolve_parameter(spec, {}, literal=literal).value}
    if not sample:
        return {"state": "no_sample", "value": None}
    scope = rules.make_scope(sample.get("body"), sample.get("headers"), sample.get("preprocess"))
    value = resolve_parameter(spec, scope).value
    if value is MISSING or value == {}:
        return {"state": "missing", "value": None}
    return {"state": "resolves", "value": value}


def try_script(runner, source: str, envelope: Envelope, variables) -> dict:
    """Run ``source`` once on a sample; return its output (secrets redacted) or its error, and the time taken.

    ``variables`` is the environment's ``ScriptVariables``.
    """
    started = time.perf_counter()
    try:
        output, error = verification.run_script(runner.run_once, source, envelope, variables), None
    except ScriptError as exc:
        output, error = None, exc.to_dict()
    return {
        "output": output,
        "verified": bool(output) and output.get("verified") is True,
        "error": error,
        "duration_ms": round((time.perf_counter() - started) * 1000, 3),
    }


def verify(state, receiving, envelope: Envelope, run_script) -> tuple[verification.Verdict, list]:
    """Verify ``envelope`` as ingestion would; return the verdict and the problems found (never raises)."""
    errors = []
    provider = state.registry.providers.get(receiving.provider)
    try:
        verdict = verification.verify(
            provider,
            receiving,
            envelope,
            envelope.received_at,
            run_script,
            lambda: state.cache.variables(receiving.environment_id),
        )
    except SignatureError as exc:
        field = "preprocess_script" if exc.code == "script_unverified" else "verification"
        errors.append({"field": field, "message": exc.detail or exc.message})
        verdict = verification.Verdict(verification.VerificationStatus.ENFORCED_UNVERIFIED)
    if verdict.problem or verdict.script_error:
        errors.append({"field": "preprocess_script", "message": verdict.problem or str(verdict.script_error)})
    return verdict, errors


def plan_event(state, receiving, source_env_id: int, scope: dict, received_at, *, ignore_idempotency=False) -> dict:
    """Return what processing would do now with an event of ``scope``: type, key, actions, problems.

    Composed of processing's own resolution and mapping selection,
    ``idempotency.is_claimed`` (the dry run of the claim) and
    ``runner.plan``; a duplicate runs no actions.
    """
    errors = []
    known = rules.provider_for(state.registry, receiving.provider)
    settings = receiving.settings
    event_type, problem = rules.identify_event(known, settings, scope)
    key, dropped = idempotency.key_for(settings, scope)
    if dropped:
        errors.append({"field": "idempotency_key_path", "message": dropped})
    duplicate = False
    actions = []
    if problem:
        errors.append({"field": "event_type_path", "message": problem})
    else:
        duplicate = (
            key is not None
            and not ignore_idempotency
            and idempotency.is_claimed(source_env_id, event_type, key, now=utcnow())
        )
        if not duplicate:
            mappings = rules.select_mappings(known, source_env_id, settings, event_type)
            actions = plan(state.registry, mappings, scope)
    for action in actions:
        if action["error"]:
            errors.append({"field": f"mappings.{action['action_type']}", "message": action["error"]})
    succeeded = sum(1 for action in actions if action["action_status"] == SUCCESS)
    occurred_at = rules.resolve_timestamp(settings.get("timestamp_path"), scope, received_at)
    return {
        "event": event_type,
        "occurred_at": occurred_at.isoformat() + "Z",
        "idempotency_key": key,
        "idempotent": duplicate,
        "actions": actions,
        "action_logs_count": len(actions),
        "successful_action_logs_count": succeeded,
        "failed_action_logs_count": len(actions) - succeeded,
        "errors": errors,
    }


def rehearse(state, receiving, source_env, envelope: Envelope) -> dict:
    """Return what the pipeline would do with ``envelope``, without writing anything."""
    verdict, errors = verify(state, receiving, envelope, state.scripts.run_once)
    known = rules.provider_for(state.registry, receiving.provider)
    normalized = None
    try:
        normalized = known.normalize(envelope.body)
    except SourcesError as exc:
        errors.append({"field": "body", "message": exc.detail or exc.message})
    scope = rules.make_scope(envelope.body, dict(envelope.headers), verdict.preprocess_output, normalized)
    planned = plan_event(state, receiving, source_env.id, scope, envelope.received_at)
    errors += planned.pop("errors")
    return {
        "log_id": None,
        "status": "error" if errors else "ok",
        **planned,
        "verification_status": verdict.status,
        "preprocess_output": verdict.preprocess_output,
        "errors": errors or None,
    }

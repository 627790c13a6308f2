"""Verification: the one place that decides whether a request is genuine (pipeline step 3).

Ingestion and rehearsal both call ``verify``, so a dry run cannot disagree
with a real request. It runs the source's provider verifier, then the
environment's script, if any, and returns a ``Verdict``. This module also
owns the verification statuses recorded on event logs and the set of
headers that are never stored in clear (the credential headers and the
shared-secret header of the source), whose name ``secret_header_name``
decides for the verifier and for redaction alike.

The script is the environment's ``preprocess_script`` setting
(``{"language": "javascript", "source": ...}``). Its ``main(ctx)`` returns
``{verified: boolean, ...}``: the other keys become ``preprocess.*`` for
paths. With ``enforce_verification`` on, anything but ``verified === true``
(false, missing, a throw, a timeout, too much memory) rejects the request
with 401; with it off the outcome is only recorded as the verification
status (``unenforced:verified`` or ``unenforced:unverified``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Callable

from knock_sources import signing
from knock_sources.errors import PayloadError, SignatureError
from knock_sources.providers import Envelope, Provider
from knock_sources.scripting import ScriptError

log = logging.getLogger(__name__)


class VerificationStatus:
    """The verification statuses an event log records (``None``: nothing could verify it)."""

    ENFORCED_VERIFIED = "enforced:verified"
    ENFORCED_UNVERIFIED = "enforced:unverified"
    UNENFORCED_VERIFIED = "unenforced:verified"
    UNENFORCED_UNVERIFIED = "unenforced:unverified"

    @staticmethod
    def of(enforced: bool, verified: bool) -> str:
        """Return the status for a check that was (or was not) enforced and did (or did not) pass."""
        return f"{'enforced' if enforced else 'unenforced'}:{'verified' if verified else 'unverified'}"


# Headers that carry credentials are never stored or shown back.
CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "x-webhook-secret", "x-api-key"})
REDACTED = "[redacted]"
# What a rejected sender is told; the details go to the event log only.
REJECTION_MESSAGE = "The request could not be verified."

#: Runs a script: ``(source, ctx) -> result``; raises ``ScriptError``.
RunScript = Callable[[str, dict], dict]


@dataclass(frozen=True)
class Verdict:
    """What verification said about one request: its status, the script's output, a script error."""

    status: str | None
    preprocess_output: dict | None = None
    script_error: ScriptError | None = None

    @property
    def error(self) -> str | None:
        """The text recorded on the event log for a script that failed without being enforced."""
        return f"script {self.script_error.kind}: {self.script_error}" if self.script_error else None


def secret_header_name(settings: dict, provider: Provider | None) -> str | None:
    """Return the lower-cased name of the source's shared-secret header, if it has one.

    The ``secret_header`` setting, else the provider's default: the verifier
    reads this header and redaction hides it, so both must agree on the name.
    """
    default = getattr(provider, "secret_header", None)
    name = signing.secret_header(settings, default.lower() if default else "")
    return name or None


def redacted_headers(settings: dict, provider: Provider | None) -> frozenset[str]:
    """Return the header names stored as ``[redacted]`` for a source environment."""
    name = secret_header_name(settings, provider)
    return CREDENTIAL_HEADERS | {name} if name else CREDENTIAL_HEADERS


def stored_headers(headers: dict, redacted: frozenset[str]) -> dict:
    """Return ``headers`` (lower-cased names) with the ``redacted`` ones replaced for storage."""
    return {name: (REDACTED if name in redacted else value) for name, value in headers.items()}


def script_source(settings: dict) -> str | None:
    """Return the environment's script source, or ``None`` when it has none."""
    script = settings.get("preprocess_script") or {}
    return script.get("source") or None


def build_context(envelope: Envelope, variables: dict) -> dict:
    """Return Knock's ``ctx``: vars, parsed body, raw body text, lower-cased headers."""
    return {
        "vars": variables,
        "body": envelope.body,
        "rawBody": envelope.raw_body.decode("utf-8", "replace"),
        "headers": dict(envelope.headers),
    }


def verify_provider(provider: Provider | None, provider_slug: str, config: dict, envelope: Envelope) -> str | None:
    """Verify ``envelope`` with the source's provider; return the verification status.

    ``None`` when the provider has nothing to verify with (an unsigned
    provider without a shared secret). Raises ``SignatureError`` otherwise,
    also for a missing provider (fail closed) and a verifier that crashes.
    """
    if provider is None:
        # Fail closed: a source whose provider plugin is gone accepts nothing.
        raise SignatureError(f"The {provider_slug!r} provider is not installed.", code="provider_missing")
    if not provider.is_verifiable(config):
        return None
    try:
        provider.verify(envelope, config)
    except (SignatureError, PayloadError):
        # A PayloadError: the verifier read a form body that does not parse.
        raise
    except Exception:
        # A verifier bug must not turn into a 500 or, worse, an acceptance.
        log.exception("the %s verifier failed unexpectedly", provider.slug)
        raise SignatureError(REJECTION_MESSAGE, code="verifier_error") from None
    return VerificationStatus.ENFORCED_VERIFIED


def judge(result: dict | None, error: ScriptError | None, enforce: bool) -> Verdict:
    """Turn a script's result (or failure) into a verdict; raise ``SignatureError`` if enforced."""
    verified = error is None and result.get("verified") is True
    if enforce and not verified:
        detail = f"script {error.kind}: {error}" if error else "the script did not return verified: true"
        raise SignatureError(REJECTION_MESSAGE, code="script_unverified", detail=detail)
    output = None if error else {key: value for key, value in result.items() if key != "verified"}
    return Verdict(VerificationStatus.of(enforce, verified), output, error)


def verify_script(
    status: str | None,
    receiving,
    envelope: Envelope,
    run_script: RunScript,
    variables: Callable[[], dict],
) -> Verdict:
    """Run the environment's script, if any, after the provider's check gave ``status``.

    ``variables`` is called only when there is a script. Raises
    ``SignatureError`` for a request that must be refused.
    """
    source = script_source(receiving.settings)
    if not source:
        return Verdict(status)
    enforce = bool(receiving.settings.get("enforce_verification"))
    try:
        result = run_script(source, build_context(envelope, variables()))
    except ScriptError as error:
        return judge(None, error, enforce)
    return judge(result, None, enforce)


def verify(
    provider: Provider | None,
    receiving,
    envelope: Envelope,
    now: datetime,
    run_script: RunScript,
    variables: Callable[[], dict],
) -> Verdict:
    """Verify one request: the provider's check, then the environment's script.

    ``receiving`` is the source environment's ``ReceivingEnvironment``.
    Ingestion runs the two steps itself, so that a form body is parsed only
    once the provider has had its say; both end in the same verdict.
    Raises ``SignatureError`` for a request that must be refused.
    """
    status = verify_provider(provider, receiving.provider, receiving.verification_config(now), envelope)
    return verify_script(status, receiving, envelope, run_script, variables)

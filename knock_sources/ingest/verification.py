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
from typing import TYPE_CHECKING, Callable

from knock_sources import signing
from knock_sources.errors import PayloadError, SignatureError
from knock_sources.providers import Envelope, Provider
from knock_sources.scripting import REDACTED, ScriptError, redact_json

if TYPE_CHECKING:
    from knock_sources.control.variables import ScriptVariables

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
    #: What else went wrong without being enforced (secret variables that cannot be decrypted).
    problem: str | None = None

    @property
    def error(self) -> str | None:
        """The text recorded on the event log for a script that failed without being enforced."""
        if self.problem:
            return self.problem
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


def run_script(run: RunScript, source: str, envelope: Envelope, script_vars: ScriptVariables) -> dict:
    """Run ``source`` on ``envelope`` and return its result with every secret variable's value redacted.

    What a script returns is stored (``preprocess_output``) and shown (logs,
    test and rehearsal), so a secret it copies into its result comes back as
    ``[redacted]``, as it already does in its error messages. Raises ``ScriptError``.
    """
    result = run(source, build_context(envelope, script_vars.values))
    return redact_json(result, set(script_vars.secrets))


def _undecryptable_error(failure: SignatureError, count: int) -> SignatureError:
    return SignatureError(
        "a signing secret cannot be decrypted with the configured keys",
        code="secret_undecryptable",
        detail=f"{count} signing secret(s) cannot be decrypted with SECRET_KEY or SECRET_KEY_FALLBACKS "
        f"(add the old key to SECRET_KEY_FALLBACKS or enter the secret again); then: {failure.detail or failure}",
    )


def verify_provider(provider: Provider | None, receiving, envelope: Envelope, now: datetime) -> str | None:
    """Verify ``envelope`` with the source's provider; return the verification status.

    ``None`` when the provider has nothing to verify with (an unsigned
    provider without a shared secret). Raises ``SignatureError`` otherwise,
    also for a missing provider (fail closed) and a verifier that crashes.
    A stored secret that has expired or cannot be decrypted still counts as
    configured, so the check never silently lapses: the request is refused
    as ``secret_expired`` or ``secret_undecryptable``, never as missing.
    """
    if provider is None:
        # Fail closed: a source whose provider plugin is gone accepts nothing.
        raise SignatureError(f"The {receiving.provider!r} provider is not installed.", code="provider_missing")
    config = receiving.verification_config(now)
    if not provider.is_verifiable(config) and not receiving.has_secrets:
        return None
    try:
        provider.verify(envelope, config)
    except PayloadError:
        # The verifier read a form body that does not parse: the body's fault.
        raise
    except SignatureError as failure:
        if receiving.undecryptable:
            raise _undecryptable_error(failure, receiving.undecryptable) from None
        if failure.code == "secret_missing" and any(_expired(expires_at, now) for _, expires_at in receiving.secrets):
            raise SignatureError("every signing secret has expired", code="secret_expired") from None
        raise
    except Exception:
        # A verifier bug must not turn into a 500 or, worse, an acceptance.
        log.exception("the %s verifier failed unexpectedly", provider.slug)
        raise SignatureError(REJECTION_MESSAGE, code="verifier_error") from None
    return VerificationStatus.ENFORCED_VERIFIED


def judge(result: dict | None, error: ScriptError | None, enforce: bool, undecryptable: tuple = ()) -> Verdict:
    """Turn a script's result (or failure) into a verdict; raise ``SignatureError`` if enforced.

    ``undecryptable`` names the secret variables the script could not be
    given; a script that then fails to verify is refused (or recorded) as
    ``secret_undecryptable``, the likely cause.
    """
    verified = error is None and result.get("verified") is True
    detail = None
    if not verified:
        detail = f"script {error.kind}: {error}" if error else "the script did not return verified: true"
    problem = None
    if detail and undecryptable:
        problem = (
            f"secret_undecryptable: secret variable(s) {', '.join(undecryptable)} cannot be decrypted with "
            f"SECRET_KEY or SECRET_KEY_FALLBACKS; {detail}"
        )
    if enforce and detail:
        code = "secret_undecryptable" if problem else "script_unverified"
        raise SignatureError(REJECTION_MESSAGE, code=code, detail=problem or detail)
    output = None if error else {key: value for key, value in result.items() if key != "verified"}
    return Verdict(VerificationStatus.of(enforce, verified), output, error, problem)


def verify_script(
    status: str | None,
    receiving,
    envelope: Envelope,
    run: RunScript,
    variables: Callable[[], ScriptVariables],
) -> Verdict:
    """Run the environment's script, if any, after the provider's check gave ``status``.

    ``variables`` is called only when there is a script. Raises
    ``SignatureError`` for a request that must be refused.
    """
    source = script_source(receiving.settings)
    if not source:
        return Verdict(status)
    enforce = bool(receiving.settings.get("enforce_verification"))
    script_vars = variables()
    try:
        result = run_script(run, source, envelope, script_vars)
    except ScriptError as error:
        return judge(None, error, enforce, script_vars.undecryptable)
    return judge(result, None, enforce, script_vars.undecryptable)


def verify(
    provider: Provider | None,
    receiving,
    envelope: Envelope,
    now: datetime,
    run: RunScript,
    variables: Callable[[], ScriptVariables],
) -> Verdict:
    """Verify one request: the provider's check, then the environment's script.

    ``receiving`` is the source environment's ``ReceivingEnvironment``.
    Ingestion runs the two steps itself, so that a form body is parsed only
    once the provider has had its say; both end in the same verdict. Raises
    ``SignatureError`` for a request that must be refused.
    """
    return verify_script(verify_provider(provider, receiving, envelope, now), receiving, envelope, run, variables)


class Method:
    """What authenticates requests to a source environment beyond its URL token."""

    PROVIDER_SIGNATURE = "provider_signature"
    SHARED_SECRET = "shared_secret"
    SCRIPT = "script"
    NONE = "none"


def summary(provider: Provider | None, receiving, *, active: bool, now: datetime) -> dict:
    """Describe how a source environment verifies requests and whether it can accept any now.

    ``method`` is the provider's signature (always enforced: it fails
    closed), a shared secret (enforced once one is stored), the script
    (enforced when ``enforce_verification`` is on) or ``none``; ``script``
    says whether a script also runs and is enforced. ``accepts_requests`` is
    false, with ``problem`` saying why, when every request would be refused.
    """
    usable = [secret for secret, expires_at in receiving.secrets if secret.strip() and not _expired(expires_at, now)]
    expired = sum(1 for _, expires_at in receiving.secrets if _expired(expires_at, now))
    has_script = script_source(receiving.settings) is not None
    enforce_script = bool(receiving.settings.get("enforce_verification"))
    needs_secret = provider is not None and (
        provider.signed or provider.is_verifiable(receiving.verification_config(now)) or receiving.has_secrets
    )
    if provider is None:
        method, enforced = Method.NONE, True
    elif provider.signed:
        method, enforced = Method.PROVIDER_SIGNATURE, True
    elif needs_secret:
        method, enforced = Method.SHARED_SECRET, True
    elif has_script:
        method, enforced = Method.SCRIPT, enforce_script
    else:
        method, enforced = Method.NONE, False
    problem = None
    if not active:
        problem = ("environment_disabled", "The environment is disabled: its URL answers 404.")
    elif provider is None:
        problem = ("provider_missing", f"The {receiving.provider!r} provider is not installed.")
    elif needs_secret and not usable:
        problem = _secret_problem(receiving.undecryptable, expired)
    return {
        "method": method,
        "enforced": enforced,
        "script": {"enforced": enforce_script} if has_script and method != Method.SCRIPT else None,
        "secrets": {
            "count": len(receiving.secrets) + receiving.undecryptable,
            "usable": len(usable),
            "expired": expired,
            "undecryptable": receiving.undecryptable,
            "expires_at": [expires_at.isoformat() + "Z" if expires_at else None for _, expires_at in receiving.secrets],
        },
        "accepts_requests": problem is None,
        "problem": {"code": problem[0], "message": problem[1]} if problem else None,
    }


def _expired(expires_at: datetime | None, now: datetime) -> bool:
    return expires_at is not None and expires_at <= now


def _secret_problem(undecryptable: int, expired: int) -> tuple[str, str]:
    if undecryptable:
        return (
            "secret_undecryptable",
            "A signing secret cannot be decrypted with SECRET_KEY or SECRET_KEY_FALLBACKS: "
            "add the old key to SECRET_KEY_FALLBACKS or enter the secret again.",
        )
    if expired:
        return "secret_expired", "Every signing secret has expired: every request is refused until one is set."
    return "secret_missing", "No signing secret is set: every request is refused until one is set."

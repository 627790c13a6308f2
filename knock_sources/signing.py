"""Helpers shared by verifiers: secrets, HMAC, header parsing, tolerance, comparison.

Every helper raises ``SignatureError`` with a precise ``code`` and nothing
else, whatever the header holds: verifiers are fed hostile input, and any
other exception would become a 500 instead of a logged 401. Messages name the
check that failed, never a secret or a computed digest.

Comparisons always run on bytes: ``hmac.compare_digest`` raises ``TypeError``
on non-ASCII ``str`` (elevenlabs-python PR #838), which would turn a hostile
header into a 500.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import contextvars
import hashlib
import hmac
import time
from typing import Any, Iterable, Mapping

from knock_sources.errors import SignatureError

#: Longest timestamp accepted, in digits: enough for milliseconds until the
#: year 33658, short enough that ``int()`` stays cheap on hostile input.
MAX_TIMESTAMP_DIGITS = 15
#: Multipliers from seconds to the unit of a signed timestamp (``Provider.timestamp_unit``).
TIMESTAMP_UNITS = {"s": 1, "ms": 1000}


def to_bytes(value: str | bytes) -> bytes:
    """Encode ``value`` as UTF-8 unless it already is bytes."""
    return value if isinstance(value, bytes) else value.encode("utf-8", "surrogatepass")


def constant_time_equal(a: str | bytes, b: str | bytes) -> bool:
    """Compare two values in constant time, safely for any characters."""
    return hmac.compare_digest(to_bytes(a), to_bytes(b))


def matches_any(expected: str | bytes, candidates: Iterable[str | bytes]) -> bool:
    """Return whether ``expected`` equals any candidate, comparing each in constant time."""
    found = False
    for candidate in candidates:
        # No early exit: the time taken does not depend on which one matched.
        found |= constant_time_equal(expected, candidate)
    return found


def check_signatures(expected: Iterable[str | bytes], candidates: Iterable[str | bytes]) -> None:
    """Raise ``SignatureError`` unless any expected digest equals any candidate.

    ``expected`` holds one digest per configured secret (rotation), and
    ``candidates`` the signatures the sender attached (Stripe and Svix send
    several while a secret is being rolled).
    """
    candidates = list(candidates)
    if not candidates:
        raise SignatureError("the request carries no signature", code="signature_missing")
    found = False
    for digest in expected:
        found |= matches_any(digest, candidates)
    if not found:
        raise SignatureError("no signature matches the payload", code="signature_mismatch")


def signing_secrets(config: Mapping[str, Any]) -> list[str]:
    """Return the configured secrets; raise ``SignatureError`` (``secret_missing``) if none.

    Signed providers call this first so that they fail closed: a source
    environment without a secret accepts nothing.
    """
    secrets = config.get("signing_secrets") or ()
    if isinstance(secrets, str):
        secrets = (secrets,)
    # Surrounding whitespace is a copy-paste accident, never part of a secret;
    # an empty key would make every HMAC forgeable, so it never counts.
    secrets = [secret.strip() for secret in secrets if isinstance(secret, str) and secret.strip()]
    if not secrets:
        raise SignatureError("no signing secret is configured", code="secret_missing")
    return secrets


def tolerance_seconds(config: Mapping[str, Any], default: int) -> int:
    """Return the replay window: ``config["tolerance_seconds"]`` if valid, else ``default``.

    Only a positive whole number overrides the provider's default; a
    malformed setting never disables the check.
    """
    value = config.get("tolerance_seconds")
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return default


def secret_header(config: Mapping[str, Any], default: str) -> str:
    """Return the shared-secret header name: ``config["secret_header"]`` or ``default``."""
    value = config.get("secret_header")
    return value.strip().lower() if isinstance(value, str) and value.strip() else default


def hmac_sha1_hex(key: str | bytes, message: bytes) -> str:
    """Return the HMAC-SHA1 of ``message`` as lower-case hex (Segment's ``X-Signature``)."""
    return hmac.new(to_bytes(key), message, hashlib.sha1).hexdigest()


def hmac_sha256(key: str | bytes, message: bytes) -> bytes:
    """Return the raw HMAC-SHA256 of ``message`` under ``key`` (UTF-8 if ``str``)."""
    return hmac.new(to_bytes(key), message, hashlib.sha256).digest()


def hmac_sha256_hex(key: str | bytes, message: bytes) -> str:
    """Return the HMAC-SHA256 of ``message`` as lower-case hex (Stripe, WorkOS, GitHub)."""
    return hmac_sha256(key, message).hex()


def hmac_sha256_base64(key: str | bytes, message: bytes) -> str:
    """Return the HMAC-SHA256 of ``message`` as standard base64 (Svix, Shopify)."""
    return base64.b64encode(hmac_sha256(key, message)).decode("ascii")


def decode_base64_secret(secret: str, prefix: str = "whsec_") -> bytes | None:
    """Return the key bytes of a base64 secret such as Svix's ``whsec_<base64>``.

    Returns ``None`` when the secret is not valid base64, so a verifier can
    skip a mistyped secret while another configured one still matches.
    Missing padding is tolerated, as the Standard Webhooks libraries do.
    """
    encoded = secret.strip().removeprefix(prefix)
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    return key or None


def require_header(envelope, name: str) -> str:
    """Return the value of header ``name``; ``SignatureError`` if absent or blank."""
    value = envelope.header(name)
    if value is None or not value.strip():
        raise SignatureError(f"the {name} header is missing", code="signature_missing")
    return value.strip()


def parse_timestamp(value: str, header: str) -> int:
    """Parse an integer timestamp sent by a provider; ``SignatureError`` if malformed.

    Only ASCII digits are accepted: ``int()`` alone would also take signs,
    spaces, underscores and non-ASCII digits such as ``"١٢٣"``.
    """
    if not (value.isascii() and value.isdigit() and len(value) <= MAX_TIMESTAMP_DIGITS):
        raise SignatureError(f"the {header} timestamp is malformed", code="signature_malformed")
    return int(value)


def check_tolerance(timestamp: int, tolerance: float, *, now: float) -> None:
    """Raise ``SignatureError`` unless ``timestamp`` is within ``tolerance`` of ``now``.

    All three values are in the provider's own unit (seconds for Stripe and
    Svix, milliseconds for WorkOS). Timestamps too far in the future are
    rejected as well as stale ones: a signature minted for later is a replay
    waiting to happen, and clock skew is covered by the tolerance.
    """
    if abs(now - timestamp) > tolerance:
        raise SignatureError(
            "the signature timestamp is outside the tolerance window",
            code="timestamp_out_of_tolerance",
        )


_as_of: contextvars.ContextVar[float | None] = contextvars.ContextVar("knock_sources_verified_as_of", default=None)


def now_seconds() -> float:
    """Return the time verification is judged at, in Unix seconds: now, unless inside ``as_of``.

    Timestamp checks call this, so one place decides what "now" means for them.
    """
    instant = _as_of.get()
    return time.time() if instant is None else instant


@contextlib.contextmanager
def as_of(timestamp: float):
    """Judge timestamps as of ``timestamp`` within the block.

    A stored request replayed later (``control.replay``) was fresh or stale
    when it arrived; the time it arrived is recorded by the service, so its
    signature's timestamp is checked against that time, not today's.
    """
    token = _as_of.set(timestamp)
    try:
        yield
    finally:
        _as_of.reset(token)


def parse_timestamped_header(value: str, header: str, *, scheme: str = "v1") -> tuple[str, list[str]]:
    """Parse ``t=<timestamp>,<scheme>=<sig>[,...]`` into the timestamp text and signatures.

    Used by Stripe (``t=..,v1=..,v1=..,v0=..``) and WorkOS (``t=.., v1=..``):
    spaces around items are ignored and schemes other than ``scheme`` (such as
    Stripe's legacy ``v0``) are skipped so that they cannot be used to
    downgrade. A header sent twice arrives joined with ``", "``; it parses
    as long as both copies carry the same timestamp. The timestamp is
    returned as sent, since that exact text is what was signed.
    """
    timestamps, signatures = set(), []
    for item in value.split(","):
        if not item.strip():
            # A trailing comma is harmless; stripe-python skips empty items too.
            continue
        key, separator, item_value = item.strip().partition("=")
        if not separator or not key or not item_value:
            raise SignatureError(f"the {header} header is malformed", code="signature_malformed")
        if key == "t":
            timestamps.add(item_value)
        elif key == scheme:
            signatures.append(item_value)
    if len(timestamps) != 1:
        raise SignatureError(f"the {header} header must carry exactly one timestamp", code="signature_malformed")
    timestamp = timestamps.pop()
    parse_timestamp(timestamp, header)
    if not signatures:
        raise SignatureError(f"the {header} header has no {scheme} signature", code="signature_missing")
    return timestamp, signatures


def verify_timestamped_hmac(envelope, config: Mapping[str, Any], header: str, *, tolerance: int, unit: str) -> None:
    """Check a ``t=<timestamp>,v1=<hex>`` header over ``<timestamp>.<raw body>`` (Stripe, WorkOS).

    The key is each configured secret as UTF-8 text and the digest is
    HMAC-SHA256 in hex; any ``v1`` signature may match any secret, so rolled
    secrets keep working. The timestamp, in ``unit`` (a ``TIMESTAMP_UNITS``
    key), must then lie within ``tolerance_seconds(config, tolerance)`` of
    now, so one sent in the wrong unit is decades off and rejected. Raises
    ``SignatureError`` (``secret_missing`` without a secret).
    """
    secrets = signing_secrets(config)
    timestamp, signatures = parse_timestamped_header(require_header(envelope, header), header)
    message = timestamp.encode("ascii") + b"." + envelope.raw_body
    check_signatures((hmac_sha256_hex(secret, message) for secret in secrets), signatures)
    # Checked after the signature, so only an authentic request is told that it is stale.
    scale = TIMESTAMP_UNITS[unit]
    check_tolerance(int(timestamp), tolerance_seconds(config, tolerance) * scale, now=now_seconds() * scale)


def sign_timestamped_hmac(
    raw_body: bytes, secret: str, *, timestamp: int | None, unit: str, separator: str = ","
) -> str:
    """Return the ``t=<timestamp>,v1=<hex>`` header value ``verify_timestamped_hmac`` accepts.

    ``timestamp`` is in ``unit`` and defaults to now; ``separator`` goes
    between the two items (WorkOS sends ``", "``).
    """
    timestamp = int(now_seconds() * TIMESTAMP_UNITS[unit]) if timestamp is None else int(timestamp)
    digest = hmac_sha256_hex(secret, f"{timestamp}.".encode("ascii") + raw_body)
    return f"t={timestamp}{separator}v1={digest}"


def check_shared_secret(envelope, header_name: str, secrets: Iterable[str]) -> None:
    """Raise ``SignatureError`` unless ``header_name`` carries one of ``secrets``.

    ``Authorization: Bearer <secret>`` is accepted as well as the bare secret,
    since that is how Supabase and Amplitude senders are usually configured.
    """
    secrets = list(secrets)
    if not secrets:
        raise SignatureError("no signing secret is configured", code="secret_missing")
    value = envelope.header(header_name)
    if value is None:
        raise SignatureError(f"the {header_name} header is missing", code="signature_missing")
    value = value.strip()
    if header_name.lower() == "authorization" and value[:7].lower() == "bearer ":
        value = value[7:].strip()
    if not matches_any(value, secrets):
        raise SignatureError(f"the {header_name} header does not match", code="signature_mismatch")


def verify_shared_secret(envelope, config: Mapping[str, Any], default_header: str) -> None:
    """Check an unsigned provider's shared-secret header against every configured secret.

    The header is ``config["secret_header"]`` when set, else ``default_header``.
    Raises ``SignatureError`` (``secret_missing`` without a secret).
    """
    check_shared_secret(envelope, secret_header(config, default_header), signing_secrets(config))


def shared_secret_headers(header_name: str, secret: str) -> dict:
    """Return the header a sender configured with ``secret`` attaches.

    For ``Authorization`` that is ``Bearer <secret>``; any other header
    carries the bare secret.
    """
    if header_name.lower() == "authorization":
        return {"Authorization": f"Bearer {secret}"}
    return {header_name: secret}

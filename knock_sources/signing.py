"""Helpers shared by verifiers: constant-time comparison on bytes, shared secrets.

Comparisons always run on bytes: ``hmac.compare_digest`` raises ``TypeError``
on non-ASCII ``str`` (elevenlabs-python PR #838), which would turn a hostile
header into a 500.
"""

from __future__ import annotations

import hmac
from typing import Iterable

from knock_sources.errors import SignatureError


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

"""API keys for the ``/v1`` JSON API: created once, stored only as a digest.

A key is shown to its creator once; the database keeps its SHA-256 digest
(the key is 256 random bits, so a slow KDF would add nothing) and an
eight-character prefix to recognise it by.
"""

from __future__ import annotations

import hashlib
import secrets

from knock_sources.store.control import ApiKey


def digest(api_key: str) -> str:
    """Return the stored form of an API key."""
    return hashlib.sha256(api_key.encode("utf-8")).hexdigest()


def create(name: str | None = None) -> str:
    """Create an API key labelled ``name`` and return it; only its digest is stored."""
    key = f"ks_{secrets.token_urlsafe(32)}"
    ApiKey.create(digest=digest(key), prefix=key[:8], name=name)
    return key


def is_valid(api_key: str) -> bool:
    """Return whether ``api_key`` is a key that exists."""
    return ApiKey.select().where(ApiKey.digest == digest(api_key)).exists()

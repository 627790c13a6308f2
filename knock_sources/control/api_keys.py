"""API keys for the ``/v1`` JSON API: created once, stored only as a digest, listed and revoked by name.

A key is shown to its creator once; the database keeps its SHA-256 digest
(the key is 256 random bits, so a slow KDF would add nothing) and an
eight-character prefix to recognise it by. When a key was last used is
recorded at most once a minute, so authenticating stays a read.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from knock_sources.errors import NotFound, SourcesError
from knock_sources.store import utcnow
from knock_sources.store.control import ApiKey

#: ``last_used_at`` is written when it is older than this.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class DuplicateName(SourcesError):
    """An API key with that name already exists."""

    status = 409
    code = "api_key_exists"


def digest(api_key: str) -> str:
    """Return the stored form of an API key."""
    return hashlib.sha256(api_key.encode("utf-8")).hexdigest()


def create(name: str | None = None) -> str:
    """Create an API key labelled ``name`` and return it; only its digest is stored.

    Names are unique, since ``revoke`` finds keys by name.
    """
    if name is not None and ApiKey.select().where(ApiKey.name == name).exists():
        raise DuplicateName(f"An API key named {name!r} exists already; revoke it first or choose another name.")
    key = f"ks_{secrets.token_urlsafe(32)}"
    ApiKey.create(digest=digest(key), prefix=key[:8], name=name)
    return key


def is_valid(api_key: str) -> bool:
    """Return whether ``api_key`` is a key that exists, noting that it was used."""
    row = ApiKey.get_or_none(ApiKey.digest == digest(api_key))
    if row is None:
        return False
    now = utcnow()
    if row.last_used_at is None or row.last_used_at < now - LAST_USED_RESOLUTION:
        ApiKey.update(last_used_at=now).where(ApiKey.id == row.id).execute()
    return True


def list_keys() -> list[ApiKey]:
    """Return every API key, oldest first (digests and prefixes only: the keys themselves are not stored)."""
    return list(ApiKey.select().order_by(ApiKey.id))


def revoke(name_or_prefix: str) -> int:
    """Delete the key named ``name_or_prefix`` (or, for an unnamed key, the key with that prefix).

    Returns how many keys were revoked; raises ``NotFound`` when none matches.
    """
    revoked = ApiKey.delete().where((ApiKey.name == name_or_prefix) | (ApiKey.prefix == name_or_prefix)).execute()
    if not revoked:
        raise NotFound(
            f"No API key is named {name_or_prefix!r}; `flask api-key list` shows them.", code="api_key_missing"
        )
    return revoked

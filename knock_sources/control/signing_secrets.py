"""A source environment's signing secrets: encrypted entries, rotation, and what may be shown of them.

Each entry is ``{"secret": <encrypted>, "expires_at": iso or null, "added_at": iso}``.
Several may be valid at once, so a secret can be rolled without downtime:
replacing one keeps the previous ones valid for a grace period chosen by
the caller. Nothing here returns a secret: ``describe`` says only how many
there are, when they were added and when they expire.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from knock_sources.errors import NotFound, ValidationFailed
from knock_sources.store import to_utc_naive, utcnow

MAX_SECRET_LENGTH = 1024


def new_entry(keyring, secret: str, expires_at: datetime | None = None) -> dict:
    """Return the stored form of ``secret``: encrypted with the app's ``Keyring`` (``SECRET_KEY``)."""
    expires_at = to_utc_naive(expires_at)
    return {
        "secret": keyring.encrypt(secret),
        "expires_at": expires_at.isoformat() if expires_at else None,
        "added_at": utcnow().isoformat(),
    }


def _expiry(entry: dict) -> datetime | None:
    value = entry.get("expires_at")
    return datetime.fromisoformat(value) if value else None


def rolled_over(entries: list[dict], entry: dict, keep_previous_for: timedelta | None = None) -> list[dict]:
    """Return ``entry`` as the current secret followed by the previous ones still valid.

    Previous secrets with a future expiry stay until then; with
    ``keep_previous_for`` the others stay valid for that long, so senders
    still signing with the old secret are accepted while they switch.
    """
    now = utcnow()
    kept = []
    for previous in entries or ():
        expiry = _expiry(previous)
        if expiry is None and keep_previous_for:
            previous = {**previous, "expires_at": (now + keep_previous_for).isoformat()}
            expiry = _expiry(previous)
        if expiry is not None and expiry > now:
            kept.append(previous)
    return [entry, *kept]


def describe(entries: list[dict]) -> list[dict]:
    """Return what may be shown of each secret: position, when added, when it expires, whether it still works."""
    now = utcnow()
    described = []
    for index, entry in enumerate(entries or ()):
        expiry = _expiry(entry)
        added = entry.get("added_at")
        described.append(
            {
                "index": index,
                "added_at": datetime.fromisoformat(added) if added else None,
                "expires_at": expiry,
                "expired": expiry is not None and expiry <= now,
            }
        )
    return described


def _checked(secret: str) -> str:
    if not secret or not secret.strip() or len(secret) > MAX_SECRET_LENGTH:
        raise ValidationFailed({"signing_secret": [f"Paste a secret of 1 to {MAX_SECRET_LENGTH} characters."]})
    return secret


def replace(keyring, source_env, secret: str, keep_previous_for: timedelta | None = None) -> None:
    """Make ``secret`` the environment's current secret (see ``rolled_over``) and save."""
    _checked(secret)
    source_env.signing_secrets = rolled_over(source_env.signing_secrets, new_entry(keyring, secret), keep_previous_for)
    _save(source_env)


def add(keyring, source_env, secret: str, expires_at: datetime | None = None) -> None:
    """Add ``secret`` beside the existing ones, valid until ``expires_at`` (or until removed)."""
    _checked(secret)
    if expires_at is not None and to_utc_naive(expires_at) <= utcnow():
        raise ValidationFailed({"expires_at": ["Choose a time in the future."]})
    source_env.signing_secrets = [*(source_env.signing_secrets or ()), new_entry(keyring, secret, expires_at)]
    _save(source_env)


def remove(source_env, index: int) -> None:
    """Remove the secret at position ``index``."""
    entries = list(source_env.signing_secrets or ())
    if not 0 <= index < len(entries):
        raise NotFound("That signing secret does not exist (any more).", code="secret_missing")
    del entries[index]
    source_env.signing_secrets = entries
    _save(source_env)


def _save(source_env) -> None:
    source_env.updated_at = utcnow()
    source_env.save(only=["signing_secrets", "updated_at"])

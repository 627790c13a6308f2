"""A per-process cache of what the ingest path needs to know about a token
(and of the variables its scripts read).

The ingest endpoint is the hot path: looking the source environment up (a
join) and decrypting its secrets on every request costs more than the rest
of the request. A snapshot is kept for ``SOURCE_CACHE_SECONDS``; writes
through the API clear this process's cache at once, and other processes
see a change within the TTL. A request racing a deleted source fails its
insert on the foreign key and is answered 404.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime

from peewee import DoesNotExist

from knock_sources.control import variables
from knock_sources.control.encryption import Keyring
from knock_sources.store import utcnow
from knock_sources.store.control import Environment, Source, SourceEnvironment


@dataclass(frozen=True)
class ReceivingEnvironment:
    """An immutable snapshot of a source environment, for the ingest path."""

    id: int
    token: str
    environment_id: int
    #: The environment's slug, for metrics and logs.
    environment: str
    source_key: str
    provider: str
    settings: dict
    #: ``(plaintext, expires_at or None)`` pairs.
    secrets: tuple
    #: How many stored secrets no configured key decrypts.
    undecryptable: int = 0

    @property
    def has_secrets(self) -> bool:
        """Whether any signing secret is stored, usable or not (expired, undecryptable)."""
        return bool(self.secrets) or self.undecryptable > 0

    def verification_config(self, now: datetime) -> dict:
        """Return what a provider's ``verify`` needs: settings plus unexpired secrets."""
        secrets = [secret for secret, expires_at in self.secrets if expires_at is None or expires_at > now]
        return {**self.settings, "signing_secrets": secrets}


def signing_secret_label(source_env: SourceEnvironment) -> str:
    """Name a source environment's signing secret in a log line (never the secret itself)."""
    return f"a signing secret of source {source_env.source.key!r} (source environment {source_env.id})"


def snapshot(source_env: SourceEnvironment, keyring: Keyring) -> ReceivingEnvironment:
    """Build the snapshot of ``source_env`` (its ``source`` joined)."""
    secrets, undecryptable = [], 0
    for entry in source_env.signing_secrets or ():
        plaintext = keyring.decrypt(entry["secret"])
        if plaintext is None:
            undecryptable += 1
            keyring.report_undecryptable(signing_secret_label(source_env))
            continue
        expires_at = entry.get("expires_at")
        secrets.append((plaintext, datetime.fromisoformat(expires_at) if expires_at else None))
    return ReceivingEnvironment(
        id=source_env.id,
        token=source_env.token,
        environment_id=source_env.environment_id,
        environment=source_env.environment.slug,
        source_key=source_env.source.key,
        provider=source_env.source.provider,
        settings=dict(source_env.settings or {}),
        secrets=tuple(secrets),
        undecryptable=undecryptable,
    )


class SourceCache:
    """Token -> ``ReceivingEnvironment`` (or ``None`` for unknown tokens), with a TTL."""

    def __init__(self, ttl_seconds: float, keyring: Keyring):
        self.ttl = ttl_seconds
        self.keyring = keyring
        self._entries: dict = {}
        self._lock = threading.Lock()

    def get(self, token: str) -> ReceivingEnvironment | None:
        """Return the active source environment for ``token`` (or a rotated token in its grace period), or ``None``."""
        now = time.monotonic()
        entry = self._entries.get(token)
        if entry is not None and entry[0] > now:
            return entry[1]
        found = self._load(token)
        if self.ttl > 0:
            with self._lock:
                if len(self._entries) > 10_000:
                    # Unknown tokens are cached too; bound what scanners can fill.
                    self._entries.clear()
                self._entries[token] = (now + self.ttl, found)
        return found

    def variables(self, environment_id: int) -> variables.ScriptVariables:
        """Return the variables scripts see in an environment (cached like tokens)."""
        now = time.monotonic()
        key = ("variables", environment_id)
        entry = self._entries.get(key)
        if entry is not None and entry[0] > now:
            return entry[1]
        found = variables.values_for(environment_id, self.keyring)
        if self.ttl > 0:
            with self._lock:
                self._entries[key] = (now + self.ttl, found)
        return found

    def clear(self) -> None:
        """Forget everything (after a write through this process's API)."""
        with self._lock:
            self._entries.clear()

    def _load(self, token: str) -> ReceivingEnvironment | None:
        # A rotated token keeps working until its grace period ends.
        current = SourceEnvironment.token == token
        previous = (SourceEnvironment.previous_token == token) & (
            SourceEnvironment.previous_token_expires_at > utcnow()
        )
        try:
            source_env = (
                SourceEnvironment.select(SourceEnvironment, Source, Environment)
                .join(Source)
                .switch(SourceEnvironment)
                .join(Environment)
                .where((current | previous) & (SourceEnvironment.active == True))  # noqa: E712
                .get()
            )
        except DoesNotExist:
            return None
        return snapshot(source_env, self.keyring)

"""Encryption at rest for signing secrets and secret variables, with key rotation.

Values are encrypted with Fernet (AES-128-CBC + HMAC-SHA256, from the
``cryptography`` package) under a key derived from ``SECRET_KEY`` with HKDF,
so a database dump alone does not reveal them. ``SECRET_KEY_FALLBACKS``
(the name Flask 3.1 gives older keys) lists keys that still decrypt:
a ``Keyring`` is cryptography's ``MultiFernet`` over the current key and
the fallbacks, so it encrypts under the current key and decrypts under any.
``flask rotate-secrets`` re-encrypts every stored secret under the current
key (``rotate``), after which the fallbacks can be dropped.

A value no key decrypts is reported as undecryptable, never taken for a
missing one, and logged once per process (``Keyring.report_undecryptable``).
"""

from __future__ import annotations

import base64
import logging
import threading
from functools import lru_cache
from typing import Iterable

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

log = logging.getLogger(__name__)


@lru_cache(maxsize=16)
def _fernet(secret_key: str) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"knock-sources secrets at rest").derive(
        secret_key.encode("utf-8")
    )
    return Fernet(base64.urlsafe_b64encode(key))


class Keyring:
    """``SECRET_KEY`` and its fallbacks: encrypts under the first, decrypts under any."""

    def __init__(self, secret_key: str, fallbacks: Iterable[str] = ()):
        keys = [secret_key, *(key for key in fallbacks if key and key != secret_key)]
        self._multi = MultiFernet([_fernet(key) for key in dict.fromkeys(keys)])
        self._reported: set[str] = set()
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, config) -> Keyring:
        """Return the keyring of an app's configuration (``SECRET_KEY``, ``SECRET_KEY_FALLBACKS``)."""
        return cls(config["SECRET_KEY"], config.get("SECRET_KEY_FALLBACKS") or ())

    def encrypt(self, plaintext: str) -> str:
        """Return ``plaintext`` encrypted under the current key."""
        return self._multi.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str | None:
        """Return the plaintext, or ``None`` when no configured key decrypts ``token``."""
        try:
            return self._multi.decrypt(token.encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeError):
            return None

    def rotate(self, token: str) -> str | None:
        """Return ``token`` re-encrypted under the current key, or ``None`` when no key decrypts it."""
        try:
            return self._multi.rotate(token.encode("ascii")).decode("ascii")
        except (InvalidToken, UnicodeError):
            return None

    def report_undecryptable(self, what: str) -> None:
        """Log, once per keyring (one per app and process), that the secret ``what`` cannot be decrypted."""
        with self._lock:
            if what in self._reported:
                return
            self._reported.add(what)
        log.error(
            "%s cannot be decrypted with SECRET_KEY or SECRET_KEY_FALLBACKS: if SECRET_KEY was changed, "
            "add the old key to KNOCK_SOURCES_SECRET_KEY_FALLBACKS and run `flask rotate-secrets`; "
            "otherwise enter the secret again",
            what,
        )

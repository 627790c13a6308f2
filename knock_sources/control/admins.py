"""Dashboard administrators: created from the command line, signed in with a password.

Passwords are stored as Werkzeug scrypt hashes. ``authenticate`` spends the
same work on an unknown username as on a wrong password, so a login attempt
does not reveal which usernames exist. A session remembers a fingerprint of
the hash (``session_fingerprint``): setting a new password ends every session
signed in with the old one.
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache

from werkzeug.security import check_password_hash, generate_password_hash

from knock_sources.errors import ValidationFailed
from knock_sources.store import utcnow
from knock_sources.store.control import AdminUser

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024
USERNAME_PATTERN = re.compile(r"[A-Za-z0-9_.@+-]{1,150}")


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    """A hash checked against when the username is unknown, so both paths cost one scrypt."""
    return generate_password_hash("knock-sources: no such administrator")


def exists() -> bool:
    """Whether at least one administrator exists (until then the dashboard is closed)."""
    return AdminUser.select().exists()


def create_or_reset(username: str, password: str) -> tuple[AdminUser, bool]:
    """Create administrator ``username``, or set a new password if it exists; return it and whether it is new."""
    problems = {}
    if not USERNAME_PATTERN.fullmatch(username or ""):
        problems["username"] = ["Use 1 to 150 letters, digits or . _ @ + -."]
    if not MIN_PASSWORD_LENGTH <= len(password or "") <= MAX_PASSWORD_LENGTH:
        problems["password"] = [f"Use {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters."]
    if problems:
        raise ValidationFailed(problems, message="; ".join(f"{k}: {v[0]}" for k, v in problems.items()))
    admin, created = AdminUser.get_or_none(AdminUser.username == username), False
    if admin is None:
        admin, created = AdminUser(username=username), True
    admin.password_hash = generate_password_hash(password)
    admin.save()
    return admin, created


def authenticate(username: str, password: str) -> AdminUser | None:
    """Return the administrator whose password this is, recording the login; ``None`` otherwise."""
    admin = AdminUser.get_or_none(AdminUser.username == username)
    if admin is None:
        check_password_hash(_dummy_hash(), password)
        return None
    if not check_password_hash(admin.password_hash, password):
        return None
    admin.last_login_at = utcnow()
    admin.save(only=[AdminUser.last_login_at])
    return admin


def session_fingerprint(admin: AdminUser) -> str:
    """A short digest of the stored hash: a session is valid only while the password is unchanged."""
    return hashlib.sha256(admin.password_hash.encode("utf-8")).hexdigest()[:32]


def signed_in(admin_id, fingerprint) -> AdminUser | None:
    """Return the administrator a session names, if it still exists with the same password."""
    if not isinstance(admin_id, int) or not isinstance(fingerprint, str):
        return None
    admin = AdminUser.get_or_none(AdminUser.id == admin_id)
    if admin is None or session_fingerprint(admin) != fingerprint:
        return None
    return admin

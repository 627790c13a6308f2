"""Driving the dashboard with Flask's test client: CSRF tokens from pages, signing in."""

from __future__ import annotations

import re

from knock_sources import store
from knock_sources.control import admins

USERNAME = "grace"
PASSWORD = "a long enough password"
_TOKEN = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"|name="csrf-token" content="([^"]+)"')


def csrf_token(response) -> str:
    """Return the CSRF token a page carries."""
    match = _TOKEN.search(response.get_data(as_text=True))
    assert match, "the page has no CSRF token"
    return match.group(1) or match.group(2)


def create_admin(app, username: str = USERNAME, password: str = PASSWORD) -> None:
    """Create an administrator directly in the database."""
    with app.app_context(), store.db.connection_context():
        admins.create_or_reset(username, password)


def sign_in(client, username: str = USERNAME, password: str = PASSWORD):
    """Sign in through the login form; return the response."""
    token = csrf_token(client.get("/login"))
    return client.post("/login", data={"csrf_token": token, "username": username, "password": password})


def post_form(client, page: str, action: str, data: dict):
    """Post ``data`` to ``action`` with the CSRF token of ``page``, as the browser would."""
    return client.post(action, data={"csrf_token": csrf_token(client.get(page)), **data})

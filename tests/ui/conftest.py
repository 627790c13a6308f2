"""Fixtures of the dashboard tests: a live server per test and one Chromium for the session."""

from __future__ import annotations

import pytest

from tests.support import reset_database, stop_dispatcher
from tests.support.browser import LiveServer, chromium, sign_in


@pytest.fixture(scope="session")
def browser():
    """Headless Chromium (Debian's), shared by the session's browser tests."""
    with chromium() as launched:
        yield launched


@pytest.fixture
def live(database_url):
    """The app served on a free port, on this test's database."""
    server = LiveServer(database_url)
    yield server
    server.stop()
    stop_dispatcher(server.app)
    reset_database()


@pytest.fixture
def page(browser, live):
    """A fresh browser tab (own cookies) that may use the clipboard."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live.url)
    context.set_default_timeout(15_000)
    tab = context.new_page()
    yield tab
    context.close()


@pytest.fixture
def signed_in(page, live):
    """A tab signed in as an administrator."""
    live.create_admin()
    sign_in(page, live.url)
    return page

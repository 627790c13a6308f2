"""A live server in a thread and Debian's Chromium driven by Playwright, for browser tests and screenshots.

Playwright's own browser download cannot work offline, so the browser is
the system's ``/usr/bin/chromium`` (``.ci/run`` installs it with apt-get).
Without it, browser tests skip locally and fail under
``KNOCK_SOURCES_REQUIRE_SERVICES``.
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
import urllib.request
from contextlib import contextmanager

from playwright.sync_api import expect, sync_playwright
from werkzeug.serving import make_server

from knock_sources import store
from knock_sources.control import admins
from tests.support import free_port, make_app, service_unavailable

CHROMIUM = os.environ.get("KNOCK_SOURCES_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ADMIN_USERNAME = "ada"
ADMIN_PASSWORD = "correct horse battery"


class LiveServer:
    """The app served over HTTP on a free port of 127.0.0.1, in a background thread."""

    def __init__(self, database_url: str, **overrides):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = make_app(database_url, PUBLIC_BASE_URL=self.url, **overrides)
        self.server = make_server("127.0.0.1", self.port, self.app, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, name="live-server", daemon=True)
        self.thread.start()

    def create_admin(self, username: str = ADMIN_USERNAME, password: str = ADMIN_PASSWORD) -> None:
        """Create a dashboard administrator directly in the database."""
        with self.app.app_context(), store.db.connection_context():
            admins.create_or_reset(username, password)

    def stop(self) -> None:
        """Stop serving and wait for the thread."""
        self.server.shutdown()
        self.thread.join(timeout=10)


def post(url: str, body: bytes, headers: dict) -> int:
    """POST ``body`` to ``url`` over HTTP, as a sender would; return the status."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


STRIPE_SECRET = "whsec_" + "s3cr3t" * 6


def stripe_event(live, event_id="evt_test_1", event_type="customer.created"):
    """A Stripe example event with its own id, and the headers Stripe would sign it with."""
    provider = live.app.extensions["knock_sources"].registry.providers["stripe"]
    body = dict(provider.example_payloads[event_type][0]["body"], id=event_id)
    raw = json.dumps(body).encode()
    return raw, provider.sign(raw, STRIPE_SECRET, timestamp=int(time.time()))


def connect_stripe(page, live):
    """Connect Stripe from its template in the browser, pasting ``STRIPE_SECRET``; return the webhook URL."""
    page.goto(f"{live.url}/development/sources")
    page.get_by_role("link", name="Connect Stripe").click()
    expect(page.get_by_role("heading", name="Connect Stripe")).to_be_visible()
    expect(page.get_by_label("Key")).to_have_value("stripe")
    page.get_by_label("Signing secret").fill(STRIPE_SECRET)
    page.get_by_role("button", name="Connect Stripe").click()
    expect(page.get_by_role("heading", name="Webhook URL")).to_be_visible()
    return page.get_by_role("button", name="Copy webhook URL").get_attribute("data-copy")


def chromium_path() -> str:
    """Return the Chromium executable, or skip (fail under CI) when it is not installed."""
    if not os.path.exists(CHROMIUM):
        service_unavailable(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    return CHROMIUM


@contextmanager
def chromium():
    """Yield a headless Chromium browser driven by Playwright."""
    executable = chromium_path()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def sign_in(page, base_url: str, username: str = ADMIN_USERNAME, password: str = ADMIN_PASSWORD) -> None:
    """Sign in through the login form, as a person would."""
    page.goto(f"{base_url}/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base_url}/development/sources")

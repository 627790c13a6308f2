"""Take the README's screenshots of the dashboard: ``.venv/bin/python docs/take_screenshots.py``.

Serves the app on a throw-away SQLite database, connects a Stripe source
through the dashboard's own service, sends it genuinely signed events (and a
few that are refused) through the real ingest endpoint, then photographs the
main pages with the same Playwright and Chromium setup as the browser tests
(``tests/support/browser.py``), at 1280 px and at phone width. Writes PNGs
to ``docs/screenshots/``.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from playwright.sync_api import expect  # noqa: E402

from knock_sources import store  # noqa: E402
from knock_sources.control import sources  # noqa: E402
from knock_sources.state import current_state  # noqa: E402
from knock_sources.store.control import Environment, Source, SourceEnvironment  # noqa: E402
from knock_sources.store.dataplane import Workflow  # noqa: E402
from tests.support.browser import LiveServer, chromium, post, sign_in  # noqa: E402

OUT = ROOT / "docs" / "screenshots"
SECRET = "whsec_" + "d" * 32


def seed(live: LiveServer) -> str:
    """Connect Stripe, create its workflows and send it events; return the source's webhook URL."""
    with live.app.app_context(), store.db.connection_context():
        state = current_state()
        development = Environment.get(Environment.slug == "development")
        sources.connect(
            state,
            development,
            key="stripe",
            name="Stripe billing",
            provider_slug="stripe",
            inactive_defaults={1},
            signing_secret=SECRET,
        )
        for key, name in (("invoice-created", "Invoice created"), ("invoice-paid", "Invoice paid")):
            Workflow.create(environment=development, key=key, name=name)
        source_env = SourceEnvironment.get(
            SourceEnvironment.source == Source.get(Source.key == "stripe"), SourceEnvironment.environment == development
        )
        url = sources.endpoint_url(state.config, source_env.token)
        provider = state.registry.providers["stripe"]
        examples = provider.example_payloads
    for number in range(14):
        event_type = ("customer.created", "invoice.created", "invoice.paid")[number % 3]
        body = dict(examples[event_type][0]["body"])
        body["id"] = f"evt_demo_{number}"
        raw = json.dumps(body).encode()
        headers = {"Content-Type": "application/json", **provider.sign(raw, SECRET, timestamp=int(time.time()))}
        if number % 5 == 4:
            headers["Stripe-Signature"] = "t=1,v1=" + "0" * 64
        post(url, raw, headers)
    return url


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as directory:
        live = LiveServer(f"sqlite:///{directory}/screenshots.db")
        try:
            live.create_admin()
            seed(live)
            with chromium() as browser:
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.goto(f"{live.url}/login")
                page.screenshot(path=OUT / "login.png")
                sign_in(page, live.url)
                base = f"{live.url}/development"
                shots = {
                    "sources": f"{base}/sources",
                    "connect-stripe": f"{base}/connect/stripe",
                    "source-overview": f"{base}/sources/stripe",
                    "settings": f"{base}/sources/stripe/settings",
                    "mappings": f"{base}/sources/stripe/mappings",
                    "logs": f"{base}/sources/stripe/logs",
                    "workflows": f"{base}/workflows",
                    "workflow": f"{base}/workflows/invoice-paid",
                }
                for name, url in shots.items():
                    page.goto(url)
                    page.screenshot(path=OUT / f"{name}.png", full_page=True)
                page.goto(f"{base}/sources/stripe/logs?status=rejected")
                page.locator("tbody tr a").first.click()
                page.screenshot(path=OUT / "log-detail.png", full_page=True)
                page.goto(f"{base}/sources/stripe/mappings")
                page.get_by_role("link", name="Edit invoice.paid → Trigger workflow").click()
                page.get_by_label("actor").fill("body.data.object.nobody")
                expect(page.locator("#status-actor")).to_contain_text("not found")
                page.screenshot(path=OUT / "mapping-editor.png", full_page=True)
                phone = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=2)
                sign_in(phone, live.url)
                phone.goto(f"{base}/sources/stripe")
                phone.screenshot(path=OUT / "phone-source-overview.png", full_page=True)
        finally:
            live.stop()
    print(f"Screenshots written to {OUT}")


if __name__ == "__main__":
    main()

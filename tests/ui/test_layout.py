"""Usable on a phone: at 390 px no page scrolls sideways (wide tables scroll inside their own box)."""

from __future__ import annotations

import pytest

from tests.support.browser import connect_stripe, post, sign_in, stripe_event

PAGES = (
    "/development/sources",
    "/development/connect/stripe",
    "/development/sources/stripe",
    "/development/sources/stripe/settings",
    "/development/sources/stripe/mappings",
    "/development/sources/stripe/mappings/1/edit",
    "/development/sources/stripe/events",
    "/development/sources/stripe/logs",
    "/development/workflows",
    "/development/data/users",
    "/development/variables",
)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_no_page_is_wider_than_a_phone(browser, live, signed_in):
    webhook_url = connect_stripe(signed_in, live)
    raw, headers = stripe_event(live, event_type="invoice.paid")
    assert post(webhook_url, raw, {"Content-Type": "application/json", **headers}) == 204
    phone = browser.new_context(viewport={"width": 390, "height": 844})
    page = phone.new_page()
    sign_in(page, live.url)
    overflowing = []
    for path in PAGES:
        page.goto(live.url + path)
        width = page.evaluate("document.documentElement.scrollWidth")
        if width > 390:
            overflowing.append((path, width))
    phone.close()
    assert overflowing == []


UNNAMED_CONTROLS = """() => Array.from(document.querySelectorAll("input, select, textarea, button, a[href]"))
    .filter((el) => el.type !== "hidden")
    .filter((el) => !(el.labels && el.labels.length)
        && !el.getAttribute("aria-label") && !el.getAttribute("aria-labelledby")
        && !(el.textContent || "").trim())
    .map((el) => el.outerHTML.slice(0, 120))"""


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_every_control_of_every_page_has_an_accessible_name(live, signed_in):
    page = signed_in
    webhook_url = connect_stripe(page, live)
    raw, headers = stripe_event(live, event_type="invoice.paid")
    assert post(webhook_url, raw, {"Content-Type": "application/json", **headers}) == 204
    unnamed = {}
    for path in (*PAGES, "/development/sources/stripe/logs/1", "/development/variables/new", "/login"):
        page.goto(live.url + path)
        found = page.evaluate(UNNAMED_CONTROLS)
        if found:
            unnamed[path] = found
    assert unnamed == {}

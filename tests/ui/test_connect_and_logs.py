"""Connecting Stripe by pasting its secret, then following genuine and refused events in the logs."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.support.browser import STRIPE_SECRET, connect_stripe, post, stripe_event


def test_connect_stripe_then_a_signed_event_shows_in_the_logs_and_the_secret_in_no_page(signed_in, live):
    page = signed_in
    webhook_url = connect_stripe(page, live)
    assert webhook_url.startswith(f"{live.url}/integrations/receive/")

    raw, headers = stripe_event(live)
    assert post(webhook_url, raw, {"Content-Type": "application/json", **headers}) == 204

    page.get_by_role("navigation", name="Source").get_by_role("link", name="Logs").click()
    row = page.get_by_role("table", name="Event logs").get_by_role("row").filter(has_text="customer.created")
    expect(row).to_contain_text("processed")
    row.get_by_role("link").click()
    expect(page.get_by_role("heading", name="Identify user")).to_be_visible()
    expect(page.get_by_text("enforced:verified")).to_be_visible()

    pages = [
        "/development/sources",
        "/development/sources/stripe",
        "/development/sources/stripe/settings",
        "/development/sources/stripe/mappings",
        "/development/sources/stripe/events",
        "/development/sources/stripe/logs",
        "/production/sources/stripe/settings",
        page.url.removeprefix(live.url),
    ]
    for path in pages:
        page.goto(live.url + path)
        assert STRIPE_SECRET not in page.content(), path


def test_the_copy_button_puts_the_webhook_url_on_the_clipboard(signed_in, live):
    page = signed_in
    webhook_url = connect_stripe(page, live)
    page.get_by_role("button", name="Copy webhook URL").click()
    expect(page.get_by_role("status").filter(has_text="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == webhook_url


def test_a_refused_request_has_a_detail_page_with_its_reason_and_redacted_headers(signed_in, live):
    page = signed_in
    webhook_url = connect_stripe(page, live)
    raw, _ = stripe_event(live)
    headers = {
        "Content-Type": "application/json",
        "Stripe-Signature": "t=1,v1=" + "0" * 64,
        "Authorization": "Bearer do-not-store-me",
    }
    assert post(webhook_url, raw, headers) == 401

    page.goto(f"{live.url}/development/sources/stripe/logs")
    page.get_by_role("table", name="Event logs").get_by_role("row").filter(has_text="rejected").get_by_role(
        "link"
    ).click()
    expect(page.get_by_role("heading", name="Log #")).to_contain_text("rejected")
    facts = page.locator("dl.facts")
    expect(facts).to_contain_text("Rejection reason")
    expect(facts).to_contain_text("enforced:unverified")
    headers_table = page.get_by_role("table", name="Headers")
    expect(headers_table.get_by_role("row").filter(has_text="authorization")).to_contain_text("redacted")
    assert "do-not-store-me" not in page.content()
    expect(page.get_by_label("Body, raw")).to_contain_text("evt_test_1")


def test_logs_filters_round_trip_through_the_url(signed_in, live):
    page = signed_in
    webhook_url = connect_stripe(page, live)
    for number in range(3):
        raw, headers = stripe_event(live, event_id=f"evt_ok_{number}")
        assert post(webhook_url, raw, {"Content-Type": "application/json", **headers}) == 204
    raw, headers = stripe_event(live, event_id="evt_invoice", event_type="invoice.paid")
    assert post(webhook_url, raw, {"Content-Type": "application/json", **headers}) == 204
    raw, _ = stripe_event(live, event_id="evt_bad")
    assert post(webhook_url, raw, {"Content-Type": "application/json", "Stripe-Signature": "t=1,v1=00"}) == 401

    page.goto(f"{live.url}/development/sources/stripe/logs")
    table = page.get_by_role("table", name="Event logs")
    expect(table.get_by_role("row")).to_have_count(6)
    page.get_by_label("Status").select_option("rejected")
    page.get_by_role("button", name="Filter").click()
    expect(table.get_by_role("row")).to_have_count(2)
    assert "status=rejected" in page.url
    expect(page.get_by_label("Status")).to_have_value("rejected")

    page.get_by_label("Status").select_option("")
    page.get_by_label("Event type").fill("invoice.paid")
    page.get_by_role("button", name="Filter").click()
    expect(table.get_by_role("row")).to_have_count(2)
    expect(table).to_contain_text("invoice.paid")

    page.reload()
    expect(page.get_by_label("Event type")).to_have_value("invoice.paid")
    expect(table.get_by_role("row")).to_have_count(2)
    page.get_by_label("Event type").fill("")
    page.get_by_label("From (UTC)").fill("2000-01-01T00:00")
    page.get_by_label("Until (UTC)").fill("2000-01-02T00:00")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_text("No log matches these filters.")).to_be_visible()


def test_send_test_event_signs_the_example_with_the_providers_own_sign(signed_in, live):
    page = signed_in
    connect_stripe(page, live)
    page.goto(f"{live.url}/development/sources/stripe/logs")
    page.get_by_label("Payload").select_option("example:customer.created")
    page.get_by_role("button", name="Send test event").click()
    expect(page.get_by_role("status").filter(has_text="accepted")).to_be_visible()
    expect(page.get_by_role("heading", name="Log #")).to_contain_text("processed")
    expect(page.locator("dl.facts")).to_contain_text("enforced:verified")
    expect(page.get_by_role("heading", name="Identify user")).to_be_visible()

    page.goto(f"{live.url}/development/sources/stripe/logs")
    page.get_by_label("Payload").select_option("sample:customer.created")
    page.get_by_role("button", name="Send test event").click()
    # The stored sample is the same Stripe event: idempotency recognises it.
    expect(page.get_by_role("heading", name="Log #")).to_contain_text("idempotent")
    page.goto(f"{live.url}/development/sources/stripe/logs")
    expect(page.get_by_role("table", name="Event logs").get_by_role("row")).to_have_count(3)


def test_waiting_for_the_first_event_turns_live_and_the_live_tail_shows_new_events(signed_in, live):
    page = signed_in
    webhook_url = connect_stripe(page, live)
    waiting = page.locator("[data-first-event]")
    expect(waiting).to_contain_text("Waiting for your first event...")
    raw, headers = stripe_event(live, event_id="evt_first")
    assert post(webhook_url, raw, {"Content-Type": "application/json", **headers}) == 204
    expect(waiting).to_contain_text("Event received", timeout=20_000)
    expect(waiting.get_by_role("link", name="customer.created")).to_be_visible()

    page.goto(f"{live.url}/development/sources/stripe/logs")
    rows = page.get_by_role("table", name="Event logs").get_by_role("row")
    expect(rows).to_have_count(2)
    page.get_by_label("Live tail").check()
    raw, headers = stripe_event(live, event_id="evt_second", event_type="invoice.paid")
    assert post(webhook_url, raw, {"Content-Type": "application/json", **headers}) == 204
    expect(rows).to_have_count(3, timeout=20_000)
    expect(rows.nth(1)).to_contain_text("invoice.paid")

"""Mappings in the browser: a default switched off and on again, and the editor's path check."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.support.browser import connect_stripe, post, stripe_event


def send(live, webhook_url, event_id, event_type="customer.created"):
    raw, headers = stripe_event(live, event_id=event_id, event_type=event_type)
    assert post(webhook_url, raw, {"Content-Type": "application/json", **headers}) == 204


def open_newest_log(page, live):
    page.goto(f"{live.url}/development/sources/stripe/logs")
    page.get_by_role("table", name="Event logs").get_by_role("row").nth(1).get_by_role("link").click()


def test_a_default_mapping_switched_off_runs_nothing_until_switched_on_again(signed_in, live):
    page = signed_in
    webhook_url = connect_stripe(page, live)
    page.get_by_role("navigation", name="Source").get_by_role("link", name="Mappings").click()
    switch = page.get_by_role("switch", name="customer.created → Identify user")
    expect(switch).to_be_checked()
    expect(page.locator("#mapping-1, li").filter(has=switch).first).to_contain_text("default")
    switch.click()
    expect(page.get_by_role("status")).to_contain_text("is off")
    expect(page.get_by_role("switch", name="customer.created → Identify user")).not_to_be_checked()

    send(live, webhook_url, "evt_while_off")
    open_newest_log(page, live)
    expect(page.get_by_role("heading", name="Log #")).to_contain_text("processed")
    expect(page.get_by_text("No action ran for this event.")).to_be_visible()

    page.goto(f"{live.url}/development/sources/stripe/mappings")
    page.get_by_role("switch", name="customer.created → Identify user").click()
    expect(page.get_by_role("status")).to_contain_text("is on")
    send(live, webhook_url, "evt_while_on")
    open_newest_log(page, live)
    action = page.get_by_role("article").filter(has=page.get_by_role("heading", name="Identify user"))
    expect(action).to_contain_text("success")


def test_restore_defaults_switches_the_defaults_back_on(signed_in, live):
    page = signed_in
    connect_stripe(page, live)
    page.goto(f"{live.url}/development/sources/stripe/mappings")
    page.get_by_role("switch", name="invoice.paid → Trigger workflow").click()
    expect(page.get_by_role("switch", name="invoice.paid → Trigger workflow")).not_to_be_checked()
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Restore defaults").click()
    expect(page.get_by_role("status")).to_contain_text("restored")
    expect(page.get_by_role("switch", name="invoice.paid → Trigger workflow")).to_be_checked()


def test_the_editor_checks_paths_against_the_last_sample_as_you_type_and_shows_refusals(signed_in, live):
    page = signed_in
    webhook_url = connect_stripe(page, live)
    send(live, webhook_url, "evt_invoice", event_type="invoice.paid")
    page.goto(f"{live.url}/development/sources/stripe/mappings")
    page.get_by_role("link", name="Edit invoice.paid → Trigger workflow").click()
    expect(page.get_by_role("heading", name="Edit mapping")).to_be_visible()
    expect(page.get_by_role("complementary", name="Sample payload")).to_contain_text("evt_invoice")
    recipients = page.get_by_label("recipients")
    expect(recipients).to_have_value("body.data.object.customer")
    status = page.locator("#status-recipients")
    expect(status).to_contain_text("✓ resolves to")

    recipients.fill("body.data.object.nobody")
    expect(status).to_have_text("✗ not found in the sample")
    recipients.fill("body..broken")
    expect(status).to_contain_text("✗ path 'body..broken' has an empty segment")
    recipients.fill("body.data.object.customer_email")
    expect(status).to_contain_text('✓ resolves to "')

    recipients.fill("")
    page.get_by_role("button", name="Save mapping").click()
    expect(page.locator(".param-row.invalid")).to_contain_text("Required by workflows_trigger")
    expect(page.get_by_role("complementary", name="Sample payload")).to_be_visible()

    page.get_by_label("recipients").fill("body.data.object.customer")
    page.get_by_label("actor").fill('{"value": "billing-bot"}')
    page.get_by_role("button", name="Save mapping").click()
    expect(page.get_by_role("status")).to_contain_text("invoice.paid → Trigger workflow mapping was saved")
    page.get_by_role("link", name="Edit invoice.paid → Trigger workflow").click()
    expect(page.get_by_label("actor")).to_have_value('{"value": "billing-bot"}')
    expect(page.locator("#status-actor")).to_have_text("a configured value")


def test_an_environment_disabled_from_its_page_answers_404_and_a_rotated_url_keeps_the_old_one_for_a_while(
    signed_in, live
):
    page = signed_in
    old_url = connect_stripe(page, live)
    page.goto(f"{live.url}/development/sources/stripe/settings")
    page.get_by_role("switch", name="Environment enabled").click()
    expect(page.get_by_role("status")).to_contain_text("disabled")
    raw, headers = stripe_event(live, event_id="evt_disabled")
    assert post(old_url, raw, {"Content-Type": "application/json", **headers}) == 404
    page.get_by_role("switch", name="Environment enabled").click()
    expect(page.get_by_role("status")).to_contain_text("is enabled")

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Rotate URL token").click()
    expect(page.get_by_role("status")).to_contain_text("The webhook URL was rotated; the previous one works until")
    page.get_by_role("navigation", name="Source").get_by_role("link", name="Overview").click()
    new_url = page.get_by_role("button", name="Copy webhook URL").get_attribute("data-copy")
    assert new_url != old_url
    for number, url in enumerate((new_url, old_url)):
        raw, headers = stripe_event(live, event_id=f"evt_rotated_{number}")
        assert post(url, raw, {"Content-Type": "application/json", **headers}) == 204

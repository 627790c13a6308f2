"""Workflows in the browser: a source-event trigger added, switched off in one environment only."""

from __future__ import annotations

import json

from playwright.sync_api import expect

from knock_sources import store
from knock_sources.store.control import Environment
from knock_sources.store.dataplane import Workflow, WorkflowRun
from tests.support.browser import post

JSON = {"Content-Type": "application/json"}


def runs(live) -> dict[str, int]:
    with live.app.app_context(), store.db.connection_context():
        return {
            environment.slug: WorkflowRun.select().where(WorkflowRun.environment == environment).count()
            for environment in Environment.select()
        }


def test_a_trigger_added_in_the_page_runs_and_switched_off_in_production_only_stops_there(signed_in, live):
    page = signed_in
    with live.app.app_context(), store.db.connection_context():
        for environment in Environment.select():
            Workflow.create(environment=environment, key="guests-welcomed", name="Guests welcomed")
    page.goto(f"{live.url}/development/sources")
    page.get_by_role("link", name="Connect HTTP (legacy)").click()
    page.get_by_label("Key").fill("app-events")
    page.get_by_role("button", name="Connect HTTP (legacy)").click()
    development_url = page.get_by_role("button", name="Copy webhook URL").get_attribute("data-copy")
    page.get_by_role("navigation", name="Environment").get_by_role("link", name="Production").click()
    production_url = page.get_by_role("button", name="Copy webhook URL").get_attribute("data-copy")
    assert development_url != production_url

    page.goto(f"{live.url}/development/workflows/guests-welcomed")
    page.get_by_label("Source", exact=True).select_option("app-events")
    page.get_by_label("Event name").fill("Guests-welcomed")
    page.get_by_label("recipients").fill("data.recipient")
    page.get_by_role("button", name="Add trigger").click()
    expect(page.get_by_role("status")).to_contain_text("now starts on Guests-welcomed events")
    trigger = page.get_by_role("article", name="Trigger HTTP (legacy) Guests-welcomed")
    expect(trigger.get_by_role("switch", name="active in development")).to_be_checked()
    production_switch = trigger.get_by_role("switch", name="active in production")
    expect(production_switch).to_be_checked()
    production_switch.click()
    expect(page.get_by_role("status")).to_contain_text("inactive in production")
    trigger = page.get_by_role("article", name="Trigger HTTP (legacy) Guests-welcomed")
    expect(trigger.get_by_role("switch", name="active in production")).not_to_be_checked()
    expect(trigger.get_by_role("switch", name="active in development")).to_be_checked()

    event = {
        "type": "track",
        "event": "Guests-welcomed",
        "userId": "JohnHammond1",
        "properties": {"recipient": {"id": "ann", "name": "Ann"}},
    }
    assert post(development_url, json.dumps(event).encode(), JSON) == 204
    assert post(production_url, json.dumps(event).encode(), JSON) == 204
    assert runs(live) == {"development": 1, "production": 0}
    page.reload()
    expect(page.get_by_role("table", name="Runs")).to_contain_text("ann")

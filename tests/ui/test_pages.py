"""Dashboard pages through the test client: the activity chart, counts, variables, workflows, data."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from knock_sources.store import utcnow
from knock_sources.store.control import EventLog
from knock_sources.store.dataplane import Audience, AudienceMember
from tests.support.actions import EventSource, mapping
from tests.support.dashboard import create_admin, post_form, sign_in


@pytest.fixture
def admin(app, client):
    """The test client, signed in."""
    create_admin(app)
    sign_in(client)
    return client


@pytest.fixture
def source(client, api):
    """A custom source whose ``joined`` events add users to the audience ``beta``."""
    return EventSource(client, api).configure(mapping("audiences_add_member", "joined", key="beta", users="body.users"))


def text(response) -> str:
    assert response.status_code == 200, response.status_code
    return response.get_data(as_text=True)


def test_the_overview_draws_the_last_24_hours_as_an_svg_by_status(admin, source, db):
    for number in range(3):
        source.send({"users": [f"u{number}"]}, "joined")
    source.send({"users": "not-a-list-of-users-but-accepted"}, "joined")
    assert admin.post(source.endpoint, data=b"{not json", content_type="application/json").status_code == 400
    # An old event falls outside the window; ids grow with time, as in production.
    old = EventLog.select().order_by(EventLog.id).first()
    EventLog.update(received_at=utcnow() - timedelta(hours=30)).where(EventLog.id == old.id).execute()

    page = text(admin.get("/development/sources/my-source"))
    svg = re.search(r"<svg.*?</svg>", page, re.S).group(0)
    assert 'role="img"' in svg
    assert "3 accepted, 1 rejected and 0 failed" in svg
    assert svg.count('class="bar accepted"') == 1
    assert svg.count('class="bar rejected"') == 1
    assert "<script" not in svg

    listing = text(admin.get("/development/sources"))
    assert re.search(r"<td>\s*4\s*<span class=\"muted\">\(1 rejected, 0 failed\)</span>", listing)


def test_an_empty_source_waits_for_its_first_event_and_the_poll_says_when_it_came(admin, source):
    page = text(admin.get("/development/sources/my-source"))
    assert "Waiting for your first event..." in page
    assert admin.get("/development/sources/my-source/first-event").get_json() == {"received": False}
    source.send({"users": ["ada"]}, "joined")
    polled = admin.get("/development/sources/my-source/first-event").get_json()
    assert polled["received"] is True and polled["event_type"] == "joined" and polled["status"] == "processed"
    assert "Waiting for your first event..." not in text(admin.get("/development/sources/my-source"))


def test_the_live_tail_returns_only_rows_newer_than_the_ones_shown(admin, source):
    first = source.send({"users": ["a"]}, "joined")
    second = source.send({"users": ["b"]}, "joined")
    fragment = text(admin.get(f"/development/sources/my-source/logs/newer?since={first['id']}"))
    assert f'data-id="{second["id"]}"' in fragment
    assert f'data-id="{first["id"]}"' not in fragment
    assert text(admin.get(f"/development/sources/my-source/logs/newer?since={second['id']}")).strip() == ""


def test_log_pages_are_cursors_that_new_arrivals_do_not_shift(admin, source):
    ids = [source.send({"users": [f"u{n}"]}, "joined")["id"] for n in range(5)]
    first = text(admin.get("/development/sources/my-source/logs?limit=2"))
    older = re.search(r'href="([^"]*after=\d+[^"]*)"', first).group(1).replace("&amp;", "&")
    source.send({"users": ["late"]}, "joined")
    second = text(admin.get(older))
    shown = re.findall(r'data-id="(\d+)"', second)
    assert shown == [ids[2], ids[1]]


def test_a_secret_variable_shows_only_that_it_is_set(admin, app):
    response = post_form(
        admin,
        "/development/variables/new",
        "/development/variables/new",
        {"key": "SIGNING_SECRET", "secret": "y", "value": "hunter2-top-secret", "env-production": "prod-secret-value"},
    )
    assert response.status_code == 302
    listing = text(admin.get("/development/variables"))
    assert "SIGNING_SECRET" in listing
    editing = text(admin.get("/development/variables/SIGNING_SECRET/edit"))
    for page in (listing, editing):
        assert "hunter2-top-secret" not in page and "prod-secret-value" not in page
    assert "Set. Leave empty to keep it." in editing
    # Saving with the fields left empty keeps the values.
    post_form(
        admin,
        "/development/variables/SIGNING_SECRET/edit",
        "/development/variables/SIGNING_SECRET/edit",
        {"secret": "y"},
    )
    assert app.extensions["knock_sources"].cache.variables(2).values["SIGNING_SECRET"] == "prod-secret-value"


def test_a_refused_variable_key_is_shown_beside_the_field(admin):
    response = post_form(
        admin, "/development/variables/new", "/development/variables/new", {"key": "9lives", "value": "x"}
    )
    assert response.status_code == 422
    assert "may contain only letters, digits and underscores" in response.get_data(as_text=True)


def test_a_workflow_is_switched_off_in_one_environment_only(admin, api):
    for environment in ("development", "production"):
        api.create_workflow("welcome", environment=environment)
    response = post_form(admin, "/development/workflows", "/development/workflows/welcome/active", {})
    assert response.status_code == 302
    assert api.get("/v1/workflows", environment="development").get_json()["entries"][0]["active"] is False
    assert api.get("/v1/workflows", environment="production").get_json()["entries"][0]["active"] is True
    page = text(admin.get("/development/workflows"))
    assert 'aria-label="Workflow welcome active"' in page


def test_data_pages_list_what_actions_wrote(admin, source, db):
    source.send({"users": [{"id": "ann", "name": "Ann"}]}, "joined")
    # A member whose user was deleted since.
    AudienceMember.create(audience=Audience.get(Audience.key == "beta"), user_id="ghost")
    members = text(admin.get("/development/data/audiences/beta"))
    assert "Ann" in members and "ghost" in members and "(not identified)" in members
    assert "ann" in text(admin.get("/development/data/users"))
    assert "&#34;name&#34;: &#34;Ann&#34;" in text(admin.get("/development/data/users/ann"))
    assert admin.get("/development/data/users/nobody").status_code == 404
    assert text(admin.get("/production/data/audiences")).count("beta") == 0


def test_unknown_environments_and_sources_get_an_html_404(admin):
    for path in ("/staging/sources", "/development/sources/nope", "/development/sources/nope/logs/1"):
        response = admin.get(path)
        assert response.status_code == 404, path
        assert response.mimetype == "text/html"

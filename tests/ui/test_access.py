"""Signing in: closed until an administrator exists, login and logout, CSRF on every form."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.support.browser import ADMIN_PASSWORD, ADMIN_USERNAME, sign_in


def test_every_page_fails_closed_until_an_admin_exists(page, live):
    for path in ("/", "/login", "/development/sources", "/development/variables", "/production/workflows"):
        response = page.goto(live.url + path)
        assert response.status == 503, path
        expect(page.get_by_role("heading", name="Create an administrator first")).to_be_visible()
        expect(page.locator("code")).to_have_text("flask admin create --username NAME")
        expect(page.get_by_role("navigation")).to_have_count(0)


def test_login_and_logout(page, live):
    live.create_admin()
    page.goto(f"{live.url}/development/workflows")
    expect(page).to_have_url(f"{live.url}/login?next=/development/workflows")
    page.get_by_label("Username").fill(ADMIN_USERNAME)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("Wrong username or password.")
    expect(page.get_by_label("Password")).to_have_value("")

    page.get_by_label("Username").fill(ADMIN_USERNAME)
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{live.url}/development/workflows")
    expect(page.get_by_role("heading", name="Workflows")).to_be_visible()
    cookie = next(c for c in page.context.cookies() if c["name"] == "knock_sources_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("status")).to_have_text("You are signed out.")
    page.goto(f"{live.url}/development/sources")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def test_a_form_post_without_the_csrf_token_is_refused(page, live):
    live.create_admin()
    sign_in(page, live.url)
    page.goto(f"{live.url}/development/variables/new")
    page.evaluate("document.querySelectorAll('main input[name=csrf_token]').forEach((input) => input.remove())")
    page.get_by_label("Key").fill("REGION")
    page.get_by_label("Default value").fill("eu")
    with page.expect_response(lambda response: response.request.method == "POST") as posted:
        page.get_by_role("button", name="Save variable").click()
    assert posted.value.status == 400
    expect(page.get_by_role("heading", name="Form refused")).to_be_visible()
    page.goto(f"{live.url}/development/variables")
    expect(page.get_by_text("No variable yet.")).to_be_visible()

    status = page.evaluate(
        """async (url) => (await fetch(url, {method: "POST", body: new URLSearchParams({enabled: "y"})})).status""",
        f"{live.url}/development/sources/stripe/settings/switch/enforce_verification",
    )
    assert status == 400

"""Administrators and sessions, through the CLI and the HTTP interface: hashes, cookies, expiry, rate limit."""

from __future__ import annotations

import random
import time
import uuid

import pytest

from knock_sources.store.control import AdminUser
from tests.support import make_app, reset_database, stop_dispatcher
from tests.support.dashboard import PASSWORD, USERNAME, create_admin, csrf_token, sign_in


def test_flask_admin_create_reads_the_password_from_stdin_and_stores_a_scrypt_hash(app, db):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["admin", "create", "--username", "ada"], input="s3cret password\n")
    assert result.exit_code == 0, result.output
    assert "Created administrator 'ada'" in result.output
    admin = AdminUser.get(AdminUser.username == "ada")
    assert admin.password_hash.startswith("scrypt:")
    assert "s3cret password" not in admin.password_hash

    result = runner.invoke(args=["admin", "create", "--username", "ada"], input="another password\n")
    assert result.exit_code == 0
    assert "Set a new password for administrator 'ada'" in result.output
    assert AdminUser.select().count() == 1


@pytest.mark.parametrize(
    ("username", "password", "message"),
    [("ada", "short\n", "password: Use 8"), ("not a name!", "long enough\n", "username: Use 1 to 150")],
)
def test_flask_admin_create_refuses_weak_input_in_one_line(app, db, username, password, message):
    result = app.test_cli_runner().invoke(args=["admin", "create", "--username", username], input=password)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    assert AdminUser.select().count() == 0


def test_sign_in_succeeds_with_the_right_password_only(app, client):
    create_admin(app)
    wrong = sign_in(client, password="wrong password")
    assert wrong.status_code == 200
    assert "Wrong username or password." in wrong.get_data(as_text=True)
    assert sign_in(client, username="nobody").status_code == 200
    assert client.get("/development/sources").status_code == 302
    right = sign_in(client)
    assert right.status_code == 302 and right.location == "/development/sources"
    assert client.get("/development/sources").status_code == 200


def test_the_session_cookie_is_httponly_lax_and_secure_when_the_public_url_is_https(app, client):
    create_admin(app)
    cookie = sign_in(client).headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Secure" in cookie  # the test apps' PUBLIC_BASE_URL is https://hooks.example.com


@pytest.mark.parametrize("app_config", [{"PUBLIC_BASE_URL": "http://127.0.0.1:8000"}])
def test_the_session_cookie_is_not_secure_on_a_plain_http_deployment(app, client):
    create_admin(app)
    assert "Secure" not in sign_in(client).headers["Set-Cookie"]


def test_a_request_that_leaves_the_session_alone_sends_no_cookie_so_a_late_one_cannot_undo_a_flash(app, client):
    create_admin(app)
    sign_in(client)
    # The first page after signing in stores its CSRF token in the session.
    assert "Set-Cookie" in client.get("/development/sources").headers
    assert "Set-Cookie" not in client.get("/development/sources").headers
    # A page's background request (the path check) sent with the cookie from
    # before a form post that flashed, answering after the post: it must not
    # send that older session back, or the browser would lose the message.
    late = app.test_client()
    late.set_cookie("knock_sources_session", client.get_cookie("knock_sources_session").value)
    response = late.get("/development/sources")
    assert response.status_code == 200
    assert "Set-Cookie" not in response.headers


def test_a_session_expires_after_its_lifetime_even_when_used(app, client):
    create_admin(app)
    sign_in(client)
    assert client.get("/development/sources").status_code == 200
    with client.session_transaction() as session:
        session["login_at"] = time.time() - 12 * 3600 - 1
    response = client.get("/development/sources")
    assert response.status_code == 302 and response.location.startswith("/login")


def test_a_new_password_ends_the_sessions_signed_in_with_the_old_one(app, client):
    create_admin(app)
    sign_in(client)
    create_admin(app, password="a different long password")
    assert client.get("/development/sources").status_code == 302


@pytest.mark.parametrize("app_config", [{"LOGIN_RATE_LIMIT": "3 per minute"}])
def test_sign_in_attempts_are_rate_limited_per_client(app):
    create_admin(app)
    attacker, other = app.test_client(), app.test_client()
    for _ in range(3):
        assert sign_in(attacker, password="guess").status_code == 200
    limited = sign_in(attacker)
    assert limited.status_code == 429
    assert "Too many sign-in attempts" in limited.get_data(as_text=True)
    elsewhere = other.get("/login", environ_base={"REMOTE_ADDR": "10.9.8.7"})
    token = csrf_token(elsewhere)
    response = other.post(
        "/login",
        data={"csrf_token": token, "username": USERNAME, "password": PASSWORD},
        environ_base={"REMOTE_ADDR": "10.9.8.7"},
    )
    assert response.status_code == 302


def test_login_never_redirects_to_another_site(app):
    create_admin(app)
    for target in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
        client = app.test_client()
        token = csrf_token(client.get("/login"))
        response = client.post(
            f"/login?next={target}", data={"csrf_token": token, "username": USERNAME, "password": PASSWORD}
        )
        assert response.location == "/development/sources", target


def test_ingestion_and_the_json_api_need_no_csrf_token(app, client, api):
    create_admin(app)
    source = api.create_source("plain")
    assert source["key"] == "plain"
    assert client.post(api.endpoint("plain"), json={"type": "x"}).status_code == 204


def test_init_db_upgrades_a_version_one_database_with_the_admin_table(app, db):
    from knock_sources.store import schema
    from knock_sources.store.control import SchemaVersion

    db.drop_tables([AdminUser])
    SchemaVersion.update(version=1).execute()
    result = app.test_cli_runner().invoke(args=["init-db"])
    assert result.exit_code == 0, result.output
    assert SchemaVersion.get().version == schema.CURRENT_VERSION
    assert AdminUser.table_exists()


def test_with_redis_the_sign_in_limit_is_shared_by_every_process(database_url, redis_url):
    config = {"REDIS_URL": redis_url, "QUEUE_NAME": f"ks-test-{uuid.uuid4().hex}", "LOGIN_RATE_LIMIT": "2 per minute"}
    first, second = make_app(database_url, **config), make_app(database_url, **config)
    try:
        create_admin(first)
        # A client address of this test alone: the count lives in the shared Redis for a minute.
        address = {"REMOTE_ADDR": f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"}
        statuses = []
        for app in (first, second, second):
            client = app.test_client()
            token = csrf_token(client.get("/login", environ_base=address))
            data = {"csrf_token": token, "username": USERNAME, "password": "guess"}
            statuses.append(client.post("/login", data=data, environ_base=address).status_code)
        assert statuses == [200, 200, 429]
    finally:
        for app in (first, second):
            stop_dispatcher(app)
        reset_database()

"""Shared fixtures: an app per test on SQLite and on PostgreSQL, API helpers, services.

Database tests run twice, once per backend. Service-backed fixtures skip when
PostgreSQL or Redis is absent locally, but fail when
``KNOCK_SOURCES_REQUIRE_SERVICES`` is set, as ``.ci/run`` does.
"""

from __future__ import annotations

import uuid

import psycopg2
import pytest

from knock_sources import store
from tests.support import (
    POSTGRES_DB,
    POSTGRES_HOST,
    REDIS_URL,
    ROOT,
    Api,
    make_app,
    port_is_open,
    postgres_user,
    reset_database,
    service_unavailable,
    stop_dispatcher,
)


@pytest.fixture(scope="session")
def postgres_url():
    """A PostgreSQL URL whose search_path is a schema private to this test session."""
    user = postgres_user()
    if user is None:
        service_unavailable(f"PostgreSQL is not reachable at {POSTGRES_HOST}/{POSTGRES_DB}")
    schema = f"ks_test_{uuid.uuid4().hex[:12]}"
    connection = psycopg2.connect(host=POSTGRES_HOST, dbname=POSTGRES_DB, user=user)
    connection.autocommit = True
    connection.cursor().execute(f"CREATE SCHEMA {schema}")
    yield f"postgresql://{user}@{POSTGRES_HOST}:5432/{POSTGRES_DB}?options=-csearch_path%3D{schema}"
    connection.cursor().execute(f"DROP SCHEMA {schema} CASCADE")
    connection.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    """The database of one test: a fresh SQLite file, or the session's PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'knock_sources.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def app_config():
    """Overrides a test module may set for its ``app``."""
    return {}


@pytest.fixture
def app(database_url, app_config):
    """The app under test, in embedded mode (jobs run in-process)."""
    app = make_app(database_url, **app_config)
    yield app
    stop_dispatcher(app)
    reset_database()


@pytest.fixture
def client(app):
    """A test client for ``app``."""
    return app.test_client()


@pytest.fixture
def db(app):
    """An open database connection for direct model access in a test."""
    with store.db.connection_context():
        yield store.db


@pytest.fixture
def api_key(app):
    """A valid API key."""
    runner = app.test_cli_runner()
    result = runner.invoke(args=["api-key", "create"])
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


@pytest.fixture
def api(client, api_key):
    """The JSON API, authenticated."""
    return Api(client, api_key)


@pytest.fixture(scope="session")
def redis_url():
    """The shared Redis, skipped (or failed under CI) when absent."""
    if not port_is_open("127.0.0.1", 6379):
        service_unavailable("Redis is not reachable at 127.0.0.1:6379")
    return REDIS_URL


def pytest_collection_modifyitems(items):
    """Mark everything under ``tests/system/`` (real processes, gunicorn, pip) as ``system``."""
    system_dir = ROOT / "tests" / "system"
    for item in items:
        if system_dir in item.path.parents:
            item.add_marker(pytest.mark.system)

"""Shared fixtures: an app per test on SQLite and on PostgreSQL, API helpers, services.

Database tests run twice, once per backend. Service-backed fixtures skip when
PostgreSQL or Redis is absent locally, but fail when
``KNOCK_SOURCES_REQUIRE_SERVICES`` is set, as ``.ci/run`` does.
"""

from __future__ import annotations

import os
import socket
import uuid

import psycopg2
import pytest

from app import create_app
from knock_sources import state, store
from knock_sources.store import schema

POSTGRES_HOST = os.environ.get("KNOCK_SOURCES_TEST_POSTGRES_HOST", "127.0.0.1")
POSTGRES_DB = os.environ.get("KNOCK_SOURCES_TEST_POSTGRES_DB", "test")
REDIS_URL = os.environ.get("KNOCK_SOURCES_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
REQUIRE_SERVICES = bool(os.environ.get("KNOCK_SOURCES_REQUIRE_SERVICES"))


def service_unavailable(message):
    """Skip locally, fail under CI: a missing service must never pass silently there."""
    if REQUIRE_SERVICES:
        pytest.fail(f"{message} (required because KNOCK_SOURCES_REQUIRE_SERVICES is set)")
    pytest.skip(message)


def _postgres_user():
    for user in ("postgres", "root"):
        try:
            psycopg2.connect(host=POSTGRES_HOST, dbname=POSTGRES_DB, user=user, connect_timeout=3).close()
            return user
        except psycopg2.OperationalError:
            continue
    return None


@pytest.fixture(scope="session")
def postgres_url():
    """A PostgreSQL URL whose search_path is a schema private to this test session."""
    user = _postgres_user()
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


def make_app(database_url, **overrides):
    """Create a test app on ``database_url`` with a migrated schema."""
    app = create_app(
        {
            "TESTING": True,
            "DATABASE_URL": database_url,
            "SECRET_KEY": "test-secret-key",
            "PUBLIC_BASE_URL": "https://hooks.example.com",
            "LOAD_PLUGIN_ENTRYPOINTS": False,
            **overrides,
        }
    )
    with app.app_context():
        schema.migrate(app.config["ENVIRONMENTS"])
    return app


def stop_dispatcher(app):
    """End the app's dispatcher thread so that threads do not pile up over the suite."""
    dispatcher = app.extensions[state.EXTENSION].dispatcher
    if dispatcher is not None:
        dispatcher.stop()


def reset_database():
    """Empty every table (PostgreSQL keeps its schema between tests) and close connections."""
    database_obj = store.db.obj
    if isinstance(database_obj, schema.PooledPostgresqlDatabase):
        with store.db.connection_context():
            tables = ", ".join(f'"{model._meta.table_name}"' for model in schema.MODELS)
            store.db.execute_sql(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
        database_obj.close_all()
    elif not store.db.is_closed():
        store.db.close()


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


class Api:
    """Calls the JSON API with a valid key; ``environment`` defaults to development."""

    def __init__(self, client, key):
        self.client = client
        self.headers = {"Authorization": f"Bearer {key}"}

    def request(self, method, path, json=None, **query):
        """Send a request and return the response."""
        return self.client.open(path, method=method, json=json, query_string=query, headers=self.headers)

    def get(self, path, **query):
        """GET ``path``."""
        return self.request("GET", path, **query)

    def put(self, path, json, **query):
        """PUT ``json`` to ``path``."""
        return self.request("PUT", path, json=json, **query)

    def delete(self, path, **query):
        """DELETE ``path``."""
        return self.request("DELETE", path, **query)

    def create_source(self, key="my-source", environment="development", provider=None, **env_body):
        """Create a source and return its body for ``environment``."""
        source = {"name": key.title(), "environment_settings": {environment: env_body} if env_body else {}}
        if provider:
            source["preconfigured_provider"] = provider
        response = self.put(f"/v1/sources/{key}", {"source": source}, environment=environment)
        assert response.status_code == 200, response.get_json()
        return response.get_json()

    def endpoint(self, key="my-source", environment="development"):
        """Return the receive path (without host) of a source environment."""
        body = self.get(f"/v1/sources/{key}", environment=environment).get_json()
        url = body["environment_settings"][environment]["settings"]["endpoint"]
        return url.removeprefix("https://hooks.example.com")

    def create_workflow(self, key, active=True, environment="development"):
        """Create a workflow."""
        response = self.put(
            f"/v1/workflows/{key}", {"workflow": {"name": key, "active": active}}, environment=environment
        )
        assert response.status_code == 200, response.get_json()

    def logs(self, key="my-source", environment="development", **query):
        """Return the log entries of a source, newest first, with their actions."""
        response = self.get(f"/v1/sources/{key}/logs", environment=environment, **{"include[]": "actions", **query})
        assert response.status_code == 200, response.get_json()
        return response.get_json()["entries"]


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


def port_is_open(host, port):
    """Return whether something accepts TCP connections at ``host:port``."""
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, port)) == 0


def free_port():
    """Return a TCP port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def redis_url():
    """The shared Redis, skipped (or failed under CI) when absent."""
    if not port_is_open("127.0.0.1", 6379):
        service_unavailable("Redis is not reachable at 127.0.0.1:6379")
    return REDIS_URL

"""Helpers shared by the test modules: making an app, calling the API, services and ports.

Fixtures live in ``conftest.py``; anything a test module imports lives here.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import psycopg2
import pytest

from app import create_app
from knock_sources import state, store
from knock_sources.store import schema

#: The repository's root directory, where ``flask`` finds ``wsgi.py``.
ROOT = Path(__file__).resolve().parents[2]
POSTGRES_HOST = os.environ.get("KNOCK_SOURCES_TEST_POSTGRES_HOST", "127.0.0.1")
POSTGRES_DB = os.environ.get("KNOCK_SOURCES_TEST_POSTGRES_DB", "test")
REDIS_URL = os.environ.get("KNOCK_SOURCES_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
REQUIRE_SERVICES = bool(os.environ.get("KNOCK_SOURCES_REQUIRE_SERVICES"))


def service_unavailable(message):
    """Skip locally, fail under CI: a missing service must never pass silently there."""
    if REQUIRE_SERVICES:
        pytest.fail(f"{message} (required because KNOCK_SOURCES_REQUIRE_SERVICES is set)")
    pytest.skip(message)


def postgres_user():
    for user in ("postgres", "root"):
        try:
            psycopg2.connect(host=POSTGRES_HOST, dbname=POSTGRES_DB, user=user, connect_timeout=3).close()
            return user
        except psycopg2.OperationalError:
            continue
    return None


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
    """End the app's background threads (dispatcher, backlog sampler, replays) so that they do not pile up."""
    app_state = app.extensions[state.EXTENSION]
    app_state.backlog.stop()
    app_state.replays_here.stop()
    if app_state.dispatcher is not None:
        app_state.dispatcher.stop()


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


def count_statements(monkeypatch) -> list:
    """Count the SQL statements the database runs from now on; return the list they are appended to."""
    counted = []
    execute = store.db.obj.execute_sql

    def counting(sql, params=None, *args, **kwargs):
        counted.append(sql)
        return execute(sql, params, *args, **kwargs)

    monkeypatch.setattr(store.db.obj, "execute_sql", counting)
    return counted

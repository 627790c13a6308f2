"""Fixtures of the production shape: PostgreSQL and a private queue on the real Redis."""

from __future__ import annotations

import uuid

import pytest

from tests.support import Api, make_app, reset_database, stop_dispatcher


@pytest.fixture
def queue_app(postgres_url, redis_url):
    """An app on PostgreSQL with a private queue on the real Redis."""
    app = make_app(postgres_url, REDIS_URL=redis_url, QUEUE_NAME=f"ks-test-{uuid.uuid4().hex[:8]}")
    yield app
    stop_dispatcher(app)
    reset_database()


@pytest.fixture
def queue_api(queue_app):
    key = queue_app.test_cli_runner().invoke(args=["api-key", "create"]).stdout.strip()
    api = Api(queue_app.test_client(), key)
    api.create_workflow("receipt")
    return api

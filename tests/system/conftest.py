"""Fixtures of the production shape: PostgreSQL and a private queue on the real Redis."""

from __future__ import annotations

import uuid

import pytest

from tests.support.processes import api_for, queued_app


@pytest.fixture
def queue_app(postgres_url, redis_url):
    """An app on PostgreSQL with a private queue on the real Redis."""
    with queued_app(postgres_url, redis_url, f"ks-test-{uuid.uuid4().hex[:8]}") as app:
        yield app


@pytest.fixture
def queue_api(queue_app):
    """The JSON API of ``queue_app``, with a ``receipt`` workflow."""
    return api_for(queue_app)

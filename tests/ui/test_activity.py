"""The dashboard's traffic figures: a time turned into an id bound, whatever gaps purges left."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import pytest

from knock_sources.control import activity
from knock_sources.store.control import Environment, EventLog, Source, SourceEnvironment

START = datetime(2026, 1, 1)


@pytest.fixture
def received(db):
    """1,500 event logs received at increasing times, with gaps in their ids; their ``(id, received_at)``."""
    source = Source.create(key="timeline", name="Timeline")
    source_env = SourceEnvironment.create(source=source, environment=Environment.get(), token="timeline-token")
    rng = random.Random(11)
    times = sorted(START + timedelta(seconds=rng.randint(0, 100_000)) for _ in range(1500))
    EventLog.insert_many(
        [{"source_environment": source_env.id, "received_at": at, "headers": {}} for at in times]
    ).execute()
    ids = [row_id for (row_id,) in EventLog.select(EventLog.id).tuples()]
    gone = [row_id for row_id in ids if row_id % 7 == 0 or 400 <= row_id <= 650]
    EventLog.delete().where(EventLog.id.in_(gone)).execute()
    return list(EventLog.select(EventLog.id, EventLog.received_at).order_by(EventLog.id).tuples())


def test_first_id_since_finds_the_first_row_at_or_after_any_time(received):
    rng = random.Random(5)
    for _ in range(200):
        when = START + timedelta(seconds=rng.randint(-100, 100_100))
        expected = next((row_id for row_id, at in received if at >= when), None)
        assert activity.first_id_since(when) == expected, when


def test_first_id_since_of_an_empty_log_is_none(db):
    assert activity.first_id_since(START) is None

"""``GET /v1/sources/{key}/status`` and the dashboard over the hourly rollup (``control.hour_counts``).

Events are sent through the API, then given the times a test needs in the
order of their ids, since ids grow with time in production. The clock of
the rollup is fixed (``clock``) so that no test straddles an hour.
"""

from __future__ import annotations

import re
import threading
from datetime import datetime, timedelta

import pytest

from knock_sources import cli, state
from knock_sources.control import hour_counts
from knock_sources.store import utcnow
from knock_sources.store.control import Environment, EventHourCount, EventLog, Source, SourceEnvironment
from tests.support.dashboard import create_admin, sign_in

HOUR = timedelta(hours=1)


@pytest.fixture
def app_config():
    """No sweep from the web process: each test says when the hours are rolled up."""
    return {"SWEEP_INTERVAL_SECONDS": 86400}


@pytest.fixture
def now(monkeypatch) -> datetime:
    """The rollup's (and the purge's) clock: half past the current hour."""
    fixed = utcnow().replace(minute=30, second=0, microsecond=0)
    monkeypatch.setattr(hour_counts, "utcnow", lambda: fixed)
    monkeypatch.setattr(cli, "utcnow", lambda: fixed)
    return fixed


@pytest.fixture
def current(now) -> datetime:
    """The start of the current hour."""
    return now.replace(minute=0)


@pytest.fixture
def source(api):
    """A custom source in both environments."""
    api.create_source()
    return api


def send(client, api, *events: tuple[datetime, bool], key="my-source") -> list[int]:
    """Send ``(received at, rejected)`` events in this order, then give them those times; return their ids."""
    endpoint = api.endpoint(key)
    for _, rejected in events:
        if rejected:
            assert client.post(endpoint, data="{", content_type="application/json").status_code == 400
        else:
            assert client.post(endpoint, json={"type": "task.done"}).status_code == 204
    ids = [int(entry["id"]) for entry in reversed(api.logs(key, limit=100))][-len(events) :]
    for row_id, (at, _) in zip(ids, events, strict=True):
        EventLog.update(received_at=at).where(EventLog.id == row_id).execute()
    return ids


def status(api, key="my-source") -> tuple[int, int]:
    body = api.get(f"/v1/sources/{key}/status").get_json()
    return body["events_count"], body["rejected_count"]


def rolled_up(key="my-source", environment="development") -> dict[datetime, tuple[int, int, int]]:
    """The stored hours of a source environment: ``{hour: (accepted, rejected, failed)}``."""
    query = (
        EventHourCount.select(EventHourCount)
        .join(SourceEnvironment)
        .join(Source)
        .switch(SourceEnvironment)
        .join(Environment)
        .where((Source.key == key) & (Environment.slug == environment))
    )
    return {row.hour: (row.accepted, row.rejected, row.failed) for row in query}


def test_status_counts_whole_hours_across_boundaries_and_the_30_day_edge(client, source, db, now, current):
    window_start = current - HOUR * (hour_counts.STATUS_HOURS - 1)
    boundary = current - 100 * HOUR
    send(
        client,
        source,
        (window_start - timedelta(seconds=1), False),  # before the oldest hour: not counted
        (window_start, False),
        # More than 30 days old, in the hour that holds "30 days ago": the window is whole hours.
        (now - timedelta(days=30, minutes=10), False),
        (boundary - timedelta(seconds=1), False),
        (boundary + timedelta(seconds=1), False),
        # A slow request: received before the hour ended, its row written after one of the next hour.
        (boundary - timedelta(microseconds=1), True),
        (current - timedelta(seconds=1), True),  # the last settled hour
        (current + timedelta(seconds=1), False),  # the current hour, counted live
        (current + timedelta(minutes=10), True),
    )

    assert status(source) == (5, 3)
    # Every settled hour of the window is rolled up, once each, zeros included.
    hours = rolled_up()
    assert len(hours) == hour_counts.STATUS_HOURS - 1
    assert min(hours) == window_start and max(hours) == current - HOUR
    assert hours[window_start] == (2, 0, 0)
    assert hours[boundary - HOUR] == (1, 1, 0)
    assert hours[boundary] == (1, 0, 0)
    assert hours[current - HOUR] == (0, 1, 0)
    assert sum(accepted + rejected for accepted, rejected, _ in hours.values()) == 6
    # Read again from the rollup: the same numbers.
    assert status(source) == (5, 3)
    assert len(rolled_up()) == hour_counts.STATUS_HOURS - 1


def test_the_status_reads_rolled_up_hours_not_their_rows(client, source, db, now, current):
    [first] = send(client, source, (current - 5 * HOUR, False))
    assert status(source) == (1, 0)
    # Rows written into a rolled-up hour after its rollup (by hand: the service never does) are not counted,
    # so the status no longer reads that hour's rows; rows of the current hour are.
    row = EventLog.get_by_id(first)
    for at in (current - 5 * HOUR + timedelta(minutes=1), current - 2 * HOUR):
        EventLog.create(source_environment=row.source_environment_id, received_at=at, status="processed", headers={})
    assert status(source) == (1, 0)
    EventLog.create(source_environment=row.source_environment_id, received_at=now, status="rejected", headers={})
    assert status(source) == (1, 1)


def test_two_readers_rolling_up_the_same_hours_at_once_store_them_once(client, source, db, monkeypatch, current):
    send(client, source, (current - 3 * HOUR, False), (current - 3 * HOUR + timedelta(minutes=1), True))
    both_counted = threading.Barrier(2, timeout=30)
    store_counts = hour_counts._store

    def store_when_both_counted(counted):
        both_counted.wait()
        store_counts(counted)

    monkeypatch.setattr(hour_counts, "_store", store_when_both_counted)
    results = []
    readers = [threading.Thread(target=lambda: results.append(status(source))) for _ in range(2)]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join(60)
    assert results == [(1, 1), (1, 1)]
    hours = rolled_up()
    assert len(hours) == hour_counts.STATUS_HOURS - 1
    assert hours[current - 3 * HOUR] == (1, 1, 0)
    assert EventHourCount.select().count() == hour_counts.STATUS_HOURS - 1


def test_the_sweep_rolls_up_the_last_day_for_every_source_environment(app, client, source, db, current):
    send(client, source, (current - 30 * HOUR, False), (current - 2 * HOUR, False))
    result = app.test_cli_runner().invoke(args=["sweep"])
    assert result.exit_code == 0, result.output
    swept = [current - HOUR * offset for offset in range(hour_counts.SWEPT_HOURS, 0, -1)]
    for environment in ("development", "production"):
        assert sorted(rolled_up(environment=environment)) == swept
    assert rolled_up()[current - 2 * HOUR] == (1, 0, 0)
    # Older hours are left to the readers.
    assert status(source) == (2, 0)
    assert len(rolled_up()) == hour_counts.STATUS_HOURS - 1


@pytest.mark.parametrize("app_config", [{"SWEEP_INTERVAL_SECONDS": 86400, "LOG_RETENTION_DAYS": 7}])
def test_purge_deletes_the_rolled_up_hours_older_than_the_retention(app, client, source, db, now, current):
    send(client, source, (now - timedelta(days=10), False), (now - timedelta(days=2), True))
    assert status(source) == (1, 1)
    result = app.test_cli_runner().invoke(args=["purge"])
    assert result.exit_code == 0, result.output
    cutoff = now - timedelta(days=7)
    hours = rolled_up()
    assert min(hours) == cutoff.replace(minute=0)
    assert hours[(now - timedelta(days=2)).replace(minute=0)] == (0, 1, 0)
    assert status(source) == (0, 1)


def test_deleting_a_source_deletes_its_rolled_up_hours(client, source, db, current):
    source.create_source("other")
    send(client, source, (current - 2 * HOUR, False))
    send(client, source, (current - 2 * HOUR, True), key="other")
    assert status(source) == (1, 0) and status(source, "other") == (0, 1)
    assert EventHourCount.select().count() == 2 * (hour_counts.STATUS_HOURS - 1)
    assert source.delete("/v1/sources/my-source").status_code == 204
    assert EventHourCount.select().count() == hour_counts.STATUS_HOURS - 1
    assert len(rolled_up("other")) == hour_counts.STATUS_HOURS - 1


def test_a_cold_dashboard_reads_the_rolled_up_hours(app, client, source, db, current):
    create_admin(app)
    sign_in(client)
    [first] = send(client, source, (current - 3 * HOUR, False), (current - 2 * HOUR, True))[:1]

    def drawn() -> str:
        page = client.get("/development/sources/my-source").get_data(as_text=True)
        return re.search(r"(\d+) accepted, (\d+) rejected and (\d+) failed", page).group(0)

    assert drawn() == "1 accepted, 1 rejected and 0 failed"
    row = EventLog.get_by_id(first)
    EventLog.create(source_environment=row.source_environment_id, received_at=current - 3 * HOUR, headers={})
    # A new process (its memory empty) reads the same hours from the rollup, not their rows.
    app.extensions[state.EXTENSION].hours = hour_counts.HourlyCounts()
    assert drawn() == "1 accepted, 1 rejected and 0 failed"
    listing = client.get("/development/sources").get_data(as_text=True)
    assert re.search(r"<td>\s*2\s*<span class=\"muted\">\(1 rejected, 0 failed\)</span>", listing)

"""Concurrent ingest requests share one INSERT (``ingest.eventlog`` through ``ingest.group_commit``).

The first request's INSERT is held until the others are queued behind it,
so that the second statement carries all of them: each request must still
get its own answer and its own row.
"""

import json
import threading

import pytest

from knock_sources import store
from knock_sources.ingest import eventlog
from knock_sources.store.control import EventLog, SourceEnvironment
from tests.unit.test_group_commit import wait_until

EVENT_LOG_INSERT = 'INSERT INTO "ks_event_log"'


@pytest.fixture
def held_inserts(monkeypatch):
    """Record the event-log INSERTs (their row counts); the first waits until ``release`` is set."""
    release, statements = threading.Event(), []
    execute_sql = store.db.obj.execute_sql

    def holding(sql, params=None, *args, **kwargs):
        if sql.startswith(EVENT_LOG_INSERT) and not store.db.in_transaction():
            statements.append(sql.count("), (") + 1)
            if len(statements) == 1:
                assert release.wait(10)
        return execute_sql(sql, params, *args, **kwargs)

    monkeypatch.setattr(store.db.obj, "execute_sql", holding)
    return release, statements


def post_behind_a_held_insert(app, held_inserts, requests, meanwhile=lambda: None):
    """POST each ``(url, body)`` from a thread of its own and return the answers, by index, once all are in.

    The first request goes alone and is held in its INSERT; ``meanwhile``
    runs; the others start and queue behind it; then the INSERT goes on.
    """
    release, statements = held_inserts
    answers = {}

    def post(index, url, body):
        response = app.test_client().post(url, data=body, content_type="application/json")
        answers[index] = (response.status_code, response.get_json(silent=True))

    threads = [threading.Thread(target=post, args=(index, *request)) for index, request in enumerate(requests)]
    threads[0].start()
    wait_until(lambda: len(statements) == 1)
    meanwhile()
    for thread in threads[1:]:
        thread.start()
    wait_until(lambda: len(eventlog._GROUP._queued) == len(threads) - 1)
    release.set()
    for thread in threads:
        thread.join(10)
        assert not thread.is_alive()
    return [answers[index] for index in range(len(threads))]


def test_requests_queued_behind_a_write_share_the_next_insert_and_each_keeps_its_own_row(app, api, held_inserts, db):
    api.create_source("custom", settings={"event_type_path": "type"})
    url = api.endpoint("custom")
    bodies = [json.dumps({"type": f"order.{n}", "n": n}) for n in range(5)]
    answers = post_behind_a_held_insert(app, held_inserts, [(url, body) for body in bodies])
    assert [status for status, _ in answers] == [204] * 5
    assert held_inserts[1] == [1, 4]
    logged = sorted((row.body for row in EventLog.select()), key=lambda body: body["n"])
    assert logged == [json.loads(body) for body in bodies]


def test_a_request_whose_source_was_deleted_meanwhile_is_404_and_the_others_in_its_insert_are_accepted(
    app, api, held_inserts, db
):
    release, statements = held_inserts
    for key in ("kept", "gone"):
        api.create_source(key, settings={"event_type_path": "type"})
    kept, gone = api.endpoint("kept"), api.endpoint("gone")
    body = json.dumps({"type": "order.paid"})
    # Its token is now cached by this process, as another process's delete would leave it.
    release.set()
    assert app.test_client().post(gone, data=body, content_type="application/json").status_code == 204
    statements.clear()
    release.clear()
    environment = SourceEnvironment.get(SourceEnvironment.token == gone.rsplit("/", 1)[1])

    def delete_gone():
        SourceEnvironment.delete().where(SourceEnvironment.id == environment.id).execute()

    answers = post_behind_a_held_insert(
        app, held_inserts, [(kept, body), (kept, body), (gone, body), (kept, body)], meanwhile=delete_gone
    )
    assert [status for status, _ in answers] == [204, 204, 404, 204]
    assert answers[2][1]["code"] == "source_missing"
    assert EventLog.select().where(EventLog.source_environment == environment.id).count() == 0
    assert EventLog.select().count() == 3
    # The batch's INSERT failed as a whole, and each row was then written alone.
    assert statements == [1, 3, 1, 1, 1]


@pytest.fixture
def row_params(app, api, db):
    """Make the INSERT parameters of an event-log row with the body ``{"n": n}``, for the source of one logged event."""
    api.create_source("custom", settings={"event_type_path": "type"})
    assert app.test_client().post(api.endpoint("custom"), json={"type": "a"}).status_code == 204
    (row,) = EventLog.select()

    def params(n):
        # The columns of ``eventlog._PERSISTED_COLUMNS``, in order.
        body = json.dumps({"n": n})
        return [row.source_environment_id, "pending", "{}", body, None, None, row.received_at, None, None, None, None]

    return row, params


def test_the_rows_of_one_insert_get_their_own_ids_in_order(row_params):
    _, params = row_params
    ids = eventlog.write_rows([params(n) for n in range(6)])
    assert [EventLog.get_by_id(event_log_id).body for event_log_id in ids] == [{"n": n} for n in range(6)]


def test_a_row_written_inside_a_transaction_is_rolled_back_with_it(row_params, db):
    row, params = row_params
    with db.atomic() as transaction:
        copied = eventlog.insert_row(params(1))
        assert EventLog.select().where(EventLog.id == copied).exists()
        transaction.rollback()
    assert [log.id for log in EventLog.select()] == [row.id]

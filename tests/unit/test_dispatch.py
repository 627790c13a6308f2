"""The background hand-over of committed event ids (``knock_sources.dispatch``)."""

import logging
import threading

import redis

from knock_sources.worker import dispatch
from knock_sources.worker.dispatch import Dispatcher


def test_ids_are_pushed_in_order_and_batched_while_a_push_is_in_flight():
    pushed, release = [], threading.Event()

    def push(ids):
        pushed.append(list(ids))
        if len(pushed) == 1:
            release.wait(5)

    dispatcher = Dispatcher(push)
    dispatcher.submit(1)
    for event_id in range(2, 6):
        dispatcher.submit(event_id)
    release.set()
    assert dispatcher.flush()
    assert [event_id for batch in pushed for event_id in batch] == [1, 2, 3, 4, 5]
    assert len(pushed) <= 3
    dispatcher.stop()


def test_a_failed_push_is_logged_and_does_not_stop_the_thread(caplog):
    calls = []

    def push(ids):
        calls.append(ids)
        if len(calls) == 1:
            raise redis.ConnectionError("Connection refused")

    dispatcher = Dispatcher(push)
    with caplog.at_level(logging.WARNING):
        dispatcher.submit(1)
        assert dispatcher.flush()
        dispatcher.submit(2)
        assert dispatcher.flush()
    assert calls == [[1], [2]]
    assert "stay pending until the sweeper runs" in caplog.text
    dispatcher.stop()


def test_stop_pushes_what_is_left_and_ends_the_thread():
    pushed = []
    dispatcher = Dispatcher(pushed.extend)
    dispatcher.submit(7)
    thread = dispatcher._thread
    dispatcher.stop()
    thread.join(5)
    assert not thread.is_alive()
    assert pushed == [7]


def test_ids_submitted_while_the_thread_lingers_share_one_push(monkeypatch):
    pushed, lingering, release = [], threading.Event(), threading.Event()

    def linger(seconds):
        lingering.set()
        assert release.wait(5)

    monkeypatch.setattr(dispatch, "sleep", linger)
    dispatcher = Dispatcher(pushed.append, linger_seconds=0.01)
    dispatcher.submit(1)
    assert lingering.wait(5)
    for event_id in range(2, 6):
        dispatcher.submit(event_id)
    release.set()
    assert dispatcher.flush()
    assert pushed == [[1, 2, 3, 4, 5]]
    dispatcher.stop()

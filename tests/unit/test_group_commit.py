"""Leader and followers in front of a batch write (``knock_sources.ingest.group_commit``)."""

import threading
import time

import pytest

from knock_sources.ingest.group_commit import GroupCommit


def wait_until(condition, seconds=10.0):
    """Wait for ``condition()`` to hold (a state, not a duration: the deadline only bounds a broken run)."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.001)


class GatedWrite:
    """A write whose first call blocks until released, recording every batch it is given."""

    def __init__(self, result=lambda value: value * 10, results_kept=None):
        self.batches = []
        self.release = threading.Event()
        self.result = result
        self.results_kept = results_kept

    def __call__(self, values):
        self.batches.append(list(values))
        if len(self.batches) == 1:
            assert self.release.wait(10)
        return [self.result(value) for value in values][: self.results_kept]


def submit_in_threads(group, values):
    """Submit each value from a thread of its own; return the threads and a dict filled with outcomes."""
    outcomes = {}

    def submit(value):
        try:
            outcomes[value] = group.submit(value)
        except Exception as exc:
            outcomes[value] = exc

    threads = [threading.Thread(target=submit, args=(value,)) for value in values]
    for thread in threads:
        thread.start()
    return threads, outcomes


def test_a_lone_value_is_written_at_once_on_its_own():
    write = GatedWrite()
    write.release.set()
    group = GroupCommit(write)
    assert group.submit(1) == 10
    assert group.submit(2) == 20
    assert write.batches == [[1], [2]]


def write_behind_a_held_write(write, first, rest):
    """Submit ``first``, hold its write until all of ``rest`` is queued, then release it; return the outcomes."""
    group = GroupCommit(write)
    leader, outcomes = submit_in_threads(group, [first])
    wait_until(lambda: len(write.batches) == 1)
    followers, more = submit_in_threads(group, rest)
    wait_until(lambda: len(group._queued) == len(rest))
    write.release.set()
    for thread in leader + followers:
        thread.join(10)
        assert not thread.is_alive()
    return {**outcomes, **more}


def test_values_that_arrive_during_a_write_share_the_next_one_and_each_gets_its_own_result():
    write = GatedWrite()
    assert write_behind_a_held_write(write, 1, [2, 3, 4]) == {1: 10, 2: 20, 3: 30, 4: 40}
    assert write.batches == [[1], [2, 3, 4]]


def test_an_exception_for_one_value_is_raised_in_its_thread_only():
    write = GatedWrite(result=lambda value: ValueError(f"bad {value}") if value == 3 else value * 10)
    outcomes = write_behind_a_held_write(write, 1, [2, 3, 4])
    assert isinstance(outcomes.pop(3), ValueError)
    assert outcomes == {1: 10, 2: 20, 4: 40}


def test_a_failed_write_fails_its_whole_batch_and_the_next_batch_is_still_written():
    calls = []

    def write(values):
        calls.append(list(values))
        if len(calls) == 1:
            raise RuntimeError("connection lost")
        return values

    group = GroupCommit(write)
    with pytest.raises(RuntimeError, match="connection lost"):
        group.submit(1)
    assert group.submit(2) == 2
    assert calls == [[1], [2]]


def test_a_write_that_gives_too_few_results_fails_its_batch_instead_of_leaving_a_thread_waiting():
    write = GatedWrite(results_kept=1)
    outcomes = write_behind_a_held_write(write, 1, [2, 3])
    assert outcomes[1] == 10
    assert [type(outcomes[value]) for value in (2, 3)] == [RuntimeError, RuntimeError]

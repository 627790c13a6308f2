"""Workers process pending events in batches: one transaction per batch, each event on its own inside it.

The events are written pending, as ingest leaves them for a worker, and a
batch is handed to ``jobs.process_events``, which is what a drain does
with the ids it pops.
"""

from __future__ import annotations

import logging
import threading

import psycopg2
import pytest
from marshmallow import Schema, fields
from peewee import IntegrityError, OperationalError

from knock_sources import state, store
from knock_sources.actions.base import Action
from knock_sources.hookspecs import hookimpl
from knock_sources.store import PENDING
from knock_sources.store.control import ActionLog, Environment, EventLog, KnownEvent, Source, SourceEnvironment
from knock_sources.store.dataplane import User
from knock_sources.worker import batch, jobs
from tests.support import Api, count_statements, make_app, reset_database, stop_dispatcher
from tests.support.actions import mapping
from tests.support.processes import wait_for

IDENTIFY = mapping("users_identify", "signed_up", id="body.user", name="body.name")
TYPED = {"event_type_path": "type"}


class ExplodingField(fields.Field):
    """A parameter whose validation fails in an unexpected way (a bug in a plugin's schema)."""

    def _deserialize(self, value, attr, data, **kwargs):
        raise RuntimeError("bug in a plugin's schema")


class ExplodeSchema(Schema):
    """Parameters of the ``explode`` test action."""

    value = ExplodingField(required=True)


class Explode(Action):
    """Never runs: preparing its parameters raises, an internal error of the event."""

    action_type = "explode"
    name = "Explode"
    params_schema = ExplodeSchema


class MeetSchema(Schema):
    """Parameters of the ``meet`` test action."""

    user = fields.String(required=True)


class Meet(Action):
    """Waits, the first time only, until two batches have both reached it (a rendezvous of two workers)."""

    action_type = "meet"
    name = "Meet"
    params_schema = MeetSchema

    def __init__(self):
        self.barrier = threading.Barrier(2)
        self.met = False

    def execute(self, context, params):
        """Wait for the other batch, unless both have met already."""
        if not self.met:
            self.barrier.wait(timeout=120)
            self.met = True
        return {"met": params["user"]}


class Hold(Action):
    """Keeps its batch's transaction open until the test lets it go."""

    action_type = "hold"
    name = "Hold"
    params_schema = Schema

    def __init__(self):
        self.holding = threading.Event()
        self.release = threading.Event()

    def execute(self, context, params):
        """Say it holds, then wait to be released."""
        self.holding.set()
        self.release.wait(timeout=120)
        return {}


class ActionsPlugin:
    """Registers ``explode``, ``meet`` and ``hold``."""

    def __init__(self):
        self.meet = Meet()
        self.hold = Hold()

    @hookimpl
    def register_actions(self):
        """Register the test actions."""
        return [Explode(), self.meet, self.hold]


@pytest.fixture
def plugin():
    return ActionsPlugin()


@pytest.fixture
def app_config(plugin):
    return {"EXTRA_PLUGINS": [plugin]}


def source_environment(key="my-source") -> SourceEnvironment:
    return (
        SourceEnvironment.select()
        .join(Source)
        .switch(SourceEnvironment)
        .join(Environment)
        .where((Source.key == key) & (Environment.slug == "development"))
        .get()
    )


def write_pending(bodies, key="my-source") -> list[int]:
    """Log ``bodies`` as pending events, as ingest does before a worker takes them."""
    source_env = source_environment(key)
    return [EventLog.create(source_environment=source_env, status=PENDING, body=body, headers={}).id for body in bodies]


def process(app, ids):
    return jobs.process_events(app.extensions[state.EXTENSION], ids)


def by_id(api) -> dict:
    return {int(entry["id"]): entry for entry in api.logs(limit=100)}


def test_a_batch_runs_its_events_in_order_and_counts_their_types_once(app, api, db):
    api.create_source(settings=TYPED, mappings=[IDENTIFY])
    names = ["Ada", "Ada Lovelace", "Countess"]
    ids = write_pending([{"type": "signed_up", "user": "u1", "name": name} for name in names])
    assert process(app, ids) == dict.fromkeys(ids, "processed")
    entries = by_id(api)
    assert [entries[event_id]["status"] for event_id in ids] == ["processed"] * 3
    assert all(entries[event_id]["actions"][0]["action_status"] == "success" for event_id in ids)
    # Each event saw the one before: the last name is the last event's.
    assert api.get("/v1/users/u1").get_json()["name"] == "Countess"
    [known] = api.get("/v1/sources/my-source/events").get_json()["entries"]
    assert (known["event"], known["count"]) == ("signed_up", 3)
    assert known["sample_payload"]["body"]["name"] == "Countess"


def test_the_cost_of_a_batch_does_not_grow_with_its_events(app, api, db, monkeypatch):
    # Events no mapping handles: what is left is the batch's own bookkeeping.
    api.create_source(settings=TYPED)
    few = write_pending([{"type": "seen", "n": n} for n in range(3)])
    many = write_pending([{"type": "seen", "n": n} for n in range(30)])
    counted = count_statements(monkeypatch)
    process(app, few)
    statements_for_few = len(counted)
    counted.clear()
    process(app, many)
    assert len(counted) == statements_for_few
    assert {entry["status"] for entry in api.logs(limit=100)} == {"processed"}
    assert api.get("/v1/sources/my-source/events").get_json()["entries"][0]["count"] == 33


def test_an_internal_error_fails_that_event_alone_and_undoes_its_actions(app, api, db, caplog):
    explode = mapping("explode", "broken", value="body.user")
    api.create_source(settings=TYPED, mappings=[IDENTIFY, {**IDENTIFY, "event_type": "broken"}, explode])
    ids = write_pending(
        [
            {"type": "signed_up", "user": "u1"},
            {"type": "broken", "user": "u2"},
            {"type": "signed_up", "user": "u3"},
        ]
    )
    with caplog.at_level(logging.ERROR, logger="knock_sources"):
        statuses = process(app, ids)
    assert [statuses[event_id] for event_id in ids] == ["processed", "failed", "processed"]
    entries = by_id(api)
    broken = entries[ids[1]]
    # As when an event was its own transaction: the error, and nothing it did.
    assert broken["error"] == "internal error: RuntimeError"
    assert broken["actions"] == []
    assert api.get("/v1/users/u2").status_code == 404
    assert [api.get(f"/v1/users/{user}").status_code for user in ("u1", "u3")] == [200, 200]
    assert [len(entries[event_id]["actions"]) for event_id in (ids[0], ids[2])] == [1, 1]
    assert [record.getMessage() for record in caplog.records] == [f"processing event {ids[1]} failed"]
    # An event that failed internally is not counted as a known event type (nothing of it was kept).
    assert [known["event"] for known in api.get("/v1/sources/my-source/events").get_json()["entries"]] == ["signed_up"]


IDEMPOTENT = {**TYPED, "idempotency_key_path": "body.key", "enforce_idempotency": True}


def test_duplicates_inside_one_batch_execute_once(app, api, db):
    api.create_source(settings=IDEMPOTENT, mappings=[IDENTIFY])
    ids = write_pending([{"type": "signed_up", "key": "k1", "user": "u1", "name": f"N{n}"} for n in range(3)])
    statuses = process(app, ids)
    assert [statuses[event_id] for event_id in ids] == ["processed", "idempotent", "idempotent"]
    assert api.get("/v1/users/u1").get_json()["name"] == "N0"
    assert ActionLog.select().count() == 1


def test_a_duplicate_after_a_failed_one_in_the_same_batch_runs_as_a_redelivery(app, api, db):
    api.create_source(settings=IDEMPOTENT, mappings=[IDENTIFY])
    bodies = [
        # Not a usable user id: the action fails, and so the key is let go.
        {"type": "signed_up", "key": "k1", "user": {"not": "an id"}},
        {"type": "signed_up", "key": "k1", "user": "u1", "name": "Ada"},
        {"type": "signed_up", "key": "k1", "user": "u1", "name": "Bob"},
    ]
    ids = write_pending(bodies)
    statuses = process(app, ids)
    assert [statuses[event_id] for event_id in ids] == ["failed", "processed", "idempotent"]
    assert api.get("/v1/users/u1").get_json()["name"] == "Ada"


def test_a_database_failure_mid_batch_leaves_every_event_pending_with_nothing_applied(app, api, db, monkeypatch):
    api.create_source(settings=TYPED, mappings=[IDENTIFY])
    ids = write_pending([{"type": "signed_up", "user": f"u{n}"} for n in range(4)])
    finish = batch._finish
    finished = []

    def connection_lost_at_the_third(event_log, status):
        finished.append(event_log.id)
        if len(finished) == 3:
            raise OperationalError("server closed the connection unexpectedly")
        finish(event_log, status)

    monkeypatch.setattr(batch, "_finish", connection_lost_at_the_third)
    with pytest.raises(OperationalError):
        process(app, ids)
    assert [event.status for event in EventLog.select().order_by(EventLog.id)] == [PENDING] * 4
    assert (User.select().count(), ActionLog.select().count(), KnownEvent.select().count()) == (0, 0, 0)

    monkeypatch.undo()
    assert process(app, ids) == dict.fromkeys(ids, "processed")
    assert User.select().count() == 4


def test_a_batch_whose_writes_fail_is_processed_one_event_at_a_time(app, api, db, monkeypatch, caplog):
    api.create_source(settings=TYPED, mappings=[IDENTIFY])
    ids = write_pending([{"type": "signed_up", "user": f"u{n}"} for n in range(3)])
    save = batch.save_action_logs

    def refuse_many(action_logs):
        # As when a mapping is deleted while its batch runs: the action logs naming it cannot be written.
        if len(action_logs) > 1:
            raise IntegrityError("insert or update on table ks_action_log violates foreign key constraint")
        save(action_logs)

    monkeypatch.setattr(batch, "save_action_logs", refuse_many)
    with caplog.at_level(logging.ERROR, logger="knock_sources"):
        assert process(app, ids) == dict.fromkeys(ids, "processed")
    assert "a batch of 3 events failed; processing them one by one" in caplog.text
    assert (User.select().count(), ActionLog.select().count()) == (3, 3)
    assert {entry["status"] for entry in api.logs()} == {"processed"}


def test_an_event_another_batch_already_took_is_left_to_it(app, api, db):
    api.create_source(settings=TYPED, mappings=[IDENTIFY])
    [first, second] = write_pending([{"type": "signed_up", "user": "u1"}, {"type": "signed_up", "user": "u2"}])
    assert process(app, [first]) == {first: "processed"}
    # A sweep queued the first again: it is not pending any more, so only the second runs.
    assert process(app, [first, second]) == {second: "processed"}
    assert ActionLog.select().count() == 2


@pytest.fixture
def postgres_app(postgres_url, plugin):
    app = make_app(postgres_url, EXTRA_PLUGINS=[plugin])
    yield app
    stop_dispatcher(app)
    reset_database()


def test_two_batches_that_deadlock_are_both_completed(postgres_app, plugin, caplog):
    """Two batches lock the same users in opposite orders: PostgreSQL aborts one, which then goes one by one."""
    app = postgres_app
    key = app.test_cli_runner().invoke(args=["api-key", "create"]).stdout.strip()
    api = Api(app.test_client(), key)
    meet = mapping("meet", "first", user="body.user")
    api.create_source(settings=TYPED, mappings=[IDENTIFY, {**IDENTIFY, "event_type": "first"}, meet])
    with store.db.connection_context():
        for user in ("u1", "u2"):
            api.client.post(api.endpoint(), json={"type": "signed_up", "user": user})
        # Each batch identifies one user, meets the other batch, then identifies the other user.
        # (A name to set: an identify that changes nothing writes nothing, and locks nothing.)
        batch_a = write_pending(
            [{"type": "first", "user": "u1", "name": "A"}, {"type": "signed_up", "user": "u2", "name": "A"}]
        )
        batch_b = write_pending(
            [{"type": "first", "user": "u2", "name": "B"}, {"type": "signed_up", "user": "u1", "name": "B"}]
        )
    app_state = app.extensions[state.EXTENSION]
    outcomes: dict = {}

    def worker(ids):
        with store.db.connection_context():
            outcomes.update(jobs.process_events(app_state, ids))

    threads = [threading.Thread(target=worker, args=(ids,)) for ids in (batch_a, batch_b)]
    with caplog.at_level(logging.WARNING, logger="knock_sources"):
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
    assert plugin.meet.met
    assert outcomes == dict.fromkeys(batch_a + batch_b, "processed")
    conflicts = [record for record in caplog.records if "conflicted with another" in record.getMessage()]
    assert len(conflicts) == 1
    with store.db.connection_context():
        # Every event ran its actions exactly once.
        logged = [entry.event_log_id for entry in ActionLog.select().order_by(ActionLog.id)]
    assert sorted(logged[2:]) == sorted([batch_a[0], batch_a[0], batch_a[1], batch_b[0], batch_b[0], batch_b[1]])


def lock_waits(postgres_url) -> int:
    """How many sessions wait for a row or transaction lock on the idempotency records now."""
    with psycopg2.connect(postgres_url.split("?")[0]) as connection, connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE %s",
            ("%ks_idempotency_record%",),
        )
        return cursor.fetchone()[0]


def test_a_batch_holding_keys_makes_another_batch_with_them_wait_then_find_them_taken(
    postgres_app, postgres_url, plugin, caplog
):
    app = postgres_app
    key = app.test_cli_runner().invoke(args=["api-key", "create"]).stdout.strip()
    api = Api(app.test_client(), key)
    hold = mapping("hold", "hold")
    api.create_source(settings=IDEMPOTENT, mappings=[IDENTIFY, hold])
    with store.db.connection_context():
        holding = write_pending(
            [
                {"type": "signed_up", "key": "k1", "user": "u1", "name": "A"},
                {"type": "signed_up", "key": "k2", "user": "u2", "name": "A"},
                {"type": "hold"},
            ]
        )
        # The same keys in the opposite order.
        waiting = write_pending(
            [
                {"type": "signed_up", "key": "k2", "user": "u2", "name": "B"},
                {"type": "signed_up", "key": "k1", "user": "u1", "name": "B"},
            ]
        )
    app_state = app.extensions[state.EXTENSION]
    outcomes: dict = {}

    def worker(ids):
        with store.db.connection_context():
            outcomes.update(jobs.process_events(app_state, ids))

    first = threading.Thread(target=worker, args=(holding,))
    second = threading.Thread(target=worker, args=(waiting,))
    with caplog.at_level(logging.WARNING, logger="knock_sources"):
        first.start()
        assert plugin.hold.holding.wait(timeout=120)
        second.start()
        # Until the second batch waits for the first's claims (the outcome is the same if it has not yet).
        wait_for(lambda: lock_waits(postgres_url) > 0, "the second batch to wait for the keys", timeout=120)
        plugin.hold.release.set()
        first.join(timeout=120)
        second.join(timeout=120)
    assert outcomes == {**dict.fromkeys(holding, "processed"), **dict.fromkeys(waiting, "idempotent")}
    assert "conflicted with another" not in caplog.text
    with store.db.connection_context():
        assert [user.name for user in User.select().order_by(User.external_id)] == ["A", "A"]
        assert ActionLog.select().count() == 3


def test_events_another_worker_holds_are_skipped_without_waiting_and_without_writes(postgres_app, plugin, monkeypatch):
    """On PostgreSQL the claim is a row lock: another batch skips held events at once and writes nothing to claim."""
    app = postgres_app
    key = app.test_cli_runner().invoke(args=["api-key", "create"]).stdout.strip()
    api = Api(app.test_client(), key)
    api.create_source(settings=TYPED, mappings=[IDENTIFY, mapping("hold", "hold")])
    with store.db.connection_context():
        [held, other] = write_pending([{"type": "hold"}, {"type": "signed_up", "user": "u1"}])
    app_state = app.extensions[state.EXTENSION]
    outcomes: dict = {}

    def first_worker():
        with store.db.connection_context():
            outcomes.update(jobs.process_events(app_state, [held]))

    first = threading.Thread(target=first_worker)
    first.start()
    try:
        assert plugin.hold.holding.wait(timeout=120)
        counted = count_statements(monkeypatch)
        with store.db.connection_context():
            # Were the held event waited for, this would block until the hold is released.
            assert jobs.process_events(app_state, [held, other]) == {other: "processed"}
        # One write to the event log: the final statuses (a claim that wrote would be a second).
        assert len([sql for sql in counted if sql.startswith('UPDATE "ks_event_log"')]) == 1
    finally:
        plugin.hold.release.set()
        first.join(timeout=120)
    assert outcomes == {held: "processed"}
    with store.db.connection_context():
        assert [event.status for event in EventLog.select().order_by(EventLog.id)] == ["processed", "processed"]


def test_a_batch_whose_events_all_succeed_uses_no_savepoint(app, api, db, monkeypatch):
    api.create_source(settings=TYPED, mappings=[IDENTIFY])
    # (Creating a user takes a savepoint, in case a concurrent batch creates it first.)
    process(app, write_pending([{"type": "signed_up", "user": user} for user in ("u0", "u1")]))
    ids = write_pending([{"type": "signed_up", "user": f"u{n % 2}", "name": f"N{n}"} for n in range(4)])
    counted = count_statements(monkeypatch)
    assert process(app, ids) == dict.fromkeys(ids, "processed")
    # A subtransaction per event or action would cost round trips (and PostgreSQL's subtransaction cache).
    assert [sql for sql in counted if "SAVEPOINT" in sql.upper()] == []
    assert [api.get(f"/v1/users/{user}").get_json()["name"] for user in ("u0", "u1")] == ["N2", "N3"]


def test_an_action_failing_after_writing_is_undone_alone_in_its_batch(app, api, db):
    # The second identify creates u2, then finds its properties too large: only a savepoint undoes it.
    api.create_source(
        settings=TYPED, mappings=[mapping("users_identify", "signed_up", id="body.user", properties="body.p")]
    )
    large = {"blob": "x" * (300 * 1024)}
    ids = write_pending(
        [
            {"type": "signed_up", "user": "u1", "p": {"plan": "pro"}},
            {"type": "signed_up", "user": "u2", "p": large},
            {"type": "signed_up", "user": "u3", "p": {"plan": "free"}},
        ]
    )
    statuses = process(app, ids)
    assert [statuses[event_id] for event_id in ids] == ["processed", "failed", "processed"]
    assert [api.get(f"/v1/users/{user}").status_code for user in ("u1", "u2", "u3")] == [200, 404, 200]
    [action] = by_id(api)[ids[1]]["actions"]
    assert action["action_status"] == "error"
    assert "over the 256 KiB limit" in action["error"]


def test_a_cancel_in_a_batch_cancels_the_runs_its_earlier_events_triggered(app, api, db):
    api.create_workflow("wf")
    api.create_source(
        settings=TYPED,
        mappings=[
            mapping("workflows_trigger", "start", key="wf", recipients="body.to", cancellation_key="body.key"),
            mapping("workflows_cancel", "stop", key="wf", cancellation_key="body.key"),
        ],
    )
    users = [{"id": "ann", "name": "Ann"}, {"id": "bob", "name": "Bob"}]
    ids = write_pending(
        [
            {"type": "start", "to": users, "key": "k1"},
            {"type": "start", "to": users[:1], "key": "k2"},
            {"type": "stop", "key": "k1"},
            {"type": "start", "to": users[1:], "key": "k1"},
        ]
    )
    assert process(app, ids) == dict.fromkeys(ids, "processed")
    [cancel] = by_id(api)[ids[2]]["actions"]
    assert cancel["action_result"]["cancelled_runs"] == 2
    runs = api.get("/v1/workflows/wf/runs").get_json()["entries"]
    assert sorted((run["cancellation_key"], run["recipient"]["id"], run["status"]) for run in runs) == [
        ("k1", "ann", "cancelled"),
        ("k1", "bob", "cancelled"),
        ("k1", "bob", "triggered"),
        ("k2", "ann", "triggered"),
    ]


def test_a_batch_reads_the_users_its_events_identify_and_trigger_for_at_once(app, api, db, monkeypatch):
    api.create_workflow("wf")
    trigger = mapping("workflows_trigger", "signed_up", key="wf", recipients="body.to")
    api.create_source(settings=TYPED, mappings=[IDENTIFY, trigger])
    process(app, write_pending([{"type": "signed_up", "user": f"u{n}", "to": []} for n in range(3)]))
    ids = write_pending([{"type": "signed_up", "user": f"u{n}", "to": [f"u{n + 1}", "nobody"]} for n in range(3)])
    counted = count_statements(monkeypatch)
    assert process(app, ids) == dict.fromkeys(ids, "processed")
    # One for the identifies' users, one for the triggers' recipients not among them: not one per event.
    assert len([sql for sql in counted if sql.startswith("SELECT") and '"ks_user"' in sql]) == 2
    results = [by_id(api)[event_id]["actions"][1]["action_result"] for event_id in ids]
    # u3 is not identified, and nobody is anybody: each trigger found what the batch had identified by then.
    assert [[recipient["id"] for recipient in result["recipients"]] for result in results] == [["u1"], ["u2"], []]
    assert [len(result["skipped_recipients"]) for result in results] == [1, 1, 2]

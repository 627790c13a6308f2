"""Payloads no database can store, bodies in other encodings, and what the sender and the logs are told.

An identifier or a query holding a NUL or a lone surrogate is refused with a
4xx; a payload holding one is accepted, and whatever cannot store it ends
with an error naming the problem and the path, never an internal error.
"""

import os
import signal
import sys

import pytest
from peewee import SQL

from knock_sources import state
from knock_sources.ingest import body
from knock_sources.store.control import EventLog
from tests.support.actions import EventSource, mapping
from tests.support.scripts import wait_until_ended

NUL, SURROGATE = "a\x00b", "\ud800"


@pytest.fixture
def source(client, api):
    """A custom source that identifies ``body.user.id`` on ``user.updated``."""
    return EventSource(client, api).configure(mapping("users_identify", "user.updated", id="body.user.id"))


@pytest.mark.parametrize(("event_type", "problem"), [(NUL, "a NUL character"), (SURROGATE, "a lone surrogate")])
def test_an_event_type_no_database_can_store_is_named_not_an_internal_error(source, event_type, problem):
    entry = source.send({"type": event_type})
    assert entry["status"] == "processed"
    assert entry["event"] == "unknown"
    assert f"the event type holds {problem}" in entry["error"]
    assert "internal error" not in entry["error"]


@pytest.mark.parametrize(
    ("value", "problem"), [(NUL, "a NUL character (\\u0000)"), (SURROGATE, "a lone surrogate (\\ud800)")]
)
def test_a_data_plane_value_no_database_can_store_is_an_action_error_naming_the_path(source, value, problem):
    entry = source.send({"type": "user.updated", "user": {"id": value}})
    assert entry["status"] == "failed"
    [action] = entry["actions"]
    assert action["action_status"] == "error"
    assert action["error"] == f"id: holds {problem}, which cannot be stored (path 'body.user.id')"


def test_a_nested_value_is_named_by_its_path_inside_the_parameter(client, api):
    source = EventSource(client, api).configure(
        mapping("users_identify", "user.updated", id="body.user.id", properties="body.user.traits")
    )
    entry = source.send({"type": "user.updated", "user": {"id": "ann", "traits": {"tags": ["ok", NUL]}}})
    [action] = entry["actions"]
    assert action["error"] == (
        "properties.tags[1]: holds a NUL character (\\u0000), which cannot be stored (path 'body.user.traits')"
    )


@pytest.mark.parametrize("key", [NUL, SURROGATE])
def test_an_idempotency_key_no_database_can_store_is_dropped_with_a_note(client, api, key):
    source = EventSource(client, api).configure(
        mapping("users_identify", "user.updated", id="body.user.id"),
        enforce_idempotency=True,
        idempotency_key_path="body.id",
    )
    entry = source.send({"type": "user.updated", "id": key, "user": {"id": "ann"}})
    assert entry["status"] == "processed"
    assert entry["idempotency_key"] is None
    assert entry["error"].startswith("the idempotency key was dropped: it holds a ")


def test_a_rejected_body_with_nul_bytes_is_logged_with_them_replaced(client, api, source):
    response = client.post(source.endpoint, data=b'{"type": "x"}\x00\x00', content_type="application/json")
    assert response.status_code == 400
    [entry] = api.logs()
    assert entry["status"] == "rejected"
    assert entry["raw_excerpt"] == '{"type": "x"}\ufffd\ufffd'


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        ('{"type": "ütf16", "user": {"id": "ann"}}'.encode("utf-16"), "application/json"),
        ('{"type": "ütf16", "user": {"id": "ann"}}'.encode("utf-16-be"), "application/json; charset=UTF-16BE"),
        ('{"type": "ütf16", "user": {"id": "ann"}}'.encode("utf-8-sig"), "application/json"),
        ('{"type": "ütf16", "user": {"id": "ann"}}'.encode("latin-1"), "application/json; charset=iso-8859-1"),
        ("type=%C3%BCtf16&user=ann".encode(), "application/x-www-form-urlencoded; charset=utf-8"),
    ],
    ids=["utf-16 by BOM", "utf-16 by charset", "utf-8 with a BOM", "latin-1 by charset", "form"],
)
def test_bodies_are_decoded_by_their_bom_or_charset(client, api, source, data, content_type):
    assert client.post(source.endpoint, data=data, content_type=content_type).status_code == 204
    [entry] = api.logs()
    assert entry["status"] == "processed"
    assert entry["event"] == "ütf16"


@pytest.mark.parametrize(
    ("data", "content_type", "status", "reason"),
    [
        (b'{"type": "\xe9"}', "application/json", 400, "invalid_utf8"),
        (b'{"type": "x"}', "application/json; charset=utf-16le", 400, "invalid_encoding"),
        (b'{"type": "x"}', "application/json; charset=klingon", 415, "unsupported_charset"),
        (b'{"type": "\\\\u0000"}', "application/json; charset=unicode_escape", 415, "unsupported_charset"),
    ],
    ids=["not utf-8", "odd utf-16", "unknown charset", "escape codec"],
)
def test_a_body_that_does_not_decode_is_refused_and_logged(client, api, source, data, content_type, status, reason):
    response = client.post(source.endpoint, data=data, content_type=content_type)
    assert response.status_code == status
    assert response.get_json()["code"] == reason
    [entry] = api.logs()
    assert (entry["status"], entry["reason"]) == ("rejected", reason)


def test_a_json_body_sent_as_a_form_is_read_as_json_with_a_note(client, api, source):
    # What `curl -d '{...}'` sends without -H Content-Type.
    data = b'{"type": "user.updated", "user": {"id": "ann+1&co=%"}}'
    assert client.post(source.endpoint, data=data, content_type="application/x-www-form-urlencoded").status_code == 204
    [entry] = api.logs()
    assert entry["event"] == "user.updated"
    assert entry["data"] == {"type": "user.updated", "user": {"id": "ann+1&co=%"}}
    assert entry["status"] == "processed"
    assert "read as JSON" in entry["error"] and "Content-Type: application/json" in entry["error"]
    assert source.get("/v1/users/ann+1&co=%25")["id"] == "ann+1&co=%"


def test_a_plain_form_body_is_still_a_form(client, api, source):
    data = b"type=form.sent&tag=a&tag=b&tag=c&empty="
    assert client.post(source.endpoint, data=data, content_type="application/x-www-form-urlencoded").status_code == 204
    [entry] = api.logs()
    assert entry["data"] == {"type": "form.sent", "tag": ["a", "b", "c"], "empty": ""}
    assert entry["error"] is None


def test_a_form_body_is_not_parsed_for_a_request_the_provider_refuses(client, api, monkeypatch):
    api.create_source("stripe-source", provider="stripe", settings={"signing_secret": "whsec_test"})
    parsed = []
    original = body._parse_form
    monkeypatch.setattr(body, "_parse_form", lambda *args: parsed.append(args) or original(*args))
    form = b"&".join([b"a=1"] * 50_000)
    response = client.post(api.endpoint("stripe-source"), data=form, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 401
    assert parsed == []


def test_a_form_of_many_repeated_keys_keeps_every_value(client, api, source):
    form = b"&".join([b"type=user.updated"] + [b"a=%d" % n for n in range(30_000)])
    assert client.post(source.endpoint, data=form, content_type="application/x-www-form-urlencoded").status_code == 204
    [entry] = api.logs()
    assert entry["data"]["a"] == [str(n) for n in range(30_000)]


def test_a_stored_number_json_cannot_carry_is_served_as_its_text(client, api, source, db):
    source.send({"type": "user.updated", "user": {"id": "ann"}})
    # A row written before ingestion refused such numbers.
    EventLog.update({EventLog.body: SQL("'{\"n\": 1e999999}'")}).execute()
    response = api.get("/v1/sources/my-source/logs")
    assert response.status_code == 200
    assert b"Infinity" not in response.data
    assert response.get_json()["entries"][0]["data"] == {"n": "1e999999"}


@pytest.mark.parametrize("app_config", [{"SCRIPT_TIMEOUT_MS": 249}])
def test_a_script_host_that_cannot_start_is_a_503_with_a_log_row(app, client, api, monkeypatch, caplog):
    script = "function main(ctx) { return {verified: true}; }"
    api.create_source(settings={"preprocess_script": {"language": "javascript", "source": script}})
    # The runner of these limits loses its host, and a new one cannot start.
    runner = app.extensions[state.EXTENSION].scripts
    if runner.host_pid is not None:
        os.kill(runner.host_pid, signal.SIGKILL)
        wait_until_ended(runner.host_pid)
    monkeypatch.setattr(sys, "executable", "/bin/false")
    response = client.post(api.endpoint(), json={"type": "x"})
    assert response.status_code == 503
    assert response.get_json() == {"code": "script_unavailable", "message": "The script could not be run; retry later."}
    [entry] = api.logs()
    assert (entry["status"], entry["reason"]) == ("rejected", "script_unavailable")
    assert "the script host did not start" in caplog.text
    monkeypatch.undo()
    assert client.post(api.endpoint(), json={"type": "x"}).status_code == 204

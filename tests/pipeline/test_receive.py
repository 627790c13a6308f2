"""The ingestion endpoint's status-code contract, through HTTP (docs/architecture.md 3.6)."""

import json

import pytest
from peewee import OperationalError

from app import create_app
from knock_sources import store
from knock_sources.store.control import EventLog
from tests.support import free_port


@pytest.fixture
def endpoint(api):
    """The development endpoint of a fresh custom HTTP source."""
    api.create_source()
    return api.endpoint()


def test_accepted_event_is_logged_before_204(client, api, endpoint):
    response = client.post(endpoint, json={"type": "task.created", "id": "t1"})
    assert response.status_code == 204
    assert response.data == b""
    [entry] = api.logs()
    assert entry["event"] == "task.created"
    assert entry["status"] == "processed"
    assert entry["data"] == {"type": "task.created", "id": "t1"}


def test_unknown_token_is_404_and_not_logged(client, api, endpoint, db):
    response = client.post("/integrations/receive/not-a-token", json={"type": "x"})
    assert response.status_code == 404
    assert response.get_json()["code"] == "source_missing"
    assert EventLog.select().count() == 0


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"type": "x"', "malformed_json"),
        (b"[1, 2, 3]", "not_an_object"),
        (b'"just a string"', "not_an_object"),
        (b"null", "not_an_object"),
        (b'{"amount": NaN}', "malformed_json"),
        (b'{"amount": Infinity}', "malformed_json"),
        (b"\xff\xfe{", "invalid_encoding"),
        (b'{"a": "\xc3\x28"}', "invalid_utf8"),
        (b"[" * 100_000 + b"]" * 100_000, "too_deep"),
        (b'{"a":' * 100_000 + b"1" + b"}" * 100_000, "too_deep"),
        (b"", "malformed_json"),
        (b'{"n": 1e999999}', "number_out_of_range"),
        (b'{"n": [1, -1e400]}', "number_out_of_range"),
    ],
    ids=[
        "truncated",
        "array",
        "string",
        "null",
        "nan",
        "infinity",
        "truncated-utf16",
        "bad-utf8",
        "deep-array",
        "deep-object",
        "empty",
        "overflowing-number",
        "overflowing-negative-number",
    ],
)
def test_bad_bodies_are_400_and_logged_as_rejected(client, api, endpoint, body, reason):
    response = client.post(endpoint, data=body, content_type="application/json")
    assert response.status_code == 400
    assert response.get_json()["code"] == reason
    [entry] = api.logs()
    assert entry["status"] == "rejected"
    assert entry["reason"] == reason
    assert entry["raw_excerpt"] is not None and len(entry["raw_excerpt"]) <= 4096 * 4


def test_unsupported_content_type_is_415(client, api, endpoint):
    response = client.post(endpoint, data=b"<xml/>", content_type="application/xml")
    assert response.status_code == 415
    assert api.logs()[0]["reason"] == "unsupported_content_type"


def test_form_encoded_body_is_parsed_into_a_dict(client, api, endpoint):
    response = client.post(
        endpoint, data="type=order.paid&item=a&item=b&note=", content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 204
    assert api.logs()[0]["data"] == {"type": "order.paid", "item": ["a", "b"], "note": ""}


@pytest.mark.parametrize("app_config", [{"MAX_PAYLOAD_BYTES": 64}])
def test_oversized_declared_body_is_413(client, api, endpoint):
    response = client.post(endpoint, data=json.dumps({"type": "x", "pad": "y" * 100}), content_type="application/json")
    assert response.status_code == 413
    assert api.logs()[0]["reason"] == "payload_too_large"


@pytest.mark.parametrize("app_config", [{"MAX_PAYLOAD_BYTES": 64}])
def test_oversized_streamed_body_is_413_without_reading_it_all(client, api, endpoint):
    chunks_read = []

    def body():
        for index in range(1000):
            chunks_read.append(index)
            yield b" " * 1024

    # A chunked upload as gunicorn presents it: no length, a terminated input.
    response = client.post(
        endpoint,
        content_type="application/json",
        environ_overrides={
            "wsgi.input": _Stream(body()),
            "wsgi.input_terminated": True,
            "HTTP_TRANSFER_ENCODING": "chunked",
        },
    )
    assert response.status_code == 413
    assert len(chunks_read) < 5


class _Stream:
    """A file-like body without a length, like a chunked upload."""

    def __init__(self, chunks):
        self.chunks = chunks
        self.buffer = b""

    def read(self, size=-1):
        while size < 0 or len(self.buffer) < size:
            try:
                self.buffer += next(self.chunks)
            except StopIteration:
                break
        data, self.buffer = (self.buffer, b"") if size < 0 else (self.buffer[:size], self.buffer[size:])
        return data


def test_body_at_the_limit_is_accepted(app, client, api, endpoint):
    app.config["MAX_PAYLOAD_BYTES"] = 100
    body = json.dumps({"type": "x", "pad": ""})
    body = json.dumps({"type": "x", "pad": "y" * (100 - len(body))})
    assert len(body) == 100
    assert client.post(endpoint, data=body, content_type="application/json").status_code == 204


def test_log_that_cannot_be_written_is_503(client, api, endpoint, monkeypatch):
    execute_sql = store.db.obj.execute_sql

    def failing_event_log_insert(sql, *args, **kwargs):
        if sql.startswith('INSERT INTO "ks_event_log"'):
            raise OperationalError("could not extend file: No space left on device")
        return execute_sql(sql, *args, **kwargs)

    monkeypatch.setattr(store.db.obj, "execute_sql", failing_event_log_insert)
    response = client.post(endpoint, json={"type": "x"})
    assert response.status_code == 503
    assert response.get_json()["code"] == "log_unavailable"


def test_database_down_is_503_not_500():
    dead_database = f"postgresql://postgres@127.0.0.1:{free_port()}/test"
    app = create_app({"TESTING": True, "DATABASE_URL": dead_database, "LOAD_PLUGIN_ENTRYPOINTS": False})
    response = app.test_client().post("/integrations/receive/some-token", json={"type": "x"})
    assert response.status_code == 503
    assert response.get_json()["code"] in ("log_unavailable", "database_unavailable")


def test_credential_headers_are_redacted_in_the_log(client, api, endpoint):
    client.post(
        endpoint,
        json={"type": "x"},
        headers={"Authorization": "Bearer s3cret", "X-Webhook-Secret": "s3cret", "X-Trace": "t-1"},
    )
    headers = api.logs()[0]["headers"]
    assert headers["authorization"] == "[redacted]"
    assert headers["x-webhook-secret"] == "[redacted]"
    assert headers["x-trace"] == "t-1"
    assert "s3cret" not in json.dumps(api.logs())


def test_hostile_unicode_is_stored_and_returned(client, api, endpoint):
    body = '{"type": "x", "nul": "a\\u0000b", "lone": "\\ud800", "emoji": "\\ud83d\\ude00"}'
    assert client.post(endpoint, data=body, content_type="application/json").status_code == 204
    data = api.logs()[0]["data"]
    assert data["nul"] == "a\x00b"
    assert data["emoji"] == "\U0001f600"


def test_disabled_source_environment_is_404(client, api, endpoint, db):
    from knock_sources.store.control import SourceEnvironment

    SourceEnvironment.update(active=False).execute()
    assert client.post(endpoint, json={"type": "x"}).status_code == 404


def test_get_is_not_allowed(client, endpoint):
    response = client.get(endpoint)
    assert response.status_code == 405
    assert response.get_json()["code"] == "method_not_allowed"


def test_tokens_are_unguessable_and_distinct_per_environment(api):
    api.create_source()
    development = api.endpoint(environment="development").rsplit("/", 1)[1]
    production = api.endpoint(environment="production").rsplit("/", 1)[1]
    assert development != production
    assert len(development) >= 22  # 128+ bits of URL-safe base64


def test_a_rejected_binary_body_is_logged_on_every_backend(client, api, endpoint):
    response = client.post(endpoint, data=b'{"a": "\x00\x01\x02', content_type="application/json")
    assert response.status_code == 400
    [entry] = api.logs()
    assert entry["status"] == "rejected"
    assert "\x00" not in entry["raw_excerpt"]

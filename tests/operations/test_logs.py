"""Log lines: ``LOG_FORMAT=json`` gives one JSON object per line with what is known; no secret in any line."""

from __future__ import annotations

import json
import logging

import pytest

from app import create_app
from knock_sources.errors import ConfigurationError
from knock_sources.observability import logs
from plugins.stripe import StripeProvider
from tests.support.replays import replayed

SIGNING_SECRET = "whsec_" + "s" * 32
VARIABLE_SECRET = "variable-secret-value-123"
SCRIPT = """
export function main(ctx) {
  if (ctx.body.fail) { throw new Error("bad secret " + ctx.vars.SECRET_VALUE); }
  return { verified: true };
}
"""


@pytest.fixture
def app_config():
    return {"LOG_FORMAT": "json", "LOG_LEVEL": "DEBUG"}


def lines(captured: str) -> list[dict]:
    records = [json.loads(line) for line in captured.splitlines() if line.strip()]
    assert records, "nothing was logged"
    return records


def test_every_line_is_json_with_the_request_context(client, api, capsys):
    api.create_source(settings={"event_type_path": "type"})
    capsys.readouterr()
    response = client.post(api.endpoint(), json={"type": "a"}, headers={"X-Request-Id": "req-42"})
    assert response.status_code == 204 and response.headers["X-Request-Id"] == "req-42"
    logging.getLogger("knock_sources.test").info("after the request")
    logging.getLogger("knock_sources.test").warning("one line\nand another")
    records = lines(capsys.readouterr().err)
    mine = [record for record in records if record["logger"] == "knock_sources.test"]
    assert mine[0]["message"] == "after the request"
    assert {"time", "level", "message"} <= set(mine[0])
    assert mine[0]["request_id"] == "req-42"
    assert mine[0]["source"] == "my-source" and mine[0]["environment"] == "development"
    assert isinstance(mine[0]["event_log_id"], int)
    assert mine[1]["message"] == "one line\nand another"


def test_a_request_without_an_id_gets_one(client):
    response = client.get("/healthz")
    assert len(response.headers["X-Request-Id"]) == 32
    assert client.get("/healthz", headers={"X-Request-Id": "bad id with spaces"}).headers["X-Request-Id"] != (
        "bad id with spaces"
    )


def test_no_secret_appears_in_any_line(client, api, api_key, capsys):
    api.put("/v1/variables/SECRET_VALUE", {"variable": {"value": VARIABLE_SECRET, "secret": True}})
    api.create_source("stripe", provider="stripe", settings={"signing_secret": SIGNING_SECRET})
    api.create_source("scripted", settings={"preprocess_script": {"source": SCRIPT}, "enforce_verification": True})
    body = json.dumps({"id": "evt_1", "type": "invoice.paid", "data": {"object": {}}}).encode()
    good = StripeProvider().sign(body, SIGNING_SECRET)
    forged = StripeProvider().sign(body, "whsec_wrong")
    for headers in (good, forged):
        client.post(api.endpoint("stripe"), data=body, headers={**headers, "Content-Type": "application/json"})
    client.post(api.endpoint("scripted"), json={"fail": True}, headers={"X-Webhook-Secret": "header-secret-456"})
    client.get("/v1/sources", headers={"Authorization": "Bearer not-a-key-but-secret-789"})
    replayed(api, "stripe", filter={"statuses": ["rejected"]})
    logging.getLogger("gunicorn.access").info("POST %s HTTP/1.1", api.endpoint("stripe"))
    captured = capsys.readouterr().err
    lines(captured)
    for secret in (SIGNING_SECRET, VARIABLE_SECRET, api_key, "header-secret-456", "not-a-key-but-secret-789"):
        assert secret not in captured
    for source in ("stripe", "scripted"):
        assert api.endpoint(source).rsplit("/", 1)[1] not in captured


def test_text_is_the_default_and_readable(tmp_path, capsys):
    app = create_app(
        {"TESTING": True, "DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}", "LOAD_PLUGIN_ENTRYPOINTS": False}
    )
    assert app.config["LOG_FORMAT"] == "text"
    # A new unit of work: what an earlier test's requests bound in this thread is gone.
    logs.start()
    logging.getLogger("knock_sources.test").warning("plain words")
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.endswith("WARNING knock_sources.test: plain words")


@pytest.mark.parametrize("setting", [{"LOG_FORMAT": "xml"}, {"LOG_LEVEL": "LOUD"}, {"METRICS_BIND": "nowhere"}])
def test_a_bad_setting_stops_the_start(tmp_path, setting):
    with pytest.raises(ConfigurationError):
        create_app({"TESTING": True, "DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}", **setting})

"""The ingest URL, answered in front of Flask (``views.receive.DirectReceive``), answers as the Flask route does."""

import json

import pytest
from werkzeug.test import Client

from knock_sources.store.control import EventLog
from plugins.stripe import StripeProvider

SECRET = "whsec_" + "d" * 32


@pytest.fixture
def tokens(api):
    """The endpoints of a custom source and of a Stripe source."""
    api.create_source("custom", settings={"event_type_path": "type"})
    api.create_source("stripe", provider="stripe", settings={"signing_secret": SECRET})
    return {"custom": api.endpoint("custom"), "stripe": api.endpoint("stripe")}


@pytest.fixture
def flask_route(app):
    """A client of the app without the layer in front: Flask's route answers every request."""
    return Client(app.wsgi_app.wsgi_app)


def stripe_signed(n: int) -> tuple[bytes, dict]:
    body = json.dumps({"id": f"evt_{n}", "type": "invoice.paid", "data": {"object": {}}}).encode()
    return body, {**StripeProvider().sign(body, SECRET), "Content-Type": "application/json"}


def requests(tokens: dict, n: int) -> list[dict]:
    """Requests covering each answer of the ingest URL; ``n`` keeps event ids apart."""
    custom, stripe = tokens["custom"], tokens["stripe"]
    signed_body, signed_headers = stripe_signed(n)
    json_type = {"Content-Type": "application/json"}
    return [
        {"path": custom, "data": json.dumps({"type": "a", "n": n}), "headers": json_type},
        {"path": custom, "data": f"type=a&n={n}", "headers": {"Content-Type": "application/x-www-form-urlencoded"}},
        {"path": stripe, "data": signed_body, "headers": signed_headers},
        {"path": stripe, "data": signed_body, "headers": json_type},
        {"path": custom, "data": b'{"type": "a"', "headers": json_type},
        {"path": custom, "data": b"x" * (2 << 20), "headers": json_type},
        {"path": custom, "data": b"<a/>", "headers": {"Content-Type": "application/xml"}},
        {"path": "/integrations/receive/not-a-token", "data": b"{}", "headers": json_type},
        {"path": custom + "?utm=1", "data": json.dumps({"type": "q", "n": n}), "headers": json_type},
        {"path": custom + "/", "data": b"{}", "headers": json_type},
    ]


def answer(client, request: dict, method: str = "POST") -> tuple:
    response = client.open(
        request["path"], method=method, data=request["data"], headers={**request["headers"], "X-Request-Id": "r-1"}
    )
    return response.status_code, sorted(response.headers.items()), response.get_data()


def test_every_answer_is_the_flask_routes(client, flask_route, tokens, db):
    for n, request in enumerate(requests(tokens, 0)):
        direct = answer(client, request)
        # The same request again (a distinct event id where it matters).
        again = requests(tokens, 1000)[n]
        assert direct == answer(flask_route, again), request["path"]
    assert answer(client, requests(tokens, 2)[0], "GET") == answer(flask_route, requests(tokens, 3)[0], "GET")
    # Each accepted request was logged once, whichever answered it.
    assert EventLog.select().where(EventLog.status != "rejected").count() == 8


def test_a_fresh_request_id_is_made_and_echoed(client, tokens):
    response = client.post(tokens["custom"], json={"type": "a"}, headers={"X-Request-Id": "not a usable id"})
    assert response.status_code == 204
    assert len(response.headers["X-Request-Id"]) == 32
    assert response.headers["X-Request-Id"] != client.post(tokens["custom"], json={"type": "a"}).headers["X-Request-Id"]


def test_the_plain_case_does_not_reach_the_flask_route(app, client, tokens, monkeypatch):
    calls = []
    view = app.view_functions["receive.receive"]
    monkeypatch.setitem(app.view_functions, "receive.receive", lambda token: calls.append(token) or view(token))
    assert client.post(tokens["custom"], json={"type": "a"}).status_code == 204
    assert calls == []
    assert client.post(tokens["custom"] + "?q=1", json={"type": "a"}).status_code == 204
    assert len(calls) == 1

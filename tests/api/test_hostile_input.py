"""Bad input gets a 4xx, never a 5xx, on every route: a corpus of hostile requests through HTTP.

The routes are read from the app's URL map, so every route, including ones
added later, gets the whole corpus (``tests/support/hostile.py``); every
response must also be strict JSON (no ``NaN`` or ``Infinity``), and every
event the corpus got accepted must have been processed without an internal
error.
"""

from __future__ import annotations

import json

import pytest

from tests.support import make_app, reset_database, stop_dispatcher
from tests.support.dashboard import create_admin, sign_in
from tests.support.hostile import hostile_requests

SCRIPT = "function main(ctx) { return {verified: true, echo: ctx.body.type}; }"


def _routes():
    app = make_app("sqlite://")
    try:
        return [
            (rule.rule, sorted(rule.arguments), sorted(rule.methods - {"HEAD", "OPTIONS"}))
            for rule in app.url_map.iter_rules()
            if rule.endpoint != "static"
        ]
    finally:
        stop_dispatcher(app)
        reset_database()


ROUTES = _routes()


@pytest.fixture
def world(app, api, client):
    """Something behind every route, so that hostile input reaches the code past the lookups."""
    api.create_source(settings={"preprocess_script": {"language": "javascript", "source": SCRIPT}})
    api.create_source("stripe-source", provider="stripe", settings={"signing_secret": "whsec_test"})
    api.create_workflow("receipt")
    endpoint = api.endpoint()
    client.post(endpoint, json={"type": "seen"})
    log_id = api.logs()[0]["id"]
    token = endpoint.rsplit("/", 1)[1]
    # The dashboard answers 503 on purpose until an administrator exists, and
    # redirects until one signs in: signed in, its pages see the input too.
    create_admin(app)
    assert sign_in(client).status_code == 302
    return {"token": token, "key": "my-source", "log_id": log_id, "env": "development", "provider_slug": "stripe"}


def _strict_json(text):
    def refuse(name):
        raise ValueError(f"non-standard JSON constant {name}")

    json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize(("rule", "arguments", "methods"), ROUTES, ids=[f"{' '.join(m)} {r}" for r, _, m in ROUTES])
def test_no_hostile_request_gets_a_5xx(client, api, world, rule, arguments, methods):
    failures = []
    for request in hostile_requests(rule, arguments, methods, world):
        kwargs = {"method": request.method, "query_string": request.query, "headers": api.headers}
        if request.body is not None:
            kwargs.update(data=request.body.data, content_type=request.body.content_type)
        response = client.open(request.path, **kwargs)
        if response.status_code >= 500:
            failures.append(f"{request.method} {request.path[:80]} ({request.what}): {response.status_code}")
        elif response.data and response.mimetype == "application/json":
            try:
                _strict_json(response.get_data(as_text=True))
            except ValueError as exc:
                failures.append(f"{request.method} {request.path[:80]} ({request.what}): {exc}")
    assert not failures, "\n".join(failures)
    # What was accepted was processed without an internal error, and reads back as strict JSON.
    for key in ("my-source", "stripe-source"):
        for path in (f"/v1/sources/{key}/logs", f"/v1/sources/{key}/events"):
            response = api.get(path, **{"include[]": "actions", "limit": 100})
            if response.status_code == 404:
                continue  # the corpus of DELETE /v1/sources/<key> deleted it
            assert response.status_code == 200, path
            _strict_json(response.get_data(as_text=True))
            assert "internal error" not in response.get_data(as_text=True), path


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/integrations/receive/%00", 400, "invalid_path"),
        ("/v1/users/a%00b", 400, "invalid_path"),
        ("/v1/sources?environment=a%00", 422, "invalid_params"),
        ("/v1/sources/my-source/logs?event=a%00b", 422, "invalid_params"),
    ],
)
def test_identifiers_and_queries_no_database_can_hold_are_refused(client, api, world, path, status, code):
    response = client.open(path, method="POST" if path.startswith("/integrations") else "GET", headers=api.headers)
    assert response.status_code == status
    body = response.get_json()
    assert body["code"] == code
    assert "NUL character" in json.dumps(body)


def test_a_body_value_no_database_can_hold_is_a_422_naming_its_field(api):
    response = api.put("/v1/workflows/receipt", {"workflow": {"name": "a\x00b", "active": True}})
    assert response.status_code == 422
    assert response.get_json()["errors"] == [
        {"field": "workflow.name", "in": "body", "message": "holds a NUL character (\\u0000), which cannot be stored."}
    ]


def test_a_rehearsal_of_a_payload_holding_nul_names_the_problem(api, world):
    response = api.request("POST", "/v1/sources/my-source/rehearse", {"payload": {"body": {"type": "a\x00"}}})
    assert response.status_code == 200
    assert {
        "field": "event_type_path",
        "message": "the event type holds a NUL character (\\u0000), which cannot be stored",
    } in response.get_json()["errors"]

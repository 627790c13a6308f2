"""The CDP sources: Segment's signed webhook destination (single and batched), RudderStack, Jitsu, Freshpaint."""

import json

import pytest
from peewee import OperationalError

from knock_sources import signing
from knock_sources.errors import SignatureError
from knock_sources.store.control import EventLog
from knock_sources.testing import config_for, make_envelope, make_secret
from plugins.segment import SegmentProvider, signed_span

SEGMENT = SegmentProvider()
TRACK = SEGMENT.example_payloads["track/user-signed-up"][0]["body"]
IDENTIFY = SEGMENT.example_payloads["identify"][0]["body"]


def js_stringify(value) -> bytes:
    """``JSON.stringify``: compact, non-ASCII kept, as Segment's destination serializes."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


@pytest.fixture
def secret():
    return make_secret()


def test_x_signature_is_hex_hmac_sha1_of_the_body(secret):
    raw = js_stringify(TRACK)
    headers = SEGMENT.sign(raw, secret)
    assert headers == {"X-Signature": signing.hmac_sha1_hex(secret, raw)}
    SEGMENT.verify(make_envelope(raw, headers), config_for(secret))


def test_a_batch_is_signed_over_its_first_event_only(secret):
    # Segment's performBatch: body = JSON.stringify(events), X-Signature over JSON.stringify(events[0]).
    events = [{**TRACK, "note": "Zoë 🎉"}, IDENTIFY]
    raw = js_stringify(events)
    header = signing.hmac_sha1_hex(secret, js_stringify(events[0]))
    assert signed_span(raw) == js_stringify(events[0])
    SEGMENT.verify(make_envelope(raw, {"X-Signature": header}), config_for(secret))
    # Pretty-printed arrays are read by their exact text too.
    spaced = b"[ \n" + js_stringify(events[0]) + b" ,\n" + js_stringify(events[1]) + b"]"
    SEGMENT.verify(make_envelope(spaced, {"X-Signature": header}), config_for(secret))


def test_a_batch_whose_first_event_was_changed_is_rejected(secret):
    events = [TRACK, IDENTIFY]
    header = signing.hmac_sha1_hex(secret, js_stringify(events[0]))
    tampered = js_stringify([{**TRACK, "userId": "mallory"}, IDENTIFY])
    with pytest.raises(SignatureError) as excinfo:
        SEGMENT.verify(make_envelope(tampered, {"X-Signature": header}), config_for(secret))
    assert excinfo.value.code == "signature_mismatch"


@pytest.mark.parametrize(
    ("raw", "span"),
    [(b"[", b"["), (b"[]", b"[]"), (b"[ ]", b"[ ]"), (b"[\xff]", b"[\xff]"), (b"[1,", b"1"), (b'[{"a":1}', b'{"a":1}')],
)
def test_the_signed_span_of_odd_bodies(raw, span):
    # What cannot be read is signed whole, so it is checked (and fails) like any other body.
    assert signed_span(raw) == span


def create_segment(api, secret, **settings):
    api.create_source("seg", provider="segment", settings={"signing_secret": secret, **settings})
    api.create_workflow("user-signup")
    return api.endpoint("seg")


def post_batch(client, endpoint, events, secret, *, first=None):
    raw = js_stringify(events)
    signature = signing.hmac_sha1_hex(secret, js_stringify(first if first is not None else events[0]))
    return client.post(endpoint, data=raw, content_type="application/json", headers={"X-Signature": signature})


def test_a_batch_is_one_event_log_per_element(client, api, secret):
    endpoint = create_segment(api, secret)
    events = [IDENTIFY, TRACK]
    assert post_batch(client, endpoint, events, secret).status_code == 204
    logs = api.logs("seg")
    assert [(entry["event"], entry["status"]) for entry in logs] == [
        ("track/user-signed-up", "processed"),
        ("identify", "processed"),
    ]
    assert api.get("/v1/users/sam10").get_json()["email"] == "sam@example.com"
    [run] = api.get("/v1/workflows/user-signup/runs").get_json()["entries"]
    assert run["recipient"]["id"] == "sam10"


def test_a_bad_element_is_rejected_without_failing_the_others(client, api, secret):
    endpoint = create_segment(api, secret)
    events = [TRACK, {"type": "track", "userId": "x"}, "not an event", {**IDENTIFY, "messageId": "other"}]
    assert post_batch(client, endpoint, events, secret).status_code == 204
    logs = sorted(api.logs("seg"), key=lambda entry: int(entry["id"]))
    assert [(entry["status"], entry["reason"]) for entry in logs] == [
        ("processed", None),
        ("rejected", "missing_event"),
        ("rejected", "not_an_object"),
        ("processed", None),
    ]


def test_a_batch_with_no_valid_element_is_400(client, api, secret):
    endpoint = create_segment(api, secret)
    response = post_batch(client, endpoint, [{"type": ""}, {"no": "type"}], secret)
    assert (response.status_code, response.get_json()["code"]) == (400, "no_valid_events")
    assert [entry["status"] for entry in api.logs("seg")] == ["rejected", "rejected"]


def test_a_batch_is_committed_whole_or_not_at_all(client, api, secret, db, monkeypatch):
    endpoint = create_segment(api, secret)
    from knock_sources.ingest import eventlog

    calls = []
    real = eventlog._params

    def fail_on_the_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise OperationalError("the database went away")
        return real(*args, **kwargs)

    monkeypatch.setattr(eventlog, "_params", fail_on_the_second)
    response = post_batch(client, endpoint, [TRACK, IDENTIFY], secret)
    assert (response.status_code, response.get_json()["code"]) == (503, "log_unavailable")
    assert EventLog.select().where(EventLog.status != "rejected").count() == 0


def test_a_batch_signed_with_another_secret_is_401(client, api, secret):
    endpoint = create_segment(api, secret)
    response = post_batch(client, endpoint, [TRACK, IDENTIFY], make_secret())
    assert response.status_code == 401
    [entry] = api.logs("seg")
    assert entry["reason"] == "signature_mismatch"


def test_handle_identifies_can_be_switched_off(client, api, secret):
    endpoint = create_segment(api, secret, handle_identifies=False)
    assert post_batch(client, endpoint, [IDENTIFY], secret).status_code == 204
    [entry] = api.logs("seg")
    assert (entry["event"], entry["actions"]) == ("identify", [])
    assert api.get("/v1/users/sam10").status_code == 404


def test_identify_takes_every_trait_as_a_property(client, api, secret):
    endpoint = create_segment(api, secret)
    post_batch(client, endpoint, [IDENTIFY], secret)
    user = api.get("/v1/users/sam10").get_json()
    assert (user["name"], user["email"], user["phone_number"], user["plan"]) == (
        "Sam Carter",
        "sam@example.com",
        "+442071838750",
        "team",
    )
    [entry] = api.logs("seg")
    [action] = entry["actions"]
    assert (action["action_type"], action["action_status"]) == ("users_identify", "success")


def test_idempotency_is_on_by_default_with_message_id(client, api, secret):
    endpoint = create_segment(api, secret)
    for _ in range(2):
        post_batch(client, endpoint, [TRACK], secret)
    assert [entry["status"] for entry in api.logs("seg")] == ["idempotent", "processed"]


def test_rudderstack_identify_traits_come_from_context_traits(client, api):
    api.create_source("rs", provider="rudderstack")
    identify = api.get("/v1/source_providers/rudderstack").get_json()["example_payloads"]["identify"][0]["body"]
    assert "traits" not in identify
    assert client.post(api.endpoint("rs"), json=identify).status_code == 204
    user = api.get("/v1/users/u-204").get_json()
    assert (user["name"], user["email"], user["team"]) == ("Grace Hopper", "grace@example.com", "compilers")
    [entry] = api.logs("rs")
    assert entry["normalized"]["data"] == identify["context"]["traits"]


@pytest.mark.parametrize("slug", ["rudderstack", "jitsu", "freshpaint"])
def test_unsigned_cdp_sources_check_an_optional_shared_secret(client, api, slug, secret):
    api.create_source(slug, provider=slug)
    body = {"type": "track", "event": "x", "userId": "u", "messageId": f"{slug}-1"}
    assert client.post(api.endpoint(slug), json=body).status_code == 204
    api.create_source(slug, settings={"signing_secret": secret})
    body["messageId"] = f"{slug}-2"
    assert client.post(api.endpoint(slug), json=body).status_code == 401
    response = client.post(api.endpoint(slug), json=body, headers={"Authorization": f"Bearer {secret}"})
    assert response.status_code == 204
    assert secret not in json.dumps(api.logs(slug))


@pytest.mark.parametrize("slug", ["segment", "rudderstack", "jitsu", "freshpaint"])
def test_cdp_defaults_match_knocks_templates(api, slug):
    provider = api.get(f"/v1/source_providers/{slug}").get_json()
    assert provider["default_settings"]["timestamp_path"] == "body.timestamp"
    assert provider["default_settings"]["idempotency_key_path"] == "body.messageId"
    assert provider["default_settings"]["enforce_idempotency"] is True
    assert provider["default_settings"]["handle_identifies"] is True
    assert provider["batches"] is True and provider["tracking_api"] is True
    assert provider["handle_identifies_mapping"]["action_type"] == "users_identify"

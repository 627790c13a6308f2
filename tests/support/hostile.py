"""A corpus of hostile input for every route: identifiers, query strings and bodies no client should send.

``hostile_requests(rule, arguments, methods, valid)`` yields the requests to send for
one URL rule: each path parameter replaced in turn by each hostile segment
(the others kept valid, so that the request reaches the code behind them),
each hostile query parameter, and for routes taking a body each hostile body.
Routes come from the app's URL map, so a route added later is covered
without touching the test.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

#: Path segments, percent-encoded as they travel.
SEGMENTS = {
    "nul": "%00",
    "nul inside": "a%00b",
    "encoded surrogate": "%ED%A0%80",
    "invalid utf-8": "%FF%FE",
    "control characters": "%01%1F%7F",
    "long": "k" * 3000,
    "emoji": "%F0%9F%92%A5",
    "space and quotes": "a%20%22b'%3B--",
    "backslash": "a%5Cb",
}

#: Query strings, percent-encoded as they travel: the parameters every route reads and some it does not.
QUERIES = [
    "environment=a%00",
    "environment=%ED%A0%80",
    "environment=" + "x" * 3000,
    "event=a%00b",
    "event=%ED%BF%BF",
    "status=%00",
    "limit=1e999999",
    "limit=-1",
    "limit=%00",
    "after=" + "9" * 40,
    "after=%00",
    "before=-5",
    "starting_at=9999-99-99T99:99:99",
    "starting_at=%00",
    "ending_at=1e999999",
    "include[]=%00",
    "recipient=a%00b",
    "cancellation_key=%ED%A0%80",
    "environment=development&environment=%00",
]

_DEEP = "[" * 100_000 + "]" * 100_000


@dataclass(frozen=True)
class Body:
    """A request body: raw bytes and the content type they are sent with."""

    data: bytes
    content_type: str = "application/json"


#: Bodies for routes that take one.
BODIES = {
    "infinite number": Body(b'{"n": 1e999999}'),
    "negative infinite number": Body(b'{"n": -1e999999}'),
    "NaN": Body(b'{"n": NaN}'),
    "huge integer": Body(b'{"n": ' + b"9" * 5000 + b"}"),
    "nul escape": Body(b'{"type": "a\\u0000b", "name": "\\u0000"}'),
    "lone surrogate": Body(b'{"type": "\\ud800", "name": "\\udfff"}'),
    "raw nul byte": Body(b'{"type": "x"}\x00'),
    "raw nul byte as text": Body(b"\x00\x00\x00", "text/plain"),
    "deeply nested": Body(_DEEP.encode()),
    "not an object": Body(b"[1, 2, 3]"),
    "null": Body(b"null"),
    "malformed": Body(b'{"type": '),
    "empty": Body(b""),
    "utf-16 with a BOM": Body('{"type": "utf16"}'.encode("utf-16")),
    "utf-16 declared": Body('{"type": "utf16"}'.encode("utf-16-le"), "application/json; charset=utf-16le"),
    "undecodable": Body(b'{"type": "\xff\xfe\xfa"}'),
    "unknown charset": Body(b'{"type": "x"}', "application/json; charset=klingon"),
    "escape codec": Body(b'{"type": "\\\\ud800"}', "application/json; charset=unicode_escape"),
    "form with nul": Body(b"type=a%00b&x=%ED%A0%80", "application/x-www-form-urlencoded"),
    "form of repeated keys": Body(b"&".join([b"a=1"] * 20_000), "application/x-www-form-urlencoded"),
    "json as a form key": Body(b'{"type": "a\\u0000"}', "application/x-www-form-urlencoded"),
    "unsupported type": Body(b"<xml/>", "application/xml"),
    # Shapes of the API's own bodies, with hostile values where identifiers go.
    "source with nul": Body(
        json.dumps(
            {
                "source": {
                    "name": "a\x00b",
                    "environment_settings": {
                        "development": {
                            "settings": {"event_type_path": "body.\x00"},
                            "mappings": [{"event_type": "\x00", "action_type": "users_identify"}],
                        }
                    },
                }
            }
        ).encode()
    ),
    "workflow with nul": Body(json.dumps({"workflow": {"name": "a\x00b", "active": True}}).encode()),
    "workflow with surrogate": Body(b'{"workflow": {"name": "\\ud800", "active": true}}'),
    "variable with nul": Body(
        json.dumps({"variable": {"value": "\x00", "environment_values": {"\x00": "x"}}}).encode()
    ),
    "rehearsal with nul": Body(
        json.dumps({"payload": {"body": {"type": "\x00"}, "headers": {"\x00": "\x00"}}}).encode()
    ),
    "script test with nul": Body(
        json.dumps({"script": {"source": "function main(){return {verified: true, x: '\\u0000'}}"}}).encode()
    ),
}


@dataclass(frozen=True)
class HostileRequest:
    """One request of the corpus, and what it is, for the failure message."""

    method: str
    path: str
    what: str
    query: str = ""
    body: Body | None = None


def _path(rule: str, values: dict[str, str]) -> str:
    for name, value in values.items():
        rule = rule.replace(f"<{name}>", value).replace(f"<path:{name}>", value).replace(f"<int:{name}>", value)
    return rule


def hostile_requests(rule: str, arguments, methods, valid: dict[str, str]):
    """Yield the corpus for one URL rule, its path ``arguments`` and its ``methods``.

    ``valid`` holds a value for the path arguments that name something that exists.
    """
    arguments = sorted(arguments)
    good = {name: valid.get(name, "x") for name in arguments}
    for method in methods:
        for name in arguments:
            for label, segment in SEGMENTS.items():
                yield HostileRequest(method, _path(rule, {**good, name: segment}), f"{name}: {label}")
        for query in QUERIES:
            yield HostileRequest(method, _path(rule, good), f"query {query[:60]}", query=query)
        if method in ("POST", "PUT", "PATCH"):
            for label, body in BODIES.items():
                yield HostileRequest(method, _path(rule, good), f"body: {label}", body=body)

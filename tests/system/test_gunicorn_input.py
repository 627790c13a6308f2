"""Input only a real server lets through: malformed HTTP framing under gunicorn gets a 4xx, never a 5xx."""

from __future__ import annotations

import json
import socket
import urllib.request
from urllib.parse import urlsplit

import pytest

from tests.support.processes import gunicorn_server

MALFORMED_CHUNKS = {
    "chunk size not hexadecimal": b"zz\r\n{}\r\n0\r\n\r\n",
    "chunk shorter than its size": b'10\r\n{"a": 1}\r\n0\r\n\r\n',
    "chunk without its terminator": b'8\r\n{"a": 1}XX0\r\n\r\n',
}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with gunicorn_server(tmp_path_factory.mktemp("gunicorn")) as running:
        yield running


def raw_request(base, method, path, headers, body):
    """Send ``body`` as a chunked request exactly as given; return the status code gunicorn answered."""
    parts = urlsplit(base)
    lines = [f"{method} {path} HTTP/1.1", f"Host: {parts.netloc}", "Transfer-Encoding: chunked", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall("\r\n".join(lines).encode() + b"\r\n\r\n" + body)
        sock.shutdown(socket.SHUT_WR)
        response = b""
        while chunk := sock.recv(65536):
            response += chunk
    return int(response.split(b" ", 2)[1])


def endpoint(base, headers):
    request = urllib.request.Request(
        f"{base}/v1/sources/chunks",
        data=json.dumps({"source": {"name": "Chunks"}}).encode(),
        method="PUT",
        headers={"Content-Type": "application/json", **headers},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        settings = json.load(response)["environment_settings"]["development"]["settings"]
    return urlsplit(settings["endpoint"]).path


@pytest.mark.parametrize("body", MALFORMED_CHUNKS.values(), ids=MALFORMED_CHUNKS.keys())
def test_a_malformed_chunked_body_is_a_400_on_ingest_and_on_the_api(server, body):
    base, headers, _ = server
    path = endpoint(base, headers)
    assert raw_request(base, "POST", path, {"Content-Type": "application/json"}, body) == 400
    api_headers = {"Content-Type": "application/json", **headers}
    assert raw_request(base, "PUT", "/v1/workflows/chunked", api_headers, body) == 400

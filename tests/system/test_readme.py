"""The README's quickstart, pasted into bash against a real server: every command must work as written.

The ``sh`` blocks of "Your first event" run in one bash session with
``set -euo pipefail`` against gunicorn on a free port; only ``BASE`` (the
first line) and the virtualenv's location are adapted to the test.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import ROOT, free_port, port_is_open

BIN = Path(sys.executable).parent
README = ROOT / "README.md"
DEFAULT_BASE = "BASE=http://127.0.0.1:8000"


def quickstart_blocks() -> list[str]:
    """The ``sh`` code blocks between "### Your first event" and the next heading of level 2."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("### Your first event") :]
    section = section[: section.index("\n## ")]
    return re.findall(r"```sh\n(.*?)```", section, flags=re.DOTALL)


def test_the_quickstart_sets_everything_it_uses():
    script = "\n".join(quickstart_blocks())
    assert script.startswith(DEFAULT_BASE + "\n")
    used = set(re.findall(r"\$\{?([A-Z_]+)", script))
    assigned = set(re.findall(r"^([A-Z_]+)=", script, flags=re.MULTILINE))
    assert used <= assigned, used - assigned


@pytest.fixture
def server(tmp_path):
    """gunicorn serving the app on a fresh SQLite database; yields its base URL and environment."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "KNOCK_SOURCES_DATABASE_URL": f"sqlite:///{tmp_path / 'readme.db'}",
        "KNOCK_SOURCES_PUBLIC_BASE_URL": base,
        "KNOCK_SOURCES_LOAD_PLUGIN_ENTRYPOINTS": "false",
    }
    subprocess.run([str(BIN / "flask"), "init-db"], cwd=ROOT, env=env, check=True, capture_output=True, timeout=120)
    process = subprocess.Popen(
        [str(BIN / "gunicorn"), "--bind", f"127.0.0.1:{port}", "--workers", "1", "--threads", "4", "wsgi:app"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_until_listening(port, process)
        yield base, env
    finally:
        process.terminate()
        process.wait(timeout=60)


def _wait_until_listening(port, process):
    deadline = time.monotonic() + 60
    while not port_is_open("127.0.0.1", port):
        assert process.poll() is None, "gunicorn exited"
        assert time.monotonic() < deadline, "gunicorn did not start listening"
        time.sleep(0.1)


def test_the_quickstart_works_when_pasted(server):
    base, env = server
    script = "\n".join(quickstart_blocks())
    script = script.replace(DEFAULT_BASE, f"BASE={base}", 1).replace(".venv/bin/", f"{BIN}/")
    result = subprocess.run(
        ["bash", "-c", "set -euo pipefail\n" + script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert f"{base}/integrations/receive/" in out
    documents = json_documents(out)
    # No command answered with an error body.
    assert not [document for document in documents if "code" in document], out
    # The event was accepted (204), and its log shows the workflow run.
    assert "204" in out.split()
    logs = next(document for document in documents if "event" in (document.get("entries") or [{}])[0])
    [entry] = logs["entries"]
    assert (entry["event"], entry["status"]) == ("task.assigned", "processed")
    [action] = entry["actions"]
    assert (action["action_type"], action["action_status"]) == ("workflows_trigger", "success")


def json_documents(text: str) -> list[dict]:
    """Every JSON object printed in ``text`` (curl prints bodies without a newline between them)."""
    decoder, documents, at = json.JSONDecoder(), [], 0
    while at < len(text):
        if text[at] == "{":
            document, at = decoder.raw_decode(text, at)
            documents.append(document)
        else:
            at += 1
    return documents

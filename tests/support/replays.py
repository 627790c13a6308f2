"""Starting replays through the API and waiting for them (embedded mode runs them on a background thread)."""

from __future__ import annotations

import time


def replay(api, key="my-source", environment="development", **body):
    return api.client.post(
        f"/v1/sources/{key}/replay", json=body, query_string={"environment": environment}, headers=api.headers
    )


def replayed(api, key="my-source", **body):
    """Start a replay (202, queued) and return it once the process's replay thread has finished it."""
    response = replay(api, key, **body)
    assert response.status_code == 202, response.get_json()
    assert response.get_json()["state"] == "queued"
    return wait_for(api, response.get_json()["id"])


def wait_for(api, replay_id):
    deadline = time.monotonic() + 60
    while (progress := api.get(f"/v1/replays/{replay_id}").get_json())["state"] in ("queued", "running"):
        assert time.monotonic() < deadline, progress
        time.sleep(0.05)
    return progress

"""Helpers for the action tests: a custom source whose mappings we choose, fed through HTTP.

Every test drives the product the way a user does: configure a source with
``PUT /v1/sources/{key}``, POST an event to its endpoint, then read the
event's log (with its actions) and the data plane through the JSON API.
"""

from __future__ import annotations

EVENT = "evt"

#: Mapping parameters whose plain string is a configured value, not a path.
LITERAL_DEFAULTS = {"key": "wf", "collection": "projects"}


def mapping(action_type: str, event_type: str = EVENT, **parameters) -> dict:
    """Return a mapping as ``PUT /v1/sources/{key}`` takes it."""
    return {"event_type": event_type, "action_type": action_type, "action_parameters": parameters}


def identify_mapping(event_type: str = "user.created") -> dict:
    """A mapping that identifies ``body.id`` with ``body.name`` (to create users for a test)."""
    return mapping("users_identify", event_type, id="body.id", name="body.name")


def path_parameters(values: dict, literals: dict) -> dict:
    """Map each name in ``values`` to the path ``body.<name>``, plus ``literals`` as configured."""
    return {**literals, **{name: f"body.{name}" for name in values}}


def by_type(entry: dict) -> dict:
    """Return the actions of a log entry keyed by action type."""
    return {action["action_type"]: action for action in entry["actions"]}


class EventSource:
    """A custom HTTP source in one environment, with the mappings a test gives it."""

    def __init__(self, client, api, key: str = "my-source", environment: str = "development"):
        self.client = client
        self.api = api
        self.key = key
        self.environment = environment
        self.endpoint = None

    def configure(self, *mappings: dict, **settings) -> EventSource:
        """Create (or reconfigure) the source; events are typed by ``body.type``."""
        self.api.create_source(
            key=self.key,
            environment=self.environment,
            settings={"event_type_path": "type", **settings},
            mappings=list(mappings),
        )
        self.endpoint = self.api.endpoint(self.key, self.environment)
        return self

    def send(self, body: dict, event_type: str = EVENT) -> dict:
        """POST ``body`` (typed ``event_type`` unless it has a type) and return its log entry."""
        response = self.client.post(self.endpoint, json={"type": event_type, **body})
        assert response.status_code == 204, response.get_json()
        return self.api.logs(self.key, self.environment)[0]

    def run(self, body: dict, event_type: str = EVENT) -> dict:
        """Send an event mapped to exactly one action and return that action's log."""
        [action] = self.send(body, event_type)["actions"]
        return action

    def identify(self, *user_ids: str) -> None:
        """Identify users through the ``user.created`` mapping (``identify_mapping``)."""
        for user_id in user_ids:
            entry = self.send({"id": user_id, "name": user_id.title()}, "user.created")
            assert entry["status"] == "processed", entry

    def get(self, path: str, expect: int = 200, **query) -> dict:
        """GET a data-plane path in this source's environment; check the status, return the JSON."""
        response = self.api.get(path, environment=self.environment, **query)
        assert response.status_code == expect, response.get_json()
        return response.get_json()

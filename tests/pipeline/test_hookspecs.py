"""Every hookspec, exercised by a plugin installed through ``EXTRA_PLUGINS``.

Like Datasette's ``test_plugins.py``: each hook has a ``test_hook_<name>``,
and a meta-test fails when a hookspec is added without one.
"""

import logging

import pytest
from marshmallow import Schema

from knock_sources import store
from knock_sources.actions.base import Action
from knock_sources.actions.fields import Text
from knock_sources.hookspecs import hookimpl
from knock_sources.plugins import make_plugin_manager
from knock_sources.providers import DefaultMapping, Provider
from knock_sources.views.api.shapes import serialize_run
from tests.support.actions import EventSource, mapping


class AcmeProvider(Provider):
    """An unsigned third-party provider whose events are typed by ``body.kind``."""

    slug = "acme"
    name = "Acme"
    signed = False
    event_type_path = "body.kind"
    default_mappings = (
        DefaultMapping("member.joined", "users_identify", {"id": "body.member.id", "name": "body.member.name"}),
    )


class EchoSchema(Schema):
    """Parameters of the test action."""

    message = Text(required=True)


class Echo(Action):
    """Records its message, or raises when told to, so the runner's handling shows."""

    action_type = "echo"
    name = "Echo"
    params_schema = EchoSchema

    def __init__(self):
        self.messages = []

    def execute(self, context, params):
        """Record the message; ``boom`` raises an unexpected error."""
        if params["message"] == "boom":
            raise RuntimeError("boom")
        self.messages.append(params["message"])
        return {"echoed": params["message"]}


class ThirdPartyPlugin:
    """Implements every hook; ``fail`` makes ``workflow_run_created`` raise."""

    def __init__(self, fail=False):
        self.fail = fail
        self.echo = Echo()
        self.created = []

    @hookimpl
    def register_providers(self):
        """Register the Acme provider."""
        return [AcmeProvider()]

    @hookimpl
    def register_actions(self):
        """Register the echo action."""
        return [self.echo]

    @hookimpl
    def workflow_run_created(self, run, event_log):
        """Record what was announced, and whether it was outside the action's transaction."""
        if self.fail:
            raise RuntimeError("delivery failed")
        self.created.append((serialize_run(run), event_log.id, store.db.in_transaction()))


class BrokenDelivery:
    """A second plugin whose ``workflow_run_created`` always fails."""

    @hookimpl
    def workflow_run_created(self, run):
        """Fail, as a plugin whose downstream system is down would."""
        raise ConnectionError("downstream unavailable")


@pytest.fixture
def plugin():
    """The third-party plugin under test."""
    return ThirdPartyPlugin()


@pytest.fixture
def app_config(plugin):
    """Install ``plugin`` and a broken one, registered before it."""
    return {"EXTRA_PLUGINS": [BrokenDelivery(), plugin]}


@pytest.fixture
def source(client, api):
    """A custom source with the workflow ``wf``."""
    api.create_workflow("wf")
    return EventSource(client, api)


def test_hook_register_providers(client, api):
    api.create_source(key="acme-source", provider="acme")
    body = api.get("/v1/sources/acme-source").get_json()
    assert body["provider"] == "acme"
    assert [m["event_type"] for m in body["environment_settings"]["development"]["mappings"]] == ["member.joined"]
    event = {"kind": "member.joined", "member": {"id": "ann", "name": "Ann"}}
    assert client.post(api.endpoint("acme-source"), json=event).status_code == 204
    entry = api.logs("acme-source")[0]
    assert (entry["event"], entry["status"]) == ("member.joined", "processed")
    assert api.get("/v1/users/ann").get_json()["name"] == "Ann"


def test_hook_register_actions(source, plugin):
    source.configure(
        mapping("echo", message="body.first"),
        mapping("echo", message="body.second"),
        mapping("tenants_set", id="body.tenant"),
    )
    entry = source.send({"first": "boom", "second": "hello", "tenant": "acme"})
    statuses = [(action["action_type"], action["action_status"], action["error"]) for action in entry["actions"]]
    # Plugin actions run after Knock's built-in order; an unexpected exception is
    # an error on that action alone.
    assert statuses == [
        ("tenants_set", "success", None),
        ("echo", "error", "internal error: RuntimeError"),
        ("echo", "success", None),
    ]
    assert plugin.echo.messages == ["hello"]
    assert entry["actions"][2]["action_result"] == {"echoed": "hello"}


def test_hook_register_actions_parameters_are_validated_on_save(api):
    response = api.put(
        "/v1/sources/s",
        {
            "source": {
                "name": "S",
                "environment_settings": {"development": {"mappings": [mapping("echo", mesage="body.x")]}},
            }
        },
    )
    assert response.status_code == 422
    errors = {error["field"]: error["message"] for error in response.get_json()["errors"]}
    prefix = "source.environment_settings.development.mappings.0.action_parameters"
    assert errors[f"{prefix}.mesage"].startswith("Unknown parameter for echo")
    assert errors[f"{prefix}.message"].startswith("Required by echo")


def test_hook_workflow_run_created(source, plugin, caplog):
    source.configure(mapping("workflows_trigger", key="wf", recipients="body.to", data="body.data"))
    with caplog.at_level(logging.ERROR, logger="knock_sources"):
        entry = source.send({"to": [{"id": "ann", "name": "Ann"}, {"id": "bob", "name": "Bob"}], "data": {"n": 1}})
    [action] = entry["actions"]
    assert action["action_status"] == "success"
    assert entry["status"] == "processed"
    listed = list(reversed(source.get("/v1/workflows/wf/runs")["entries"]))
    # Announced once per run, with the event, after the trigger committed,
    # despite the other plugin failing each time.
    assert plugin.created == [(run, int(entry["id"]), False) for run in listed]
    failures = [record for record in caplog.records if "workflow_run_created" in record.getMessage()]
    assert len(failures) == 2
    assert all(record.exc_info[0] is ConnectionError for record in failures)


@pytest.mark.parametrize("app_config", [{"EXTRA_PLUGINS": [ThirdPartyPlugin(fail=True)]}])
def test_hook_workflow_run_created_failure_keeps_the_run(source, caplog):
    source.configure(mapping("workflows_trigger", key="wf", recipients="body.to"))
    with caplog.at_level(logging.ERROR, logger="knock_sources"):
        entry = source.send({"to": {"id": "ann", "name": "Ann"}})
    assert entry["status"] == "processed"
    assert entry["actions"][0]["action_status"] == "success"
    [run] = source.get("/v1/workflows/wf/runs")["entries"]
    assert run["id"] == entry["actions"][0]["action_result"]["workflow_run_ids"][0]
    assert any("delivery failed" in str(record.exc_info[1]) for record in caplog.records if record.exc_info)


@pytest.mark.parametrize(
    "body",
    [
        {"to": "ghost"},
        {"to": [{"id": "ann", "name": "Ann"}, {"id": "bob", "blob": "x" * (256 * 1024)}]},
    ],
    ids=["no-run", "rolled-back"],
)
def test_hook_workflow_run_created_is_not_called_without_a_committed_run(source, plugin, body):
    source.configure(mapping("workflows_trigger", key="wf", recipients="body.to"))
    source.send(body)
    assert source.get("/v1/workflows/wf/runs")["entries"] == []
    assert plugin.created == []


@pytest.mark.parametrize("hook", sorted(vars(make_plugin_manager(load_entrypoints=False).hook)))
def test_every_hook_has_a_test(hook):
    assert f"test_hook_{hook}" in globals(), f"add a test_hook_{hook} to {__name__}"

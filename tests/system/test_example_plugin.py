"""The example third-party plugin (``examples/knock-sources-github``), installed for real.

A session fixture pip-installs the package into this interpreter unless the
installed copy is already current, then the tests find it through the
``knock_sources`` entry point like any deployment would.
"""

import importlib
import shutil
import subprocess
import sys
from importlib import metadata

import pytest

from knock_sources.actions.runner import check_parameters
from knock_sources.plugins import Registry, make_plugin_manager
from knock_sources.testing import CONTRACT_CHECKS, make_secret, raw_json
from tests.support import ROOT

EXAMPLE = ROOT / "examples" / "knock-sources-github"
DISTRIBUTION = "knock-sources-github"
MODULE = "knock_sources_github"


def installed_is_current():
    """Whether the installed distribution holds this checkout's module and entry point."""
    try:
        dist = metadata.distribution(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return False
    if {ep.name for ep in dist.entry_points if ep.group == "knock_sources"} != {"github"}:
        return False
    source = (EXAMPLE / f"{MODULE}.py").read_bytes()
    return any(file.name == f"{MODULE}.py" and file.locate().read_bytes() == source for file in dist.files or ())


@pytest.fixture(scope="session")
def github_installed(tmp_path_factory):
    """Install the example plugin (a regular, non-editable install) when needed.

    pip builds from a copy so that no build artefacts land in the checkout.
    """
    if not installed_is_current():
        copy = shutil.copytree(EXAMPLE, tmp_path_factory.mktemp("build") / EXAMPLE.name)
        command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--force-reinstall", str(copy)]
        result = subprocess.run(command, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        importlib.invalidate_caches()
        sys.modules.pop(MODULE, None)
    assert installed_is_current()


@pytest.fixture
def pm(github_installed):
    """A plugin manager that loads installed plugins."""
    return make_plugin_manager(load_entrypoints=True)


@pytest.fixture
def github(pm):
    """The GitHub provider as discovered through its entry point."""
    return Registry.from_plugin_manager(pm).providers["github"]


def test_the_plugin_is_discovered_through_its_entry_point(pm):
    distributions = {dist.project_name: dist.version for _, dist in pm.list_plugin_distinfo()}
    assert pm.get_plugin("github") is not None
    assert distributions[DISTRIBUTION] == "0.1.0"


def test_the_registry_describes_the_plugin(pm):
    [described] = [entry for entry in Registry.from_plugin_manager(pm).plugins() if entry["name"] == "github"]
    assert described == {"name": "github", "version": "0.1.0", "hooks": ["register_providers"]}


def test_blocking_the_entry_point_name_removes_it(github_installed):
    registry = Registry.from_plugin_manager(make_plugin_manager(load_entrypoints=True, blocked=["github"]))
    assert "github" not in registry.providers
    assert "stripe" in registry.providers


def test_entry_points_are_not_loaded_when_disabled(github_installed):
    registry = Registry.from_plugin_manager(make_plugin_manager(load_entrypoints=False))
    assert "github" not in registry.providers


@pytest.mark.parametrize("check", CONTRACT_CHECKS, ids=lambda check: check.__name__)
def test_the_discovered_provider_passes_the_contract(github, check):
    check(github)


def test_default_mappings_validate_on_the_examples(pm, github):
    registry = Registry.from_plugin_manager(pm)
    for mapping in github.default_mappings:
        for example in github.example_payloads[mapping.event_type]:
            scope = {"body": example["body"], "headers": example["headers"], "preprocess": {}}
            action = registry.actions[mapping.action_type]
            assert check_parameters(action, mapping.action_parameters, scope)[::2] == ("success", None)


@pytest.fixture
def app_config(github_installed):
    """Let the app under test load installed plugins."""
    return {"LOAD_PLUGIN_ENTRYPOINTS": True}


def test_a_signed_issue_event_triggers_the_workflow(client, api, github):
    secret = make_secret()
    api.create_source("repo-events", provider="github", settings={"signing_secret": secret})
    api.create_workflow("github-issue")
    example = github.example_payloads["issues"][0]
    raw = raw_json(example["body"])
    headers = {**example["headers"], **github.sign(raw, secret)}
    headers.pop("content-type")
    response = client.post(api.endpoint("repo-events"), data=raw, headers=headers, content_type="application/json")
    assert response.status_code == 204
    [entry] = api.logs("repo-events")
    assert (entry["event"], entry["status"], entry["idempotency_key"]) == (
        "issues",
        "processed",
        example["headers"]["x-github-delivery"],
    )
    assert [action["action_status"] for action in entry["actions"]] == ["success"]


def test_a_forged_delivery_is_401(client, api, github):
    api.create_source("repo-events", provider="github", settings={"signing_secret": make_secret()})
    raw = raw_json(github.example_payloads["issues"][0]["body"])
    response = client.post(
        api.endpoint("repo-events"), data=raw, headers=github.sign(raw, make_secret()), content_type="application/json"
    )
    assert response.status_code == 401
    assert response.get_json()["code"] == "signature_mismatch"

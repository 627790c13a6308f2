"""The application factory: configuration sources and start-up warnings."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from app import create_app
from knock_sources.errors import ConfigurationError
from tests.support import ROOT


def test_environment_variables_configure_the_app(tmp_path, monkeypatch):
    monkeypatch.setenv("KNOCK_SOURCES_DATABASE_URL", f"sqlite:///{tmp_path}/env.db")
    monkeypatch.setenv("KNOCK_SOURCES_MAX_PAYLOAD_BYTES", "2048")
    monkeypatch.setenv("KNOCK_SOURCES_ENVIRONMENTS", "development,staging")
    monkeypatch.setenv("KNOCK_SOURCES_PUBLIC_BASE_URL", "https://hooks.example.com/")
    monkeypatch.setenv("KNOCK_SOURCES_LOAD_PLUGIN_ENTRYPOINTS", "false")
    app = create_app()
    assert app.config["MAX_PAYLOAD_BYTES"] == 2048
    assert app.config["ENVIRONMENTS"] == ["development", "staging"]
    assert app.config["PUBLIC_BASE_URL"] == "https://hooks.example.com"
    assert app.config["LOAD_PLUGIN_ENTRYPOINTS"] is False


def test_test_config_replaces_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("KNOCK_SOURCES_MAX_PAYLOAD_BYTES", "2048")
    app = create_app({"TESTING": True, "DATABASE_URL": f"sqlite:///{tmp_path}/t.db", "LOAD_PLUGIN_ENTRYPOINTS": False})
    assert app.config["MAX_PAYLOAD_BYTES"] == 1024 * 1024


def test_creating_the_app_does_not_warn_about_the_secret_key(tmp_path, caplog):
    # Every CLI command creates the app: the warning belongs to servers and workers starting.
    create_app({"LOAD_PLUGIN_ENTRYPOINTS": False, "DATABASE_URL": f"sqlite:///{tmp_path}/a.db"})
    assert "KNOCK_SOURCES_SECRET_KEY" not in caplog.text


@pytest.mark.parametrize(
    ("key", "value", "named"),
    [
        ("KNOCK_SOURCES_MAX_PAYLOAD_BYTES", "1mb", "KNOCK_SOURCES_MAX_PAYLOAD_BYTES (got '1mb')"),
        ("KNOCK_SOURCES_SCRIPT_TIMEOUT_MS", "0", "KNOCK_SOURCES_SCRIPT_TIMEOUT_MS (got 0)"),
        ("KNOCK_SOURCES_WORKFLOW_RUN_RETENTION_DAYS", "0", "KNOCK_SOURCES_WORKFLOW_RUN_RETENTION_DAYS (got 0)"),
        ("KNOCK_SOURCES_WORKFLOW_RUN_RETENTION_DAYS", "30d", "KNOCK_SOURCES_WORKFLOW_RUN_RETENTION_DAYS (got '30d')"),
        ("KNOCK_SOURCES_WORKFLOW_RUN_RETENTION_DAYS", "7.5", "KNOCK_SOURCES_WORKFLOW_RUN_RETENTION_DAYS (got 7.5)"),
        ("KNOCK_SOURCES_ENVIRONMENTS", "Staging Area", "KNOCK_SOURCES_ENVIRONMENTS"),
        ("KNOCK_SOURCES_PUBLIC_BASE_URL", "hooks.example.com", "KNOCK_SOURCES_PUBLIC_BASE_URL"),
        ("KNOCK_SOURCES_LOAD_PLUGIN_ENTRYPOINTS", '"yes"', "KNOCK_SOURCES_LOAD_PLUGIN_ENTRYPOINTS"),
        ("KNOCK_SOURCES_HEALTHZ_MAX_PENDING_AGE_SECONDS", "0", "KNOCK_SOURCES_HEALTHZ_MAX_PENDING_AGE_SECONDS (got 0)"),
        # An event waiting for its first sweep must not already count as stalled.
        ("KNOCK_SOURCES_HEALTHZ_MAX_PENDING_AGE_SECONDS", "60", "must be more than KNOCK_SOURCES_SWEEP_GRACE_SECONDS"),
    ],
)
def test_a_mistyped_setting_stops_the_start_with_its_name(tmp_path, monkeypatch, key, value, named):
    monkeypatch.setenv("KNOCK_SOURCES_DATABASE_URL", f"sqlite:///{tmp_path}/env.db")
    monkeypatch.setenv(key, value)
    with pytest.raises(ConfigurationError, match=re.escape(named)):
        create_app()


def test_workflow_run_retention_defaults_to_log_retention_and_may_differ(tmp_path, monkeypatch):
    monkeypatch.setenv("KNOCK_SOURCES_DATABASE_URL", f"sqlite:///{tmp_path}/env.db")
    assert create_app().config["WORKFLOW_RUN_RETENTION_DAYS"] == 30
    monkeypatch.setenv("KNOCK_SOURCES_LOG_RETENTION_DAYS", "90")
    assert create_app().config["WORKFLOW_RUN_RETENTION_DAYS"] == 90
    monkeypatch.setenv("KNOCK_SOURCES_WORKFLOW_RUN_RETENTION_DAYS", "7")
    app = create_app()
    assert (app.config["LOG_RETENTION_DAYS"], app.config["WORKFLOW_RUN_RETENTION_DAYS"]) == (90, 7)


def test_a_bad_log_retention_is_reported_once_not_again_as_the_run_retention_it_sets(tmp_path, monkeypatch):
    monkeypatch.setenv("KNOCK_SOURCES_DATABASE_URL", f"sqlite:///{tmp_path}/env.db")
    monkeypatch.setenv("KNOCK_SOURCES_LOG_RETENTION_DAYS", "0")
    with pytest.raises(ConfigurationError) as caught:
        create_app()
    assert "KNOCK_SOURCES_LOG_RETENTION_DAYS (got 0)" in str(caught.value)
    assert "WORKFLOW_RUN_RETENTION_DAYS" not in str(caught.value)


def test_a_bad_setting_refuses_to_start_the_cli_with_one_message(tmp_path):
    env = {**os.environ, "KNOCK_SOURCES_DATABASE_URL": f"sqlite:///{tmp_path}/c.db"}
    env["KNOCK_SOURCES_MAX_PAYLOAD_BYTES"] = "1mb"
    flask = Path(sys.executable).with_name("flask")
    result = subprocess.run([str(flask), "init-db"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "KNOCK_SOURCES_MAX_PAYLOAD_BYTES (got '1mb')" in result.stderr


def test_the_secret_key_is_never_repeated_in_a_configuration_error(tmp_path):
    with pytest.raises(ConfigurationError) as caught:
        create_app(
            {"DATABASE_URL": f"sqlite:///{tmp_path}/t.db", "SECRET_KEY": 12345, "LOAD_PLUGIN_ENTRYPOINTS": False}
        )
    assert "KNOCK_SOURCES_SECRET_KEY" in str(caught.value) and "12345" not in str(caught.value)


def test_secret_key_fallbacks_are_read_as_a_list_and_never_repeated(tmp_path, monkeypatch):
    monkeypatch.setenv("KNOCK_SOURCES_DATABASE_URL", f"sqlite:///{tmp_path}/f.db")
    monkeypatch.setenv("KNOCK_SOURCES_SECRET_KEY_FALLBACKS", "old-key-1, old-key-2")
    assert create_app().config["SECRET_KEY_FALLBACKS"] == ["old-key-1", "old-key-2"]
    monkeypatch.setenv("KNOCK_SOURCES_SECRET_KEY_FALLBACKS", '["old-key-1", 7]')
    with pytest.raises(ConfigurationError) as caught:
        create_app()
    assert "KNOCK_SOURCES_SECRET_KEY_FALLBACKS" in str(caught.value) and "old-key-1" not in str(caught.value)

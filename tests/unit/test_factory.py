"""The application factory: configuration sources and start-up warnings."""

from app import create_app


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


def test_default_secret_key_is_warned_about_outside_tests(tmp_path, caplog):
    config = {"LOAD_PLUGIN_ENTRYPOINTS": False, "DATABASE_URL": f"sqlite:///{tmp_path}/a.db"}
    create_app(config)
    assert "KNOCK_SOURCES_SECRET_KEY is not set" in caplog.text
    caplog.clear()
    create_app({**config, "SECRET_KEY": "a-real-secret"})
    assert "KNOCK_SOURCES_SECRET_KEY" not in caplog.text

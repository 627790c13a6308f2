"""The per-app plugin manager and the registry's start-up validation."""

import pytest
from pluggy import PluginValidationError

from app import create_app
from knock_sources import DefaultMapping, Provider, hookimpl
from knock_sources.actions.base import Action
from knock_sources.errors import ConfigurationError
from knock_sources.plugins import DEFAULT_PLUGINS, Registry, make_plugin_manager


def registry_with(*plugins, blocked=()):
    return Registry.from_plugin_manager(make_plugin_manager(load_entrypoints=False, extra=plugins, blocked=blocked))


class AcmeProvider(Provider):
    slug = "acme"
    name = "Acme"
    signed = False
    default_mappings = (DefaultMapping("thing.created", "users_identify", {"id": "body.id"}),)


class AcmePlugin:
    __name__ = "acme"

    @hookimpl
    def register_providers(self):
        return [AcmeProvider()]


def test_default_plugins_are_registered():
    registry = registry_with()
    names = {plugin["name"] for plugin in registry.plugins()}
    assert set(DEFAULT_PLUGINS) <= names
    assert "custom_http" in registry.providers
    assert {"users_identify", "workflows_trigger"} <= set(registry.actions)


def test_extra_plugin_adds_a_provider():
    assert registry_with(AcmePlugin()).providers["acme"].name == "Acme"


def test_misspelt_hook_fails_at_start_up():
    class Typo:
        @hookimpl
        def register_provider(self):
            return []

    with pytest.raises(PluginValidationError):
        make_plugin_manager(load_entrypoints=False, extra=[Typo()])


def test_duplicate_provider_slug_fails_at_start_up():
    class Again:
        @hookimpl
        def register_providers(self):
            return [AcmeProvider()]

    with pytest.raises(ConfigurationError, match="acme"):
        registry_with(AcmePlugin(), Again())


def test_duplicate_action_type_fails_at_start_up():
    class Shadow(Action):
        action_type = "users_identify"

    class ShadowPlugin:
        @hookimpl
        def register_actions(self):
            return [Shadow()]

    with pytest.raises(ConfigurationError, match="users_identify"):
        registry_with(ShadowPlugin())


def test_default_mapping_to_an_unknown_action_fails_at_start_up():
    class Broken(AcmeProvider):
        slug = "broken"
        default_mappings = (DefaultMapping("x", "users_teleport", {}),)

    class BrokenPlugin:
        @hookimpl
        def register_providers(self):
            return [Broken()]

    with pytest.raises(ConfigurationError, match="users_teleport"):
        registry_with(BrokenPlugin())


def test_blocked_built_in_provider_can_be_replaced():
    class MyHttp(AcmeProvider):
        slug = "custom_http"

    class MyHttpPlugin:
        @hookimpl
        def register_providers(self):
            return [MyHttp()]

    registry = registry_with(MyHttpPlugin(), blocked=["plugins.custom_http"])
    assert isinstance(registry.providers["custom_http"], MyHttp)


def test_each_app_has_its_own_registry(tmp_path):
    config = {"TESTING": True, "LOAD_PLUGIN_ENTRYPOINTS": False, "DATABASE_URL": f"sqlite:///{tmp_path}/a.db"}
    plain = create_app(config)
    extended = create_app({**config, "EXTRA_PLUGINS": [AcmePlugin()]})
    assert "acme" in extended.extensions["knock_sources"].registry.providers
    assert "acme" not in plain.extensions["knock_sources"].registry.providers


def test_disabled_plugins_config_blocks_by_name(tmp_path):
    app = create_app(
        {
            "TESTING": True,
            "LOAD_PLUGIN_ENTRYPOINTS": False,
            "DATABASE_URL": f"sqlite:///{tmp_path}/a.db",
            "DISABLED_PLUGINS": "plugins.posthog, plugins.supabase",
        }
    )
    providers = app.extensions["knock_sources"].registry.providers
    assert "posthog" not in providers and "supabase" not in providers
    assert "custom_http" in providers

"""Plugin plumbing: a per-app pluggy manager and the registry built from it.

The manager loads ``DEFAULT_PLUGINS`` by dotted path and, unless disabled,
the ``knock_sources`` entry-point group. ``Registry`` gathers what the
``register_*`` hooks return and rejects duplicates at start-up, so a broken
plugin stops the app instead of silently shadowing a provider.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pluggy

from knock_sources import hookspecs
from knock_sources.errors import ConfigurationError

if TYPE_CHECKING:
    from knock_sources.actions.base import Action
    from knock_sources.providers import Provider

DEFAULT_PLUGINS = (
    "knock_sources.actions",
    "plugins.custom_http",
    "plugins.stripe",
    "plugins.clerk",
    "plugins.workos",
    "plugins.supabase",
    "plugins.posthog",
    "plugins.legacy_http",
    "plugins.segment",
    "plugins.rudderstack",
    "plugins.jitsu",
    "plugins.freshpaint",
)

ENTRY_POINT_GROUP = "knock_sources"


def make_plugin_manager(
    *, load_entrypoints: bool = True, extra: Iterable[object] = (), blocked: Iterable[str] = ()
) -> pluggy.PluginManager:
    """Return a PluginManager with the hookspecs, default plugins and installed ones.

    ``blocked`` names plugins (dotted module paths for built-ins, entry-point
    names for installed ones) that must not load, so that a deployment can
    replace a built-in provider with its own.
    """
    pm = pluggy.PluginManager("knock_sources")
    pm.add_hookspecs(hookspecs)
    for name in blocked:
        pm.set_blocked(name)
    if load_entrypoints:
        pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    for name in DEFAULT_PLUGINS:
        if not pm.is_blocked(name):
            pm.register(importlib.import_module(name), name)
    for plugin in extra:
        pm.register(plugin)
    # A misspelt hookimpl would otherwise be ignored silently.
    pm.check_pending()
    return pm


@dataclass
class Registry:
    """Providers and actions contributed by plugins, keyed by slug and type."""

    pm: pluggy.PluginManager
    providers: dict[str, Provider] = field(default_factory=dict)
    actions: dict[str, Action] = field(default_factory=dict)

    @classmethod
    def from_plugin_manager(cls, pm: pluggy.PluginManager) -> Registry:
        """Call the registration hooks and validate what they return."""
        registry = cls(pm)
        for actions in pm.hook.register_actions():
            for action in actions or ():
                if action.action_type in registry.actions:
                    raise ConfigurationError(f"Duplicate action type: {action.action_type}")
                registry.actions[action.action_type] = action
        for providers in pm.hook.register_providers():
            for provider in providers or ():
                if not provider.slug or provider.slug in registry.providers:
                    raise ConfigurationError(f"Duplicate or empty provider slug: {provider.slug!r}")
                for mapping in provider.default_mappings:
                    if mapping.action_type not in registry.actions:
                        raise ConfigurationError(
                            f"Provider {provider.slug!r} maps {mapping.event_type!r} "
                            f"to unknown action type {mapping.action_type!r}"
                        )
                registry.providers[provider.slug] = provider
        return registry

    def plugins(self) -> list[dict[str, Any]]:
        """Describe the loaded plugins: name, version and hooks implemented."""
        distributions = {id(plugin): dist for plugin, dist in self.pm.list_plugin_distinfo()}
        described = []
        for plugin in self.pm.get_plugins():
            dist = distributions.get(id(plugin))
            described.append(
                {
                    "name": self.pm.get_name(plugin),
                    "version": dist.version if dist else None,
                    "hooks": sorted(caller.name for caller in self.pm.get_hookcallers(plugin) or ()),
                }
            )
        return sorted(described, key=lambda entry: entry["name"])


def build_registry(config: Mapping[str, Any]) -> Registry:
    """Build the plugin manager and registry an app's configuration asks for."""
    pm = make_plugin_manager(
        load_entrypoints=config["LOAD_PLUGIN_ENTRYPOINTS"],
        extra=config["EXTRA_PLUGINS"],
        blocked=config["DISABLED_PLUGINS"],
    )
    return Registry.from_plugin_manager(pm)

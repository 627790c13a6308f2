"""The provider contract (``knock_sources.testing``) over every registered provider.

Also proves that each default mapping's parameters are fields of its action
and validate against that action's schema on the provider's examples, so a
misnamed parameter cannot be dropped silently.
"""

import pytest

from knock_sources.actions.runner import check_parameters
from knock_sources.hookspecs import hookimpl
from knock_sources.plugins import DEFAULT_PLUGINS, Registry, make_plugin_manager
from knock_sources.providers import Provider
from knock_sources.testing import CONTRACT_CHECKS

BUILT_IN = {
    "custom_http",
    "stripe",
    "clerk",
    "workos",
    "supabase",
    "posthog",
    "legacy_http",
    "segment",
    "rudderstack",
    "jitsu",
    "freshpaint",
}
PROVIDERS = sorted(
    (
        provider
        for provided in make_plugin_manager(load_entrypoints=False).hook.register_providers()
        for provider in provided
    ),
    key=lambda provider: provider.slug,
)


def contract_cases():
    for provider in PROVIDERS:
        for check in CONTRACT_CHECKS:
            yield pytest.param(provider, check, id=f"{provider.slug}-{check.__name__}")


def mapping_cases():
    for provider in PROVIDERS:
        for mapping in provider.default_mappings:
            for index, example in enumerate(provider.example_payloads.get(mapping.event_type, ())):
                ident = f"{provider.slug}-{mapping.event_type}-{mapping.action_type}-{index}"
                yield pytest.param(mapping, example, id=ident)


@pytest.fixture(scope="module")
def registry():
    """The registry of the built-in plugins, with no installed ones."""
    return Registry.from_plugin_manager(make_plugin_manager(load_entrypoints=False))


@pytest.mark.parametrize(("provider", "check"), list(contract_cases()))
def test_provider_contract(provider, check):
    check(provider)


def test_every_built_in_provider_is_registered(registry):
    assert set(registry.providers) == BUILT_IN


@pytest.mark.parametrize("slug", sorted(BUILT_IN - {"custom_http"}))
def test_built_in_providers_are_default_plugins(slug):
    assert f"plugins.{slug}" in DEFAULT_PLUGINS


@pytest.mark.parametrize("mapping", [m for p in PROVIDERS for m in p.default_mappings], ids=repr)
def test_default_mapping_parameters_are_fields_of_the_action(registry, mapping):
    fields = set(registry.actions[mapping.action_type].params_schema().fields)
    assert set(mapping.action_parameters) <= fields


@pytest.mark.parametrize(("mapping", "example"), list(mapping_cases()))
def test_default_mappings_validate_on_the_examples(registry, mapping, example):
    scope = {"body": example["body"], "headers": example.get("headers", {}), "preprocess": {}}
    status, payload, error = check_parameters(registry.actions[mapping.action_type], mapping.action_parameters, scope)
    assert (status, error) == ("success", None)


class ReplacementStripe(Provider):
    """A deployment's own Stripe provider."""

    slug = "stripe"
    name = "Our Stripe"


class ReplacementPlugin:
    """A plugin registering ``ReplacementStripe``."""

    @hookimpl
    def register_providers(self):
        """Register the replacement."""
        return [ReplacementStripe()]


def test_a_blocked_built_in_provider_can_be_replaced():
    pm = make_plugin_manager(load_entrypoints=False, blocked=["plugins.stripe"], extra=[ReplacementPlugin()])
    assert Registry.from_plugin_manager(pm).providers["stripe"].name == "Our Stripe"

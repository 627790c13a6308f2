"""``load_example_payloads``: example requests kept as package data, for ours and third-party providers."""

import sys

import pytest

from knock_sources.providers import load_example_payloads
from plugins import clerk, posthog, stripe, supabase, workos

BUILT_IN = (
    clerk.ClerkProvider,
    posthog.PostHogProvider,
    stripe.StripeProvider,
    supabase.SupabaseProvider,
    workos.WorkOSProvider,
)


@pytest.fixture
def package(tmp_path, monkeypatch):
    """An importable package ``acme_plugin`` with an empty ``payloads`` folder, which it yields."""
    payloads = tmp_path / "acme_plugin" / "payloads"
    payloads.mkdir(parents=True)
    (payloads.parent / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield payloads
    # Each test has its own folder: the next one must not find this import.
    sys.modules.pop("acme_plugin", None)


@pytest.mark.parametrize("provider", BUILT_IN, ids=lambda provider: provider.slug)
def test_built_in_examples_come_from_their_json_file(provider):
    assert provider.example_payloads == load_example_payloads("plugins", provider.slug)
    assert provider.example_payloads


def test_a_third_party_package_loads_its_own_file(package):
    (package / "acme.json").write_text('{"order.created": [{"body": {"note": "Zoë"}, "headers": {}}]}', "utf-8")
    assert load_example_payloads("acme_plugin", "acme") == {"order.created": [{"body": {"note": "Zoë"}, "headers": {}}]}


def test_a_file_not_holding_an_object_is_refused(package):
    (package / "acme.json").write_text("[]")
    with pytest.raises(ValueError, match="acme_plugin/payloads/acme.json must hold an object keyed by event type"):
        load_example_payloads("acme_plugin", "acme")

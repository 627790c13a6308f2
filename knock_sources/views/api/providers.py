"""``/v1/source_providers``: the installed provider plugins (Knock's source templates)."""

from flask import Blueprint, jsonify

from knock_sources.errors import NotFound
from knock_sources.state import current_state

bp = Blueprint("providers", __name__)


@bp.get("/source_providers")
def list_providers():
    """List installed providers with their default mappings and example payloads."""
    providers = sorted(current_state().registry.providers.values(), key=lambda provider: provider.slug)
    entries = [provider.describe() for provider in providers]
    return jsonify({"entries": entries, "page_info": {"after": None, "before": None, "page_size": len(entries)}})


@bp.get("/source_providers/<key>")
def get_provider(key):
    """Return one installed provider."""
    provider = current_state().registry.providers.get(key)
    if provider is None:
        raise NotFound(f"No provider {key!r} is installed.", code="provider_missing")
    return jsonify(provider.describe())

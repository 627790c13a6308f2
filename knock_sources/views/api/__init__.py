"""The ``/v1`` JSON API: one blueprint (``common.bp``) with a child blueprint per resource.

Shapes follow Knock's Management API. Request bodies are validated by the
schemas of ``schemas.py``; the resources are ``sources``, ``mappings``
(one mapping at a time), ``scripts`` (test and rehearse), ``replays``, ``data``
(workflows and the data plane), ``triggers`` (workflows' source-event
triggers), ``providers`` and ``variables``.
"""

from knock_sources.views.api import data, mappings, providers, replays, scripts, sources, triggers, variables
from knock_sources.views.api.common import bp

# Nested once at import: a blueprint cannot gain children after its first registration.
for _resource in (sources, mappings, data, providers, variables, scripts, triggers, replays):
    bp.register_blueprint(_resource.bp)

__all__ = ["bp"]

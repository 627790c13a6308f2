"""Hook specifications for knock-sources plugins.

Plugins implement these with ``knock_sources.hookimpl``. Registration hooks
return lists of plain objects; the core puts them into a ``Registry`` that
rejects duplicates at start-up (see ``plugins.py``).
"""

from pluggy import HookimplMarker, HookspecMarker

hookspec = HookspecMarker("knock_sources")
hookimpl = HookimplMarker("knock_sources")


@hookspec
def register_providers():
    """Return a list of ``Provider`` instances, keyed by their ``slug``."""


@hookspec
def register_actions():
    """Return a list of ``Action`` instances, keyed by their ``action_type``."""

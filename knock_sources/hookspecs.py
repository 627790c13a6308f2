"""Hook specifications for knock-sources plugins.

Plugins implement these with ``knock_sources.hookimpl``. Registration hooks
return lists of plain objects; the core puts them into a ``Registry`` that
rejects duplicates at start-up (see ``plugins.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from pluggy import HookimplMarker, HookspecMarker

if TYPE_CHECKING:
    from knock_sources.actions.base import Action
    from knock_sources.providers import Provider
    from knock_sources.store.control import EventLog
    from knock_sources.store.dataplane import WorkflowRun

hookspec = HookspecMarker("knock_sources")
hookimpl = HookimplMarker("knock_sources")


@hookspec
def register_providers() -> Sequence[Provider]:
    """Return a list of ``Provider`` instances, keyed by their ``slug``."""


@hookspec
def register_actions() -> Sequence[Action]:
    """Return a list of ``Action`` instances, keyed by their ``action_type``."""


@hookspec
def workflow_run_created(run: WorkflowRun, event_log: EventLog) -> None:
    """Act on a new workflow run, for example to deliver it to another system.

    Called once per ``WorkflowRun`` after the trigger that created it has
    committed; ``event_log`` is the ``EventLog`` that caused it.
    ``knock_sources.views.api.shapes.serialize_run(run)`` gives its JSON
    shape. Each implementation is called on its own: one that raises is
    logged, and neither the run nor the other implementations are affected.
    """

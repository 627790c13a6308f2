"""Workflows as the dashboard changes them: switching one on or off in an environment.

An inactive workflow is not started by triggers: its trigger actions end
with ``workflow_inactive`` (``actions.workflows.find_workflow``).
"""

from __future__ import annotations

from knock_sources.errors import NotFound
from knock_sources.store import utcnow
from knock_sources.store.dataplane import Workflow


def get(environment, key: str) -> Workflow:
    """Return workflow ``key`` of ``environment``, or raise ``NotFound``."""
    workflow = Workflow.get_or_none(environment=environment, key=key)
    if workflow is None:
        raise NotFound(f"Workflow {key!r} does not exist in {environment.slug}.", code="workflow_missing")
    return workflow


def set_active(environment, key: str, active: bool) -> Workflow:
    """Switch workflow ``key`` on or off in ``environment``."""
    workflow = get(environment, key)
    workflow.active = active
    workflow.updated_at = utcnow()
    workflow.save(only=[Workflow.active, Workflow.updated_at])
    return workflow

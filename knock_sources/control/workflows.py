"""Workflows as the dashboard changes them (switching one on or off), and the retention of their runs.

An inactive workflow is not started by triggers: its trigger actions end
with ``workflow_inactive`` (``actions.workflows.find_workflow``).
"""

from __future__ import annotations

from datetime import datetime

from peewee import fn

from knock_sources.control import activity
from knock_sources.errors import NotFound
from knock_sources.store import utcnow
from knock_sources.store.dataplane import Workflow, WorkflowRun

#: Workflow run ids one statement of ``purge_runs`` covers: short transactions, no long lock.
RUN_PURGE_BATCH = 5000


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


def purge_runs(cutoff: datetime) -> int:
    """Delete the workflow runs created before ``cutoff``, oldest first, in batches; return how many.

    Runs have no index on ``created_at`` (the worker inserts them on its hot
    path, and every index costs each insert): ids grow with time, so the
    first id created at or after ``cutoff`` is found by a search over the
    primary key (``activity.first_id_since``), and the ids below it are
    deleted a range of ``RUN_PURGE_BATCH`` at a time, each range its own
    statement. A range never holds more rows than ids, whatever the gaps;
    ``created_at`` is checked too, so that a run stamped after ``cutoff`` but
    inserted before an older one (two workers' batches) stays.

    No row refers to a run (an action log's result names run ids as text
    only), so nothing else changes. A run is stamped when its event is
    processed, after the event was received, so with the same retention a
    run that goes is in the same purge as its event log; deleted first, it
    leaves that log's ``SET NULL`` (the foreign key on SQLite, the trigger
    of ``store.partitions`` on PostgreSQL) fewer runs to update.
    """
    first, last = WorkflowRun.select(fn.MIN(WorkflowRun.id), fn.MAX(WorkflowRun.id)).tuples().first() or (None, None)
    if first is None:
        return 0
    end = activity.first_id_since(cutoff, WorkflowRun.created_at)
    if end is None:
        # Every run was created before the cutoff.
        end = last + 1
    deleted = 0
    for start in range(first, end, RUN_PURGE_BATCH):
        stop = min(start + RUN_PURGE_BATCH, end)
        in_range = (WorkflowRun.id >= start) & (WorkflowRun.id < stop)
        deleted += WorkflowRun.delete().where(in_range & (WorkflowRun.created_at < cutoff)).execute()
    return deleted

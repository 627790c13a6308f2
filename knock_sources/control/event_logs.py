"""Reading event logs: the filtered, newest-first query behind the logs API and the logs page.

Every filter narrows a walk of the ``(source_environment, id)`` index, so
the newest rows of a page are found without sorting the table; pagination
is by id cursor, so new arrivals never shift the pages already seen.
"""

from __future__ import annotations

from datetime import datetime

from knock_sources.store import to_utc_naive
from knock_sources.store.control import ActionLog, EventLog


def filtered(
    source_env,
    *,
    event: str | None = None,
    status: str | None = None,
    starting_at: datetime | None = None,
    ending_at: datetime | None = None,
):
    """Return the event logs of ``source_env`` matching the filters (unordered: paginate by id)."""
    query = EventLog.select().where(EventLog.source_environment == source_env)
    if event:
        query = query.where(EventLog.event_type == event)
    if status:
        query = query.where(EventLog.status == status)
    if starting_at is not None:
        query = query.where(EventLog.received_at >= to_utc_naive(starting_at))
    if ending_at is not None:
        query = query.where(EventLog.received_at <= to_utc_naive(ending_at))
    return query


def get(source_env, log_id: int) -> EventLog | None:
    """Return one event log of ``source_env``, or ``None``."""
    return EventLog.get_or_none((EventLog.id == log_id) & (EventLog.source_environment == source_env))


def actions_of(event_log_ids: list[int]) -> dict[int, list[ActionLog]]:
    """Return the action logs of several event logs in one query, in the order they ran."""
    found: dict[int, list[ActionLog]] = {event_log_id: [] for event_log_id in event_log_ids}
    if event_log_ids:
        query = ActionLog.select().where(ActionLog.event_log.in_(event_log_ids)).order_by(ActionLog.id)
        for action_log in query:
            found[action_log.event_log_id].append(action_log)
    return found


def newer_than(query, newest_seen: int, limit: int = 100) -> list[EventLog]:
    """Return up to ``limit`` rows of ``query`` newer than ``newest_seen``, newest first (the live tail)."""
    rows = list(query.where(EventLog.id > newest_seen).order_by(EventLog.id.asc()).limit(limit))
    return list(reversed(rows))

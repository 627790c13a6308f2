"""The known event types of each source environment: a counter and the last sample per type (``ks_known_event``).

A batch counts its events here after its commit (``batch.Batch.after_commit``);
the event types page and the mapping editor read them.
"""

from __future__ import annotations

import logging
from datetime import datetime

from peewee import EXCLUDED, InterfaceError, OperationalError

from knock_sources.store.control import KnownEvent

log = logging.getLogger(__name__)


def remember(event_logs: list, now: datetime) -> None:
    """Count the batch's events per known event type and keep each type's last sample, in one statement.

    After the commit, so that concurrent workers do not queue on a counter
    row for a whole batch; in type order, so that two workers' upserts
    take those rows' locks in the same order.
    """
    latest: dict[tuple[int, str], tuple[int, dict]] = {}
    for event_log in event_logs:
        pair = (event_log.source_environment_id, event_log.event_type)
        count = latest.get(pair, (0, None))[0]
        latest[pair] = (count + 1, {"body": event_log.body, "headers": event_log.headers})
    if not latest:
        return
    rows = [
        {
            "source_environment": source_env_id,
            "event_type": event_type,
            "count": count,
            "first_received_at": now,
            "last_received_at": now,
            "sample_payload": sample,
        }
        for (source_env_id, event_type), (count, sample) in sorted(latest.items(), key=lambda item: item[0])
    ]
    try:
        KnownEvent.insert_many(rows).on_conflict(
            conflict_target=[KnownEvent.source_environment, KnownEvent.event_type],
            update={
                KnownEvent.count: KnownEvent.count + EXCLUDED.count,
                KnownEvent.last_received_at: EXCLUDED.last_received_at,
                KnownEvent.sample_payload: EXCLUDED.sample_payload,
            },
        ).as_rowcount().execute()
    except (OperationalError, InterfaceError) as exc:
        # The events are committed: only the counters of the event types page miss them.
        log.warning("the known event types of %s events were not counted: %s", len(event_logs), exc)

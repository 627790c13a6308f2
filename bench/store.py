"""The store at scale: 1 M event logs in day partitions, the logs API's p99 and ``flask purge`` of one day.

``.venv/bin/python bench/store.py`` (also run by ``make bench``). Needs
PostgreSQL at 127.0.0.1:5432 (database ``test``); uses its own schema.

Loads ``BENCH_STORE_EVENTS`` (1 M) event logs spread evenly over the last
``DAYS`` days, two sources sharing them 3:2, with the statuses and event
types of a busy store (one type and one status rare), and an action log for
each processed one, in one ``INSERT ... SELECT generate_series`` per table
(rows routed to their day by PostgreSQL). Then:

- asks the API (Flask's test client, with an API key: the time is the app's
  and the database's, not a network's) for every kind of logs list ``ROUNDS``
  times after a warm-up: newest first, older and newer cursor pages, each
  filter, a date range, with actions, one log with its actions;
- runs ``EXPLAIN`` on the queries behind them (and a replay's selection) and
  records the plan's scans, failing loudly on a sequential scan of a log;
- times ``flask purge`` (CliRunner, in-process) with a retention that drops
  exactly the oldest day.

Writes ``bench/results/store.json``. Targets: every list p99 under 50 ms,
the purge of one day under 5 s.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.run import postgres_url  # noqa: E402

SCHEMA = "ks_bench_store"
EVENTS = int(os.environ.get("BENCH_STORE_EVENTS", "1000000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "200"))
WARMUP = 5
#: The oldest day is the one the purge drops.
DAYS = 7
RESULTS = ROOT / "bench" / "results" / "store.json"
LIST_TARGET_MS = 50.0
PURGE_TARGET_S = 5.0


def load(app) -> dict:
    """Fill the store; return what the URLs need."""
    from knock_sources import store
    from knock_sources.control import api_keys, sources
    from knock_sources.state import current_state
    from knock_sources.store import partitions, utcnow
    from knock_sources.store.control import Environment, EventLog, SourceEnvironment

    with app.app_context(), store.db.connection_context():
        state = current_state()
        development = Environment.get(Environment.slug == "development")
        key = api_keys.create("bench")
        environments = []
        for source_key in ("busy", "other"):
            source = sources.connect(state, development, key=source_key, name=source_key, provider_slug="custom_http")
            environments.append(SourceEnvironment.get(source=source, environment=development).id)
        now = utcnow()
        start = (now - timedelta(days=DAYS - 1)).replace(hour=0, minute=0, second=0, microsecond=0)
        for offset in range(0, DAYS, partitions.DAYS_AHEAD + 1):
            partitions.maintain(store.db, today=(start + timedelta(days=offset)).date())
        span = (now - start).total_seconds()
        busy, other = environments
        started = time.perf_counter()
        store.db.execute_sql(
            f"""
            INSERT INTO ks_event_log (source_environment_id, status, reason, event_type, idempotency_key, headers,
                                      body, raw_excerpt, verification_status, received_at, processed_at)
            SELECT CASE WHEN i %% 5 < 3 THEN {busy} ELSE {other} END,
                   s.status,
                   CASE WHEN s.status = 'rejected' THEN 'verification_failed' END,
                   CASE WHEN s.status = 'rejected' THEN NULL
                        WHEN i %% 1000 = 7 THEN 'rare.event' ELSE 'order.' || (i %% 4) END,
                   'evt_' || i,
                   '{{"content-type":"application/json","user-agent":"bench"}}',
                   CASE WHEN s.status <> 'rejected' THEN '{{"id":"evt_' || i || '","amount":' || i || '}}' END,
                   CASE WHEN s.status = 'rejected' THEN '{{"id":"evt_bad"}}' END,
                   'enforced:verified',
                   %s + make_interval(secs => %s * i / {EVENTS}),
                   %s
            FROM generate_series(0, {EVENTS - 1}) AS i,
            LATERAL (SELECT CASE WHEN i %% 100 < 90 THEN 'processed' WHEN i %% 100 < 95 THEN 'rejected'
                                 WHEN i %% 1000 < 999 THEN 'failed' ELSE 'idempotent' END AS status) AS s
            """,
            (start, span, now),
        )
        store.db.execute_sql(
            """
            INSERT INTO ks_action_log (event_log_id, action_type, action_parameters, action_payload, action_result,
                                       status, inserted_at)
            SELECT id, 'users_identify', '{"id":"body.id"}', '{"id":"u"}', '{}', 'success',
                   received_at + interval '40 milliseconds'
            FROM ks_event_log WHERE status = 'processed'
            """
        )
        loaded_s = time.perf_counter() - started
        store.db.execute_sql("ANALYZE")
        ids = [row_id for (row_id,) in EventLog.select(EventLog.id).order_by(EventLog.id).tuples().limit(1)]
        newest = EventLog.select(EventLog.id).order_by(EventLog.id.desc()).scalar()
        two_days_ago = now - timedelta(days=2)
        return {
            "key": key,
            "loaded_s": round(loaded_s, 1),
            "oldest": ids[0],
            "newest": newest,
            # Ids go to the sources in turn, 3 to ``busy`` then 2 to ``other``: this one is ``busy``'s.
            "middle": ids[0] + (newest - ids[0]) // 10 * 5,
            "hour_start": two_days_ago.strftime("%Y-%m-%dT%H:00:00Z"),
            "hour_end": two_days_ago.strftime("%Y-%m-%dT%H:59:59Z"),
        }


def lists(ids: dict) -> dict[str, str]:
    """Every kind of logs request, by name."""
    logs = "/v1/sources/busy/logs"
    return {
        "newest": logs,
        "newest, with actions": f"{logs}?include[]=actions",
        "older page (after)": f"{logs}?after={ids['middle']}",
        "newer page (before)": f"{logs}?before={ids['middle']}",
        "oldest page": f"{logs}?after={ids['oldest'] + 2000}",
        "status failed": f"{logs}?status=failed",
        "status idempotent (rare)": f"{logs}?status=idempotent",
        "status pending (none)": f"{logs}?status=pending",
        "status failed, older page": f"{logs}?status=failed&after={ids['middle']}",
        "event rare.event": f"{logs}?event=rare.event",
        "event absent": f"{logs}?event=never.sent",
        "event and status": f"{logs}?event=order.1&status=failed",
        "one hour two days ago": f"{logs}?starting_at={ids['hour_start']}&ending_at={ids['hour_end']}",
        "one log with actions": f"{logs}/{ids['middle']}",
    }


def timed(client, url: str, headers: dict) -> float:
    started = time.perf_counter()
    response = client.get(url, headers=headers)
    elapsed = (time.perf_counter() - started) * 1000
    assert response.status_code == 200, (url, response.status_code, response.get_data(as_text=True)[:300])
    return elapsed


def percentiles(times: list[float]) -> dict:
    times = sorted(times)
    return {
        "p50_ms": round(statistics.median(times), 2),
        "p99_ms": round(times[max(0, int(len(times) * 0.99) - 1)], 2),
        "max_ms": round(times[-1], 2),
    }


def plans(app, ids: dict) -> dict:
    """EXPLAIN the queries behind the lists: which scans each plan uses."""
    from knock_sources import store
    from knock_sources.control import event_logs, replay_selection
    from knock_sources.store.control import ActionLog, EventLog, Source, SourceEnvironment

    with app.app_context(), store.db.connection_context():
        busy = SourceEnvironment.select().join(Source).where(Source.key == "busy").get()
        newest_first = EventLog.id.desc()
        queries = {
            "list": event_logs.filtered(busy).order_by(newest_first).limit(26),
            "list after": event_logs.filtered(busy).where(EventLog.id < ids["middle"]).order_by(newest_first).limit(26),
            "status": event_logs.filtered(busy, status="idempotent").order_by(newest_first).limit(26),
            "status none": event_logs.filtered(busy, status="pending").order_by(newest_first).limit(26),
            "event": event_logs.filtered(busy, event="rare.event").order_by(newest_first).limit(26),
            "event none": event_logs.filtered(busy, event="never.sent").order_by(newest_first).limit(26),
            "log": EventLog.select().where((EventLog.id == ids["middle"]) & (EventLog.source_environment == busy)),
            "replay page": replay_selection.matching(busy.id, {"statuses": ["failed"]})
            .where((EventLog.id > ids["oldest"]) & (EventLog.id <= ids["newest"]))
            .order_by(EventLog.id)
            .limit(100),
            "replay count": replay_selection.matching(busy.id, {"statuses": ["failed"]})
            .select(EventLog.id)
            .limit(10001),
        }
        page = list(range(ids["middle"], ids["middle"] + 25))
        queries["actions of a page"] = ActionLog.select().where(ActionLog.event_log.in_(page)).order_by(ActionLog.id)
        found = {}
        for name, query in queries.items():
            sql, params = query.sql()
            (plan,) = store.db.execute_sql(f"EXPLAIN (FORMAT JSON) {sql}", params).fetchone()
            found[name] = sorted(set(_scans(plan[0]["Plan"])))
        return found


def _scans(node: dict):
    if "Scan" in node["Node Type"]:
        yield f"{node['Node Type']} {node.get('Index Name') or node.get('Relation Name', '')}".strip()
    for child in node.get("Plans", ()):
        yield from _scans(child)


def empty_tables(app) -> set[str]:
    """The tables of the schema that hold no rows (as of the last ANALYZE)."""
    from knock_sources import store

    with app.app_context(), store.db.connection_context():
        cursor = store.db.execute_sql(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND c.relkind = 'r' AND c.reltuples <= 0"
        )
        return {name for (name,) in cursor.fetchall()}


def purge(app) -> dict:
    """Time ``flask purge`` with a retention that drops the oldest day."""
    from knock_sources import store
    from knock_sources.store.control import EventLog

    app.config["LOG_RETENTION_DAYS"] = DAYS - 2
    with app.app_context(), store.db.connection_context():
        before = EventLog.select().count()
    started = time.perf_counter()
    result = app.test_cli_runner().invoke(args=["purge"])
    elapsed = time.perf_counter() - started
    assert result.exit_code == 0, result.output
    with app.app_context(), store.db.connection_context():
        after = EventLog.select().count()
    return {"seconds": round(elapsed, 2), "event_logs_removed": before - after, "output": result.stderr.strip()}


def main() -> None:
    os.environ.update(
        {
            "KNOCK_SOURCES_DATABASE_URL": postgres_url(SCHEMA),
            "KNOCK_SOURCES_SECRET_KEY": "bench-secret-key",
            "KNOCK_SOURCES_LOAD_PLUGIN_ENTRYPOINTS": "false",
        }
    )
    from app import create_app
    from knock_sources.store import schema

    app = create_app()
    with app.app_context():
        schema.migrate(app.config["ENVIRONMENTS"])
    ids = load(app)
    print(f"Loaded {EVENTS} event logs and their action logs in {ids['loaded_s']} s", file=sys.stderr)
    client = app.test_client()
    headers = {"Authorization": f"Bearer {ids['key']}"}
    results = {}
    for name, url in lists(ids).items():
        for _ in range(WARMUP):
            timed(client, url, headers)
        results[name] = {"url": url, **percentiles([timed(client, url, headers) for _ in range(ROUNDS)])}
        shown = results[name]
        print(f"{name:28} p50 {shown['p50_ms']:6.2f}   p99 {shown['p99_ms']:6.2f} ms", file=sys.stderr)
    explained = plans(app, ids)
    # The planner reads an empty partition (a day ahead, DEFAULT) sequentially: that costs nothing.
    empty = empty_tables(app)
    sequential = {
        name: [scan for scan in scans if scan.startswith("Seq Scan") and scan.split()[-1] not in empty]
        for name, scans in explained.items()
    }
    sequential = {name: scans for name, scans in sequential.items() if scans}
    purged = purge(app)
    print(f"flask purge of one day: {purged['seconds']} s ({purged['event_logs_removed']} event logs)", file=sys.stderr)
    worst = max(result["p99_ms"] for result in results.values())
    summary = {
        "event_logs": EVENTS,
        "days": DAYS,
        "rounds": ROUNDS,
        "load_seconds": ids["loaded_s"],
        "worst_list_p99_ms": worst,
        "list_target_p99_ms": LIST_TARGET_MS,
        "purge_one_day_seconds": purged["seconds"],
        "purge_target_seconds": PURGE_TARGET_S,
        "sequential_scans": sequential,
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(
        json.dumps({"summary": summary, "lists": results, "plans": explained, "purge": purged}, indent=2) + "\n"
    )
    print(
        f"Worst list p99: {worst} ms (target {LIST_TARGET_MS}); purge {purged['seconds']} s (target {PURGE_TARGET_S})"
    )
    if sequential:
        print(f"Sequential scans of a log: {sequential}", file=sys.stderr)


if __name__ == "__main__":
    main()

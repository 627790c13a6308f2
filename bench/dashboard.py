"""Dashboard pages with 100,000 event logs in PostgreSQL: p50 and p95 of every page.

``.venv/bin/python bench/dashboard.py`` (also run by ``make bench``). Needs
PostgreSQL at 127.0.0.1:5432 (database ``test``); uses its own schema.
Loads a Stripe source with 100,000 event logs over the last 48 hours (mostly
processed, some rejected, failed and idempotent; an action log for each
processed one), a custom source, 5,000 users, an audience of 2,000 members,
5,000 workflow runs and some variables, then requests every page through
the app (Flask's test client, signed in: the time is the app's and the
database's, not a network's) ``BENCH_ROUNDS`` times after a warm-up, and
writes the percentiles to ``bench/results/dashboard.json``. Target: every
p95 under 100 ms.
"""

from __future__ import annotations

import json
import os
import random
import re
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.run import postgres_url  # noqa: E402

SCHEMA = "ks_bench_dashboard"
EVENTS = int(os.environ.get("BENCH_EVENTS", "100000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "40"))
WARMUP = 3
RESULTS = ROOT / "bench" / "results" / "dashboard.json"
TARGET_MS = 100.0
BATCH = 2000


def load(app) -> dict:
    """Fill the database; return what the page URLs need."""
    from knock_sources import store
    from knock_sources.control import admins, sources, variables
    from knock_sources.state import current_state
    from knock_sources.store import FAILED, IDEMPOTENT, PROCESSED, REJECTED, SUCCESS, utcnow
    from knock_sources.store.control import ActionLog, Environment, EventLog, KnownEvent, SourceEnvironment
    from knock_sources.store.dataplane import Audience, AudienceMember, User, Workflow, WorkflowRun

    random.seed(7)
    with app.app_context(), store.db.connection_context():
        state = current_state()
        development = Environment.get(Environment.slug == "development")
        admins.create_or_reset("bench", "bench password")
        stripe = sources.connect(
            state,
            development,
            key="stripe",
            name="Stripe",
            provider_slug="stripe",
            signing_secret="whsec_bench",
        )
        sources.connect(state, development, key="app", name="App", provider_slug="custom_http")
        source_env = SourceEnvironment.get(source=stripe, environment=development)
        mapping = source_env.mappings.first()
        example = state.registry.providers["stripe"].example_payloads["invoice.paid"][0]
        now = utcnow()
        start = now - timedelta(hours=48)
        statuses = [PROCESSED] * 90 + [REJECTED] * 5 + [FAILED] * 3 + [IDEMPOTENT] * 2
        types = ["invoice.paid", "invoice.created", "customer.created"]
        for offset in range(0, EVENTS, BATCH):
            rows = []
            for index in range(offset, min(offset + BATCH, EVENTS)):
                status = random.choice(statuses)
                rejected = status == REJECTED
                rows.append(
                    {
                        "source_environment": source_env.id,
                        "status": status,
                        "reason": "verification_failed" if rejected else None,
                        "event_type": None if rejected else types[index % 3],
                        "idempotency_key": None if rejected else f"evt_{index}",
                        "headers": {"content-type": "application/json", "stripe-signature": "t=1,v1=abc"},
                        "body": None if rejected else {**example["body"], "id": f"evt_{index}"},
                        "raw_excerpt": '{"id": "evt_bad"}' if rejected else None,
                        "verification_status": "enforced:unverified" if rejected else "enforced:verified",
                        "received_at": start + timedelta(seconds=48 * 3600 * index / EVENTS),
                        "processed_at": None if rejected else now,
                    }
                )
            with store.db.atomic():
                first = EventLog.insert_many(rows).returning(EventLog.id).execute()
                ids = [row.id if hasattr(row, "id") else row[0] for row in first]
                ActionLog.insert_many(
                    [
                        {
                            "event_log": event_id,
                            "mapping": mapping.id,
                            "action_type": mapping.action_type,
                            "action_parameters": mapping.action_parameters,
                            "action_payload": {"id": "cus_1"},
                            "status": SUCCESS,
                        }
                        for event_id, row in zip(ids, rows, strict=True)
                        if row["status"] == PROCESSED
                    ]
                ).execute()
        for event_type in types:
            KnownEvent.create(
                source_environment=source_env,
                event_type=event_type,
                count=EVENTS // 3,
                sample_payload={"body": example["body"], "headers": {"content-type": "application/json"}},
            )
        with store.db.atomic():
            User.insert_many(
                [{"environment": development.id, "external_id": f"user_{n}", "name": f"User {n}"} for n in range(5000)]
            ).execute()
            audience = Audience.create(environment=development, key="customers")
            AudienceMember.insert_many(
                [{"audience": audience.id, "user_id": f"user_{n}"} for n in range(2000)]
            ).execute()
            workflow = Workflow.create(environment=development, key="invoice-paid", name="Invoice paid")
            Workflow.create(environment=development, key="invoice-created", name="Invoice created")
            WorkflowRun.insert_many(
                [
                    {
                        "run_id": f"00000000-0000-0000-0000-{n:012d}",
                        "environment": development.id,
                        "workflow": workflow.id,
                        "recipient_id": f"user_{n % 5000}",
                        "data": {"n": n},
                    }
                    for n in range(5000)
                ]
            ).execute()
        for number in range(10):
            variables.upsert_variable(state.keyring, f"VAR_{number}", {"value": str(number)})
        store.db.execute_sql("ANALYZE")
        newest = EventLog.select().order_by(EventLog.id.desc()).first()
        middle = EventLog.select().order_by(EventLog.id).offset(EVENTS // 2).first()
        rejected = EventLog.select().where(EventLog.status == REJECTED).order_by(EventLog.id.desc()).first()
        return {
            "newest": newest.id,
            "middle": middle.id,
            "rejected": rejected.id,
            "day_before": (now - timedelta(hours=30)).strftime("%Y-%m-%dT%H:%M"),
            "day_before_end": (now - timedelta(hours=29)).strftime("%Y-%m-%dT%H:%M"),
        }


def pages(ids: dict) -> dict[str, str]:
    """Every page of the dashboard (GET), by name."""
    base = "/development"
    source = f"{base}/sources/stripe"
    return {
        "sources": f"{base}/sources",
        "connect": f"{base}/connect/stripe",
        "overview (chart)": source,
        "first-event poll": f"{source}/first-event",
        "settings": f"{source}/settings",
        "mappings": f"{source}/mappings",
        "events received": f"{source}/events",
        "logs": f"{source}/logs",
        "logs, older page": f"{source}/logs?after={ids['middle']}",
        "logs, rejected": f"{source}/logs?status=rejected",
        "logs, event type": f"{source}/logs?event=invoice.created",
        "logs, one hour a day ago": f"{source}/logs?starting_at={ids['day_before']}&ending_at={ids['day_before_end']}",
        "logs, live tail": f"{source}/logs/newer?since={ids['newest'] - 50}",
        "log detail": f"{source}/logs/{ids['newest']}",
        "log detail, rejected": f"{source}/logs/{ids['rejected']}",
        "workflows": f"{base}/workflows",
        "workflow runs": f"{base}/workflows/invoice-paid",
        "users": f"{base}/data/users",
        "user": f"{base}/data/users/user_42",
        "objects": f"{base}/data/objects",
        "tenants": f"{base}/data/tenants",
        "audiences": f"{base}/data/audiences",
        "audience members": f"{base}/data/audiences/customers",
        "variables": f"{base}/variables",
        "variable edit": f"{base}/variables/VAR_1/edit",
    }


def timed(client, url: str) -> float:
    """Request ``url`` once; return the time in milliseconds."""
    started = time.perf_counter()
    response = client.get(url)
    elapsed = (time.perf_counter() - started) * 1000
    assert response.status_code == 200, (url, response.status_code)
    return elapsed


def measure(client, url: str) -> tuple[float, list[float]]:
    """Request ``url`` once cold, then ``ROUNDS`` times after a warm-up; return the times in milliseconds."""
    first = timed(client, url)
    for _ in range(WARMUP):
        timed(client, url)
    return first, [timed(client, url) for _ in range(ROUNDS)]


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
    started = time.perf_counter()
    ids = load(app)
    print(f"Loaded {EVENTS} event logs in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    client = app.test_client()
    login = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', login).group(1)
    signed = client.post("/login", data={"csrf_token": token, "username": "bench", "password": "bench password"})
    assert signed.status_code == 302
    results = {}
    for name, url in pages(ids).items():
        first, times = measure(client, url)
        times.sort()
        results[name] = {
            "url": url,
            "first_ms": round(first, 1),
            "p50_ms": round(statistics.median(times), 1),
            "p95_ms": round(times[max(0, int(len(times) * 0.95) - 1)], 1),
            "max_ms": round(times[-1], 1),
        }
        shown = results[name]
        print(f"{name:28} first {shown['first_ms']:6.1f}   p50 {shown['p50_ms']:6.1f}   p95 {shown['p95_ms']:6.1f} ms")
    worst = max(result["p95_ms"] for result in results.values())
    summary = {"event_logs": EVENTS, "rounds": ROUNDS, "worst_p95_ms": worst, "target_p95_ms": TARGET_MS}
    RESULTS.write_text(json.dumps({"summary": summary, "pages": results}, indent=2) + "\n")
    print(f"Worst p95: {worst} ms (target {TARGET_MS} ms); written to {RESULTS}")


if __name__ == "__main__":
    main()

"""Event-store throughput and experiment-report latency on PostgreSQL.

    python bench/experiments.py [--events 1000000] [--batch 500] [--postgres URL]

1. Creates a private database on the PostgreSQL server (dropped at the end) and migrates it.
2. Ingests synthetic shopper events for one experiment through the real ingestion path, the same two calls
   ``POST /api/events`` makes (``parse_events`` validation, then ``ingest_events`` with its insert-ignore), one
   transaction per batch: impressions carry 10 ranked products each (``impression_items`` rows), plus clicks,
   add-to-carts and purchases in four currencies, spread over 14 days. Event generation is not timed.
3. Stores one exposure per unit (the search path's insert-ignore, in bulk).
4. Runs ANALYZE, then times the dashboard's SQL rollup (``ab_report``) and the whole experiment report
   (rollup + statistics + per-language + 14-day cumulative series), cold and warm, and records the plan.

Prints JSON, then one summary line.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

LANGUAGES = ["en", "de", "zh", "ja", "es", "fr", "ar", "ru"]
CURRENCIES = [("USD", 80.0), ("EUR", 70.0), ("JPY", 9000.0), ("CNY", 500.0)]
SKUS = [f"SKU-{i:05d}" for i in range(5000)]


def generate_unit(rng: random.Random, unit: str, variant: str, start: dt.datetime) -> list[dict[str, Any]]:
    """About 10 events: 6 impressions (10 products each), ~3 clicks, some carts, ~0.4 purchases."""
    events: list[dict[str, Any]] = []
    when = start
    treated = variant == "treatment"
    for _ in range(rng.choice([3, 4, 5, 6, 7, 8, 9])):
        when = min(when + dt.timedelta(minutes=rng.randint(1, 600)), dt.datetime.now(dt.UTC))
        impression = uuid.uuid4().hex
        items = rng.sample(SKUS, 10)
        events.append(
            {
                "id": impression,
                "type": "impression",
                "unit": unit,
                "experiment": "bench",
                "variant": variant,
                "query": "wireless headphones",
                "language": rng.choice(LANGUAGES),
                "reranked": treated,
                # what the search served (issue 15's delivery check and guardrails read these)
                "rerank_status": "ok" if treated else "disabled",
                "rerank_depth": 100 if treated else 0,
                "search_ms": round(rng.lognormvariate(4.0 if treated else 3.5, 0.5), 1),
                **({"scorer": {"kind": "cross-encoder", "model_id": "BAAI/bge-reranker-v2-m3"}} if treated else {}),
                "ts": when.isoformat(),
                "items": [{"sku": sku, "position": i + 1} for i, sku in enumerate(items)],
            }
        )
        if rng.random() < (0.42 if treated else 0.40):
            position = rng.randint(1, 10)
            base = {"unit": unit, "sku": items[position - 1], "position": position, "impression_id": impression}
            events.append({"id": uuid.uuid4().hex, "type": "click", "ts": when.isoformat(), **base})
            if rng.random() < 0.2:
                events.append({"id": uuid.uuid4().hex, "type": "add_to_cart", "ts": when.isoformat(), **base})
            if rng.random() < 0.12:
                currency, price = rng.choice(CURRENCIES)
                events.append(
                    {
                        "id": uuid.uuid4().hex,
                        "type": "purchase",
                        "unit": unit,
                        "sku": base["sku"],
                        "value": round(price * rng.uniform(0.2, 3), 2),
                        "currency": currency,
                        "impression_id": impression,
                        "ts": when.isoformat(),
                    }
                )
    return events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=500, help="events per ingestion call (the API's max batch)")
    parser.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--keep", action="store_true", help="keep the database (prints its URL)")
    args = parser.parse_args()

    from sqlalchemy import text

    from experiments.guardrails import search_quality
    from experiments.manage import ExperimentSpec, VariantSpec, create_experiment, start_experiment
    from experiments.report import build_report
    from experiments.store import ingest_events, parse_events
    from experiments.store.aggregate import ab_report
    from experiments.store.currency import reporting_rates
    from experiments.store.experiment_models import Exposure
    from experiments.store.ingest import _dialect_insert
    from experiments.store.served import delivery_counts
    from shoprank import migrate
    from shoprank.db import Database
    from tests.shop_support import PostgresFactory

    factory = PostgresFactory(args.postgres)
    if not factory.available():
        sys.exit(f"PostgreSQL unreachable at {args.postgres}: {factory.error}")
    url = factory.create()
    try:
        migrate.upgrade(url)
        db = Database(url)
        rng = random.Random(42)
        now = dt.datetime.now(dt.UTC)
        stored = duplicates = 0
        batch: list[dict[str, Any]] = []
        exposures: list[dict[str, Any]] = []
        ingest_seconds = 0.0
        latencies: list[float] = []
        unit_index = 0

        def flush() -> None:
            nonlocal stored, duplicates, ingest_seconds, batch
            started = time.perf_counter()
            parsed = parse_events({"events": batch}, max_batch=args.batch)
            with db.session() as session:
                result = ingest_events(session, parsed)
            elapsed = time.perf_counter() - started
            ingest_seconds += elapsed
            latencies.append(elapsed * 1000)
            stored += result.stored
            duplicates += result.duplicates
            batch = []

        generated = 0
        while generated < args.events:
            unit = f"unit-{unit_index:07d}"
            variant = "control" if rng.random() < 0.5 else "treatment"
            start = now - dt.timedelta(days=14) + dt.timedelta(seconds=rng.randint(0, 13 * 86400))
            exposures.append(
                {
                    "experiment": "bench",
                    "unit_id": unit,
                    "variant": variant,
                    "language": rng.choice(LANGUAGES),
                    "market": None,
                    "surface": "api",
                    "exposed_at": start,
                }
            )
            unit_index += 1
            for event in generate_unit(rng, unit, variant, start):
                if generated >= args.events:
                    break
                batch.append(event)
                generated += 1
                if len(batch) == args.batch:
                    flush()
        if batch:
            flush()

        started = time.perf_counter()
        with db.session() as session:
            insert = _dialect_insert(session)
            for index in range(0, len(exposures), 5000):
                session.execute(
                    insert(Exposure).on_conflict_do_nothing(index_elements=["experiment", "unit_id"]),
                    exposures[index : index + 5000],
                )
            spec = ExperimentSpec(
                key="bench", name="bench", variants=[VariantSpec("control", rerank=False), VariantSpec("treatment")]
            )
            start_experiment(session, create_experiment(session, spec, "bench"), "bench")
        exposure_seconds = time.perf_counter() - started

        with db.engine.connect() as connection:
            connection.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
            counts = dict(
                connection.execute(
                    text(
                        "SELECT 'events', count(*) FROM events UNION ALL "
                        "SELECT 'impression_items', count(*) FROM impression_items"
                    )
                ).all()
            )
            sizes = dict(
                connection.execute(
                    text(
                        "SELECT relname, pg_total_relation_size(oid) FROM pg_class "
                        "WHERE relname IN ('events', 'impression_items', 'exposures')"
                    )
                ).all()
            )
        rates = reporting_rates("USD")
        rollup_ms: list[float] = []
        report_ms: list[float] = []
        served_ms: list[float] = []  # delivery counts + latency histogram + per-unit search quality
        with db.session() as session:
            from experiments.manage import get_experiment

            experiment = get_experiment(session, "bench")
            for _ in range(4):
                t0 = time.perf_counter()
                data = ab_report(session, "bench", rates)
                rollup_ms.append((time.perf_counter() - t0) * 1000)
                t0 = time.perf_counter()
                report = build_report(session, experiment, rates=rates)
                report_ms.append((time.perf_counter() - t0) * 1000)
                t0 = time.perf_counter()
                served = delivery_counts(session, "bench")
                search_quality(session, "bench", ["control", "treatment"], [1, 1], [], served)
                served_ms.append((time.perf_counter() - t0) * 1000)
            plan = _explain(session, rates)
        totals = data.totals()
        out = {
            "database": "postgresql",
            "events_requested": args.events,
            "events_stored": stored,
            "duplicates": duplicates,
            "rows": counts,
            "table_bytes": sizes,
            "units": len(exposures),
            "batch_size": args.batch,
            "ingest_seconds": round(ingest_seconds, 2),
            "events_per_second": round(stored / ingest_seconds, 1),
            "batch_latency_ms": {
                "p50": round(statistics.median(latencies), 1),
                "p95": round(sorted(latencies)[int(0.95 * (len(latencies) - 1))], 1),
            },
            "exposures_seconds": round(exposure_seconds, 2),
            "rollup_ms": {"cold": round(rollup_ms[0], 1), "warm_median": round(statistics.median(rollup_ms[1:]), 1)},
            "report_ms": {"cold": round(report_ms[0], 1), "warm_median": round(statistics.median(report_ms[1:]), 1)},
            "delivery_and_quality_ms": {
                "cold": round(served_ms[0], 1),
                "warm_median": round(statistics.median(served_ms[1:]), 1),
            },
            "report_days": len(report.series),
            "units_per_variant": {k: v.units for k, v in totals.items()},
            "ctr_per_variant": {k: round(v.clicks / v.impressions, 4) for k, v in totals.items()},
            "plan": plan,
        }
        print(json.dumps(out, indent=2))
        print(
            f"ingested {stored:,} events ({counts.get('impression_items', 0):,} impression items) at "
            f"{out['events_per_second']:,.0f} events/s in batches of {args.batch}; experiment report over "
            f"{len(exposures):,} units: SQL rollup {out['rollup_ms']['warm_median']:.0f} ms warm "
            f"({out['rollup_ms']['cold']:.0f} ms cold), full report {out['report_ms']['warm_median']:.0f} ms "
            f"(of which delivery + search quality {out['delivery_and_quality_ms']['warm_median']:.0f} ms)"
        )
        db.dispose()
    finally:
        if args.keep:
            print(f"kept {url}", file=sys.stderr)
        else:
            factory.drop(url)


def _explain(session: Any, rates: dict[str, float]) -> list[str]:
    """The rollup's PostgreSQL plan (EXPLAIN ANALYZE), to check the covering index is used."""
    from sqlalchemy import select, text
    from sqlalchemy.dialects import postgresql

    from experiments.store import aggregate

    captured: list[Any] = []
    real_execute = session.execute

    def capture(statement: Any, *a: Any, **k: Any) -> Any:
        captured.append(statement)
        return real_execute(statement, *a, **k)

    session.execute = capture
    try:
        aggregate.ab_report(session, "bench", rates)
    finally:
        session.execute = real_execute
    query = next(statement for statement in captured if hasattr(statement, "selected_columns"))
    compiled = query.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})
    del select
    session.execute(text(f"SET LOCAL work_mem = '{aggregate.REPORT_WORK_MEM}'"))
    rows = session.execute(text(f"EXPLAIN (ANALYZE, BUFFERS) {compiled}")).scalars().all()
    return [row for row in rows]


if __name__ == "__main__":
    main()

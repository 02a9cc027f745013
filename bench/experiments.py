"""Event-store throughput and experiment-report latency on PostgreSQL.

    python bench/experiments.py [--events 1000000] [--batch 500] [--postgres URL]

1. Creates a private database on the PostgreSQL server (dropped at the end) and migrates it.
2. Ingests synthetic shopper events for one experiment through the real ingestion path, the same two calls
   ``POST /api/events`` makes (``parse_events`` validation, then ``ingest_events`` with its insert-ignore), one
   transaction per batch: impressions carry 10 ranked products each (``impression_items`` rows), plus clicks,
   add-to-carts and purchases in four currencies, spread over 14 days. Event generation is not timed.
3. Stores one exposure per unit (the search path's insert-ignore, in bulk).
4. Runs ANALYZE, then times the dashboard's SQL rollup (``ab_report``) and the whole experiment report
   (rollup + statistics + per-language + 14-day cumulative series), cold and warm, and records the plan;
   the report again with the Bayesian engine and with CUPED (its extra pre-exposure query); and each search
   analytics view (overview, top / no-result / few-result / low-CTR queries, one query's page) over the 14 days.

Queries follow a Zipf-like popularity over 2,000 phrasings; 4 % of searches list no products and 5 % only 1-3.
About 40 % of shoppers have 1-4 searches before their first exposure (outside any experiment): CUPED's history.
``--reuse URL`` times an existing database (e.g. one kept with ``--keep``) without ingesting again.

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

from experiments.store import impression_ids  # noqa: E402 - after the path insert, as a script run needs

LANGUAGES = ["en", "de", "zh", "ja", "es", "fr", "ar", "ru"]
CURRENCIES = [("USD", 80.0), ("EUR", 70.0), ("JPY", 9000.0), ("CNY", 500.0)]
SKUS = [f"SKU-{i:05d}" for i in range(5000)]
QUERIES = [f"query {i}" for i in range(2000)]
QUERY_WEIGHTS = [1 / (rank + 1) for rank in range(len(QUERIES))]  # Zipf-like: a few queries dominate
BENCH_KEY = impression_ids.impression_key("bench/experiments.py")  # stands for the server's SHOPRANK_SECRET_KEY


def generate_unit(
    rng: random.Random, unit: str, variant: str, start: dt.datetime
) -> tuple[list[dict[str, Any]], dt.datetime]:
    """About 10 events: 6 impressions (10 products each, a few with none or 1-3), ~3 clicks, some carts, ~0.4
    purchases; for 40 % of units 1-4 searches come before exposure. A shopper's engagement (1-3) drives how much
    they search and click before and after exposure alike, which is what CUPED exploits. Returns events and
    the exposure time."""
    events: list[dict[str, Any]] = []
    when = start
    treated = variant == "treatment"
    engagement = rng.choice([1, 2, 3])
    history = rng.randint(1, engagement + 1) if rng.random() < 0.4 else 0
    click_rate = (0.42 if treated else 0.40) * (0.6 + 0.2 * engagement)
    exposed_at = start
    for index in range(2 * engagement + rng.randint(1, 5) + history):
        when = min(when + dt.timedelta(minutes=rng.randint(1, 600)), dt.datetime.now(dt.UTC))
        if index == history:
            exposed_at = when - dt.timedelta(seconds=1)
        exposed = index >= history
        served = treated and exposed  # reranked by the cross-encoder, as the delivery check expects
        shown = rng.random()
        items = rng.sample(SKUS, 0 if shown < 0.04 else rng.randint(1, 3) if shown < 0.09 else 10)
        query = rng.choices(QUERIES, QUERY_WEIGHTS)[0]
        # the id a server hands out with its answer (search analytics counts only signed impressions)
        impression = impression_ids.issue(BENCH_KEY, kind=impression_ids.SEARCH, query=query, items=len(items))
        events.append(
            {
                "id": impression,
                "type": "impression",
                "unit": unit,
                "experiment": "bench" if exposed else None,
                "variant": variant if exposed else None,
                "query": query,
                "language": rng.choice(LANGUAGES),
                "reranked": served,
                # what the search served (issue 15's delivery check and guardrails read these)
                "rerank_status": "ok" if served else "disabled",
                "rerank_depth": 100 if served else 0,
                "search_ms": round(rng.lognormvariate(4.0 if treated else 3.5, 0.5), 1),
                **({"scorer": {"kind": "cross-encoder", "model_id": "BAAI/bge-reranker-v2-m3"}} if served else {}),
                "ts": when.isoformat(),
                "items": [{"sku": sku, "position": i + 1} for i, sku in enumerate(items)],
            }
        )
        if not items:
            continue
        if rng.random() < click_rate:
            position = rng.randint(1, len(items))
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
    return events, exposed_at


def load(db: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Ingest the synthetic events through the real path, then store the exposures; returns the load numbers."""
    from experiments.manage import ExperimentSpec, VariantSpec, create_experiment, start_experiment
    from experiments.store import ingest_events, parse_events
    from experiments.store.experiment_models import Exposure
    from experiments.store.ingest import _dialect_insert

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
        parsed = parse_events({"events": batch}, max_batch=args.batch, impression_key=BENCH_KEY)
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
        language = rng.choice(LANGUAGES)
        events, exposed_at = generate_unit(rng, unit, variant, start)
        exposures.append(
            {
                "experiment": "bench",
                "unit_id": unit,
                "variant": variant,
                "language": language,
                "market": None,
                "surface": "api",
                "exposed_at": exposed_at,
            }
        )
        unit_index += 1
        for event in events:
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
    return {
        "events_requested": args.events,
        "events_stored": stored,
        "duplicates": duplicates,
        "units": len(exposures),
        "batch_size": args.batch,
        "ingest_seconds": round(ingest_seconds, 2),
        "events_per_second": round(stored / ingest_seconds, 1),
        "batch_latency_ms": {
            "p50": round(statistics.median(latencies), 1),
            "p95": round(sorted(latencies)[int(0.95 * (len(latencies) - 1))], 1),
        },
        "exposures_seconds": round(exposure_seconds, 2),
    }


def timed(call: Any, runs: int = 4) -> tuple[dict[str, float], Any]:
    """Cold (first) and warm (median of the rest) milliseconds of ``call()``, and its last result."""
    times = []
    result = None
    for _ in range(runs):
        started = time.perf_counter()
        result = call()
        times.append((time.perf_counter() - started) * 1000)
    return {"cold": round(times[0], 1), "warm_median": round(statistics.median(times[1:]), 1)}, result


def time_analytics(session: Any) -> dict[str, dict[str, float]]:
    """Each search analytics view over the last 14 days, as the dashboard runs it."""
    from experiments.store import search_analytics as sa

    now = dt.datetime.now(dt.UTC)
    filters = sa.Filters(start=now - dt.timedelta(days=14), end=now + dt.timedelta(minutes=1))
    german = sa.Filters(start=filters.start, end=filters.end, language="de")
    views = {
        "overview": lambda: sa.overview(session, filters),
        "top_queries": lambda: sa.query_ranking(session, filters, "top"),
        "no_result_queries": lambda: sa.query_ranking(session, filters, "no_results"),
        "few_result_queries": lambda: sa.query_ranking(session, filters, "few_results"),
        "low_ctr_queries": lambda: sa.query_ranking(session, filters, "low_ctr"),
        "top_queries_one_language": lambda: sa.query_ranking(session, german, "top"),
        "query_page": lambda: (
            sa.query_by_variant(session, filters, QUERIES[0]),
            sa.clicks_per_sku(session, filters, QUERIES[0]),
        ),
    }
    return {name: timed(view)[0] for name, view in views.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=500, help="events per ingestion call (the API's max batch)")
    parser.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--keep", action="store_true", help="keep the database (prints its URL)")
    parser.add_argument("--reuse", help="URL of a database loaded earlier (with --keep): time it, load nothing")
    args = parser.parse_args()

    from sqlalchemy import text

    from experiments.guardrails import search_quality
    from experiments.manage import get_experiment
    from experiments.report import build_report
    from experiments.store.aggregate import ab_report
    from experiments.store.currency import reporting_rates
    from experiments.store.served import delivery_counts
    from shoprank import migrate
    from shoprank.db import Database
    from tests.shop_support import PostgresFactory

    factory = PostgresFactory(args.postgres)
    if not factory.available():
        sys.exit(f"PostgreSQL unreachable at {args.postgres}: {factory.error}")
    url = args.reuse or factory.create()
    try:
        migrate.upgrade(url)
        db = Database(url)
        loaded = {} if args.reuse else load(db, args)
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
        load_average = Path("/proc/loadavg").read_text().split()[:3]
        with db.session() as session:
            experiment = get_experiment(session, "bench")
            rollup_ms, data = timed(lambda: ab_report(session, "bench", rates))
            report_ms, report = timed(lambda: build_report(session, experiment, rates=rates))
            bayesian_ms, _ = timed(lambda: build_report(session, experiment, rates=rates, engine="bayesian"))
            cuped_ms, cuped = timed(lambda: build_report(session, experiment, rates=rates, cuped=True))

            def delivery_and_quality() -> Any:
                served = delivery_counts(session, "bench")
                return search_quality(session, "bench", ["control", "treatment"], [1, 1], [], served)

            served_ms, _ = timed(delivery_and_quality)
            plan = _explain(session, rates)
            analytics_ms = time_analytics(session)
        totals = data.totals()
        clicks = next(c for c in cuped.analysis["comparisons"] if c["metric"] == "clicks_per_unit")
        out = {
            "database": "postgresql",
            **loaded,
            "rows": counts,
            "table_bytes": sizes,
            "load_average_before_timing": load_average,
            "rollup_ms": rollup_ms,
            "report_ms": report_ms,
            "report_bayesian_ms": bayesian_ms,
            "report_cuped_ms": cuped_ms,
            "cuped_clicks_per_unit_variance_reduction": round(clicks["cuped"]["variance_reduction"], 4),
            "cuped_history": cuped.cuped["variants"],
            "analytics_ms": analytics_ms,
            "delivery_and_quality_ms": served_ms,
            "report_days": len(report.series),
            "units_per_variant": {k: v.units for k, v in totals.items()},
            "ctr_per_variant": {k: round(v.clicks / v.impressions, 4) for k, v in totals.items()},
            "plan": plan,
        }
        print(json.dumps(out, indent=2))
        slowest = max(analytics_ms.items(), key=lambda item: item[1]["warm_median"])
        print(
            f"{counts.get('events', 0):,} events"
            + (f" ingested at {loaded['events_per_second']:,.0f} events/s" if loaded else "")
            + f"; experiment report: SQL rollup {rollup_ms['warm_median']:.0f} ms warm ({rollup_ms['cold']:.0f} ms "
            f"cold), full report {report_ms['warm_median']:.0f} ms, Bayesian {bayesian_ms['warm_median']:.0f} ms, "
            f"CUPED {cuped_ms['warm_median']:.0f} ms; search analytics: slowest view {slowest[0]} "
            f"{slowest[1]['warm_median']:.0f} ms warm ({slowest[1]['cold']:.0f} ms cold); delivery + search quality "
            f"{served_ms['warm_median']:.0f} ms; load {' '.join(load_average)}"
        )
        db.dispose()
    finally:
        if args.keep or args.reuse:
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

"""Search latency on the demo catalog, in-process reranking with the offline scorer.

    python bench/search.py [--rounds 5] [--catalog data/catalog/demo_products.jsonl]

Builds a throw-away SQLite database, imports the catalog (embeddings included),
then times every demo query through the full search flow (first stage, passages,
rerank under the deadline) and through the JSON API (Flask test client, so
serialisation is included but no network). Prints JSON, then one summary line.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchstats import percentile  # noqa: E402  (bench/ is the script directory)

FALLBACK_QUERIES = [
    "wireless noise cancelling headphones",
    "无线降噪耳机",
    "سماعات لاسلكية",
    "zapatillas para correr mujer",
    "ноутбук для работы",
    "ランニングウォッチ",
    "Kaffeemühle",
    "poêle antiadhésive",
    "iPhone 15 case",
    "camping tent 2 person",
]


def summarize(samples: list[float]) -> dict[str, float]:
    return {
        "n": len(samples),
        "p50_ms": round(percentile(samples, 50), 2),
        "p95_ms": round(percentile(samples, 95), 2),
        "mean_ms": round(statistics.fmean(samples), 2),
        "max_ms": round(max(samples), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", type=Path, default=REPO / "data" / "catalog" / "demo_products.jsonl")
    parser.add_argument("--queries", type=Path, default=REPO / "data" / "catalog" / "demo_queries.jsonl")
    parser.add_argument("--rounds", type=int, default=5, help="≥ 2: the first round runs with a cold score cache")
    args = parser.parse_args()
    if args.rounds < 2:
        parser.error("--rounds must be at least 2: round 1 is the cold-cache round, later rounds are the repeats")
    logging.basicConfig(level=logging.ERROR)

    from catalog.importer import import_file
    from catalog.vectors import embedder
    from shoprank import migrate
    from shoprank.config import Settings
    from shoprank.db import Database
    from webapp import create_app

    catalog = args.catalog if args.catalog.exists() else REPO / "tests" / "fixtures" / "mini_catalog.jsonl"
    if args.queries.exists():
        queries = [json.loads(line)["query"] for line in args.queries.read_text(encoding="utf-8").splitlines() if line]
    else:
        queries = FALLBACK_QUERIES

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        migrate.upgrade(url)
        db = Database(url)
        started = time.perf_counter()
        report = import_file(db, catalog, embedder().passages)
        import_seconds = time.perf_counter() - started
        db.dispose()

        settings = Settings.from_env(
            {}, database_url=url, reranker_allow_download=False, redis_url=None, broker_url=None
        )
        app = create_app(settings)
        services = app.extensions["shoprank"]
        services.index.refresh()
        client = app.test_client()
        for query in ("warm up", "Aufwärmen", "热身"):  # lazy initialisation, not the measured queries
            services.search.search(query, limit=20)

        # Round 1 finds the pair-score cache empty for its queries (what a new query costs);
        # later rounds repeat them and hit the cache (what a popular query costs).
        cold: list[float] = []
        flow: list[float] = []
        api: list[float] = []
        stages: dict[str, list[float]] = {}
        reranked = 0
        for round_number in range(args.rounds):
            for query in queries:
                result = services.search.search(query, limit=20)
                (cold if round_number == 0 else flow).append(result.timings_ms["total"])
                reranked += result.reranked
                for stage in ("first_stage_dense", "first_stage_lexical", "rerank"):
                    if stage in result.timings_ms:
                        stages.setdefault(stage, []).append(result.timings_ms[stage])
                t0 = time.perf_counter()
                response = client.get("/api/search", query_string={"q": query, "limit": 20})
                api.append((time.perf_counter() - t0) * 1000)
                assert response.status_code == 200
        scorer = services.scorer_info() or {}
        services.close()

    out = {
        "catalog": str(catalog.relative_to(REPO)),
        "products": report.rows,
        "queries": len(queries),
        "rounds": args.rounds,
        "import_seconds": round(import_seconds, 2),
        "scorer": {"model_id": scorer.get("model_id"), "kind": scorer.get("kind")},
        "first_stage_top_k": settings.first_stage_top_k,
        "reranked_fraction": round(reranked / (len(flow) + len(cold)), 3),
        "search_flow_cold_cache": summarize(cold),
        "search_flow": summarize(flow),
        "api_search": summarize(api),
        "stages_p50_ms": {name: round(percentile(v, 50), 2) for name, v in stages.items()},
    }
    print(json.dumps(out, ensure_ascii=False, indent=2))
    print(
        f"search p50 {out['search_flow_cold_cache']['p50_ms']} ms / p95 {out['search_flow_cold_cache']['p95_ms']} ms "
        f"for new queries, p50 {out['search_flow']['p50_ms']} ms / p95 {out['search_flow']['p95_ms']} ms repeated "
        f"(API p50 {out['api_search']['p50_ms']} ms); {len(cold) + len(flow)} searches, {report.rows} products, "
        f"top-{settings.first_stage_top_k}, scorer {scorer.get('kind')}"
    )


if __name__ == "__main__":
    main()

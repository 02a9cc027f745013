"""Ranking quality on the labelled demo queries: each first-stage retriever, their fusion, and the reranker.

    python bench/relevance.py [--model DIR_OR_HUB_ID] [--top-k 100]

Relevance claims belong here, measured on graded judgements
(``data/catalog/demo_queries.jsonl``: grade 3 = what the shopper wants, 2 = good
alternative, 1 = related, plus keyword-trap products that must not come first):

- nDCG@10 (gain 2^grade - 1),
- recall@K of grade-3 products in the first stage (what the reranker can work with),
- trap@1: how often a keyword-trap accessory is the top result,
- cross-lingual hit@10: non-English queries with a grade-3 product in another language in the top 10.

Price-capped queries (``data/catalog/demo_price_queries.jsonl``, 11 languages: "auriculares inalámbricos por
menos de 100 euros", "无线降噪耳机 1000元以下", ...) reuse a labelled query's judgements, keeping only the products
whose converted price is within the limit. They compare the query as typed (the limit's words and number go to
retrieval) with the query understood (limit cut out, applied as a price filter inside the first stage), by nDCG@10
and out_of_range@10 (share of the top 10 outside the limit). The labelled queries also go through the price
parser, which must find no limit in any of them (their metrics are then exactly today's).

The reranker is whatever ``load_scorer`` finds (``--model``); without weights that is the
e5 bi-encoder fallback, reported as such. ``--depths 10,20,50`` adds ``reranked_depth_N``:
only the first N first-stage candidates reranked, the rest kept below in first-stage order
(what deadline-aware depth serves under load). Prints JSON, then one summary line.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import tempfile
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def dcg(grades: Sequence[int]) -> float:
    return sum((2**g - 1) / math.log2(rank + 2) for rank, g in enumerate(grades))


def ndcg_at(ranked: Sequence[str], judgements: dict[str, int], k: int = 10) -> float:
    ideal = dcg(sorted(judgements.values(), reverse=True)[:k])
    return dcg([judgements.get(sku, 0) for sku in ranked[:k]]) / ideal if ideal else 0.0


def evaluate(rankings: dict[str, list[str]], queries: list[dict], languages: dict[str, str], k: int) -> dict:
    """Mean metrics of one system over all queries; ``rankings`` maps query id → ranked skus."""
    ndcg, recall, trap_top, cross_hits, cross_total = [], [], 0, 0, 0
    for q in queries:
        ranked = rankings[q["id"]]
        judgements = {sku: int(g) for sku, g in q["relevant"].items()}
        ndcg.append(ndcg_at(ranked, judgements))
        wanted = {sku for sku, g in judgements.items() if g == 3}
        recall.append(len(wanted & set(ranked[:k])) / len(wanted))
        trap_top += bool(ranked) and ranked[0] in set(q.get("traps", []))
        foreign = {sku for sku in wanted if languages[sku] != q["language"]}
        if q["language"] != "en" and foreign:
            cross_total += 1
            cross_hits += bool(foreign & set(ranked[:10]))
    n = len(queries)
    return {
        "ndcg@10": round(sum(ndcg) / n, 4),
        f"recall@{k}": round(sum(recall) / n, 4),
        "trap@1": round(trap_top / n, 4),
        "cross_lingual_hit@10": round(cross_hits / cross_total, 4) if cross_total else None,
    }


def price_capped(index, products: list[dict], reranker, labelled: list[dict], path: Path, top_k: int) -> dict:
    """Price-capped queries, typed as-is versus understood (limit cut out and applied inside the first stage)."""
    from search.filters import FxRates, SearchFilters
    from search.query_price import parse_query
    from search.shopper_currency import LANGUAGE_CURRENCY

    fx = FxRates()
    base = {q["id"]: q for q in labelled}
    cases = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    systems: dict[str, dict[str, list[float]]] = {"typed": {}, "understood": {}}
    recognised, skipped = 0, []
    for case in cases:
        parsed = parse_query(case["query"], language=case["language"], currency=LANGUAGE_CURRENCY[case["language"]])
        if parsed.price is None:
            skipped.append(case["id"])
            continue
        recognised += 1
        filters = SearchFilters.of(min_price=parsed.price.min_price, max_price=parsed.price.max_price)
        in_range = {
            p["sku"]
            for p in products
            if filters.matches(
                category=p["category"],
                brand=p.get("brand"),
                language=p["language"],
                stock=int(p.get("stock", 1)),
                reference_price=fx.to_reference(Decimal(str(p["price"])), p["currency"]),
                fx=fx,
            )  # fmt: skip
        }
        judgements = {sku: int(g) for sku, g in base[case["base"]]["relevant"].items() if sku in in_range}
        if not any(g >= 2 for g in judgements.values()):
            skipped.append(case["id"])  # nothing good within the limit: nDCG is undefined
            continue
        for name, text, limit in (("typed", case["query"], None), ("understood", parsed.text, filters)):
            first_stage = index.first_stage(text, top_k, limit, language=case["language"])
            fused = [h.sku for h in first_stage.hits]
            outcome = reranker.rerank(text, [first_stage.items[s].passage for s in fused])
            ranked = [fused[r.index] for r in outcome.results]
            metrics = systems[name]
            metrics.setdefault("ndcg@10", []).append(ndcg_at(ranked, judgements))
            top = ranked[:10]
            metrics.setdefault("out_of_range@10", []).append(sum(s not in in_range for s in top) / max(len(top), 1))
    return {
        "queries": len(cases),
        "recognised": recognised,
        "languages": sorted({c["language"] for c in cases}),
        "skipped": skipped,
        **{name: {k: round(sum(v) / len(v), 4) for k, v in m.items()} for name, m in systems.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", type=Path, default=REPO / "data" / "catalog" / "demo_products.jsonl")
    parser.add_argument("--queries", type=Path, default=REPO / "data" / "catalog" / "demo_queries.jsonl")
    parser.add_argument("--price-queries", type=Path, default=REPO / "data" / "catalog" / "demo_price_queries.jsonl")
    parser.add_argument("--model", default=None, help="cross-encoder hub id or directory (default: settings)")
    parser.add_argument("--top-k", type=int, default=100)
    parser.add_argument("--depths", default="", help="comma-separated rerank depth caps, e.g. 10,20,30,50")
    args = parser.parse_args()
    depths = sorted({int(d) for d in args.depths.split(",") if d.strip()})
    logging.basicConfig(level=logging.WARNING)

    from catalog.importer import import_file
    from catalog.vectors import embedder
    from reranking import Reranker, load_scorer
    from reranking.scorers.bi_encoder import E5FallbackScorer
    from search.index import CatalogIndex
    from search.query_price import parse_query
    from shoprank import migrate
    from shoprank.config import Settings
    from shoprank.db import Database

    queries = [json.loads(line) for line in args.queries.read_text(encoding="utf-8").splitlines() if line.strip()]
    spec = Settings.from_env({}).scorer_spec(allow_download=False, **({"model": args.model} if args.model else {}))
    scorer = load_scorer(spec)
    reranker = Reranker(scorer)

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/relevance.db"
        migrate.upgrade(url)
        db = Database(url)
        import_file(db, args.catalog, embedder().passages)
        index = CatalogIndex(db, embedder(), Path(tmp) / "index").refresh()
        if isinstance(scorer, E5FallbackScorer):  # as the app does: rerank in the space retrieval used
            scorer.use_centering(index.centering)

        catalog_lines = args.catalog.read_text(encoding="utf-8").splitlines()
        catalog = [json.loads(line) for line in catalog_lines if line.strip()]
        languages = {p["sku"]: p["language"] for p in catalog}
        systems: dict[str, dict[str, list[str]]] = {}
        for q in queries:
            first_stage = index.first_stage(q["query"], args.top_k, language=q["language"])  # the shopper's
            for name in ("dense", "lexical"):  # each retriever's own order, among the fused candidates
                ranked = sorted((h for h in first_stage.hits if name in h.ranks), key=lambda h: h.ranks[name])
                systems.setdefault(f"first_stage_{name}", {})[q["id"]] = [h.sku for h in ranked]
            fused = [h.sku for h in first_stage.hits]
            systems.setdefault("first_stage_fused", {})[q["id"]] = fused
            outcome = reranker.rerank(q["query"], [first_stage.items[s].passage for s in fused])
            systems.setdefault("reranked", {})[q["id"]] = [fused[r.index] for r in outcome.results]
            score_of = {r.index: r.score for r in outcome.results}
            for depth in depths:
                head = sorted(range(min(depth, len(fused))), key=lambda i: -score_of[i])  # stable: ties keep order
                systems.setdefault(f"reranked_depth_{depth}", {})[q["id"]] = [fused[i] for i in head] + fused[depth:]
        products = index.size
        centering = index.centering
        price = price_capped(index, catalog, reranker, queries, args.price_queries, args.top_k)
        db.dispose()

    misread = [q["query"] for q in queries if parse_query(q["query"], language=q["language"], currency="USD").price]

    report = {
        "queries": len(queries),
        "price_limits_found_in_labelled_queries": misread,
        "price_capped": price,
        "products": products,
        "top_k": args.top_k,
        "lexical_weight": index.lexical_weight,
        "language_centering": centering.fingerprint if centering else None,
        "reranker": {k: scorer.info.as_dict()[k] for k in ("model_id", "kind", "backend", "dtype")},
        "systems": {name: evaluate(r, queries, languages, args.top_k) for name, r in systems.items()},
    }
    print(json.dumps(report, ensure_ascii=False, indent=2))
    fused, reranked = report["systems"]["first_stage_fused"], report["systems"]["reranked"]
    print(
        f"nDCG@10 first stage {fused['ndcg@10']:.3f} -> reranked {reranked['ndcg@10']:.3f} "
        f"({scorer.info.kind}); trap@1 {fused['trap@1']:.2f} -> {reranked['trap@1']:.2f}; "
        f"cross-lingual hit@10 {fused['cross_lingual_hit@10']:.2f} -> {reranked['cross_lingual_hit@10']:.2f}; "
        f"recall@{args.top_k} {fused[f'recall@{args.top_k}']:.2f} over {len(queries)} queries; "
        f"price-capped ({price['queries']} queries, {len(price['languages'])} languages, reranked): nDCG@10 "
        f"{price['typed']['ndcg@10']:.3f} typed -> {price['understood']['ndcg@10']:.3f} understood, out of range@10 "
        f"{price['typed']['out_of_range@10']:.2f} -> {price['understood']['out_of_range@10']:.2f}"
        + "".join(f"; depth {d}: {report['systems'][f'reranked_depth_{d}']['ndcg@10']:.3f}" for d in depths)
    )


if __name__ == "__main__":
    main()

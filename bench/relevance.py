"""Relevance through the path a shopper's search takes, per labelled set, arm and language.

    python bench/relevance.py [--sets demo-dev,demo-heldout,dev-catalog,heldout-catalog] [--arms rerank,first_stage]
                              [--workdir DIR] [--out FILE.json]

Every query goes through ``ShopSearch`` (price words parsed into a filter, the relevance gate, intent tiers,
out-of-stock demotion, facets), exactly as ``/api/search`` runs it, with the deployment's default scorer (the e5
bi-encoder fallback where no cross-encoder weights are on the machine, reported as such) in the ``rerank`` arm and
first-stage order in the ``first_stage`` arm.

Sets (``data/catalog``):

- ``demo-dev``: the demo queries (and price-capped queries) whose ids are *not* listed in ``demo_split.json``.
  With ``dev-catalog``, the only sets any threshold or weight of the search is chosen on.
- ``demo-heldout``: the ids listed in ``demo_split.json`` (30 %, drawn by hash before any tuning): never tuned on.
- ``dev-catalog``: ``dev2/`` — a second catalog written independently of the demo and of the search code, in
  the held-out catalog's shape (merchant display paths, messy titles, no stock column) but with other product
  families: a *development* set, so decisions can be checked on an unseen-looking catalog without touching the
  held-out one.
- ``heldout-catalog``: ``heldout/`` — another catalog and its queries, written independently of the demo and of
  the search code (different categories, merchant-style titles, no stock column), never tuned on.

Metrics: nDCG@10 (gain 2^grade − 1), MRR (first grade-3 product), trap@3 (share of queries with a listed trap in
the top 3), zero-result rate on queries that have relevant products, related rate (answered ``total: 0`` with
related products), and for each set's nonsense list the share answered empty (``total: 0``). Prints JSON, then one
summary line; ``--out`` also writes the JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
DATA = REPO / "data" / "catalog"


def dcg(grades: Sequence[int]) -> float:
    return sum((2**g - 1) / math.log2(rank + 2) for rank, g in enumerate(grades))


def ndcg_at(ranked: Sequence[str], judgements: dict[str, int], k: int = 10) -> float:
    ideal = dcg(sorted(judgements.values(), reverse=True)[:k])
    return dcg([judgements.get(sku, 0) for sku in ranked[:k]]) / ideal if ideal else 0.0


def reciprocal_rank(ranked: Sequence[str], wanted: set[str]) -> float:
    return next((1.0 / rank for rank, sku in enumerate(ranked, start=1) if sku in wanted), 0.0)


@dataclass(frozen=True)
class LabelledSet:
    name: str
    catalog: Path
    queries: list[dict[str, Any]]
    nonsense: list[str]


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _price_cases(products: list[dict[str, Any]], labelled: list[dict[str, Any]], path: Path) -> list[dict[str, Any]]:
    """Price-capped queries: the base query's judgements, only for products whose converted price is in range."""
    from search.filters import FxRates, SearchFilters
    from search.query_price import parse_query
    from search.shopper_currency import LANGUAGE_CURRENCY

    fx, base = FxRates(), {q["id"]: q for q in labelled}
    cases = []
    for case in _jsonl(path):
        parsed = parse_query(case["query"], language=case["language"], currency=LANGUAGE_CURRENCY[case["language"]])
        if parsed.price is None or case["base"] not in base:
            continue
        limit = SearchFilters.of(min_price=parsed.price.min_price, max_price=parsed.price.max_price)
        in_range = {p["sku"] for p in products if limit.matches(
            category=p["category"], brand=p.get("brand"), language=p["language"], stock=1,
            reference_price=fx.to_reference(Decimal(str(p["price"])), p["currency"]), fx=fx)}  # fmt: skip
        judged = {sku: g for sku, g in base[case["base"]]["relevant"].items() if sku in in_range}
        if any(g == 3 for g in judged.values()):
            traps = [t for t in base[case["base"]].get("traps", []) if t in in_range]
            cases.append({**case, "relevant": judged, "traps": traps})
    return cases


def labelled_sets(names: Sequence[str]) -> list[LabelledSet]:
    demo_products = _jsonl(DATA / "demo_products.jsonl")
    demo = _jsonl(DATA / "demo_queries.jsonl")
    demo += _price_cases(demo_products, demo, DATA / "demo_price_queries.jsonl")
    heldout_ids = set(json.loads((DATA / "demo_split.json").read_text())["heldout"])
    nonsense = (DATA / "demo_nonsense.txt").read_text(encoding="utf-8").split("\n")
    sets = {
        "demo-dev": LabelledSet("demo-dev", DATA / "demo_products.jsonl",
                                [q for q in demo if q["id"] not in heldout_ids], []),
        "demo-heldout": LabelledSet("demo-heldout", DATA / "demo_products.jsonl",
                                    [q for q in demo if q["id"] in heldout_ids], [n for n in nonsense if n.strip()]),
    }  # fmt: skip
    for name, folder in (("dev-catalog", DATA / "dev2"), ("heldout-catalog", DATA / "heldout")):
        if (folder / "queries.jsonl").exists():
            sets[name] = LabelledSet(
                name,
                folder / "products.jsonl",
                _jsonl(folder / "queries.jsonl"),
                [n for n in (folder / "nonsense.txt").read_text(encoding="utf-8").split("\n") if n.strip()],
            )
    return [sets[name] for name in names if name in sets]


class _Arm:
    """A resolver that gives every search one config: the rerank arm or the first-stage-only arm."""

    def __init__(self, rerank: bool) -> None:
        from experiments.ranking import Assignment, RankingConfig

        self._assignment = Assignment(None, None, RankingConfig(rerank=rerank))

    def resolve(self, unit_id: str | None, context: Any) -> Any:
        return self._assignment

    def invalidate(self) -> None:
        pass


@contextlib.contextmanager
def shop_for(catalog: Path, workdir: Path | None) -> Iterator[Any]:
    """A migrated SQLite shop with ``catalog`` imported and indexed (reused from ``workdir`` when built there)."""
    from catalog.importer import import_file
    from catalog.vectors import embedder
    from search.index import CatalogIndex
    from shoprank import migrate
    from shoprank.db import Database

    with tempfile.TemporaryDirectory() as tmp:
        root = (workdir / catalog.parent.name / catalog.stem) if workdir else Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{root}/shop.db"
        fresh = not (root / "index").exists()
        migrate.upgrade(url)
        db = Database(url)
        if fresh:
            import_file(db, catalog, embedder().passages)
            CatalogIndex(db, embedder(), root / "index").refresh()
        db.dispose()
        yield url, root / "index"


def evaluate(shop: Any, labelled: LabelledSet) -> dict[str, Any]:
    """Metrics of one arm over one set, overall and per query language."""
    from search.shop_search import ShopQuery
    from search.shopper_currency import LANGUAGE_CURRENCY

    per_query: list[dict[str, Any]] = []
    for q in labelled.queries:
        page = shop.search(ShopQuery(text=q["query"], currency=LANGUAGE_CURRENCY.get(q["language"], "USD"),
                                     language=q["language"], per_page=100))  # fmt: skip
        ranked = [hit.item.sku for hit in page.hits]
        judged = {sku: int(g) for sku, g in q["relevant"].items()}
        per_query.append({
            "id": q["id"], "language": q["language"], "total": page.total, "match": getattr(page, "match", "matched"),
            "ndcg@10": ndcg_at(ranked, judged),
            "mrr": reciprocal_rank(ranked, {s for s, g in judged.items() if g == 3}),
            "trap@3": bool(set(ranked[:3]) & set(q.get("traps", []))),
            "top3": ranked[:3],
        })  # fmt: skip
    nonsense = [shop.search(ShopQuery(text=text, currency="USD", per_page=10)).total == 0 for text in labelled.nonsense]

    def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
        n = len(rows)
        return {
            "queries": n,
            "ndcg@10": round(sum(r["ndcg@10"] for r in rows) / n, 4),
            "mrr": round(sum(r["mrr"] for r in rows) / n, 4),
            "trap@3": round(sum(r["trap@3"] for r in rows) / n, 4),
            "zero_result_rate": round(sum(r["total"] == 0 for r in rows) / n, 4),
            "related_rate": round(sum(r["match"] == "related" for r in rows) / n, 4),
        }

    languages = sorted({r["language"] for r in per_query})
    return {
        **summary(per_query),
        "nonsense_empty": round(sum(nonsense) / len(nonsense), 4) if nonsense else None,
        "nonsense_queries": len(nonsense),
        "by_language": {lang: summary([r for r in per_query if r["language"] == lang]) for lang in languages},
        "zero_result_queries": [r["id"] for r in per_query if r["total"] == 0],
        "per_query": per_query,
    }


def run(set_names: Sequence[str], arms: Sequence[str], workdir: Path | None) -> dict[str, Any]:
    from reranking import MemoryScoreCache, Reranker, load_scorer
    from reranking.dispatch import InProcessDispatcher
    from search.shop_search import ShopSearch
    from shoprank.config import Settings
    from webapp.services import build_services

    report: dict[str, Any] = {"sets": {}}
    for labelled in labelled_sets(set_names):
        with shop_for(labelled.catalog, workdir) as (url, index_dir):
            settings = Settings.from_env({}, database_url=url, index_dir=str(index_dir), redis_url=None,
                                         broker_url=None, reranker_allow_download=False, env="test")  # fmt: skip
            scorer = load_scorer(settings.scorer_spec(allow_download=False))
            dispatcher = InProcessDispatcher({"default": Reranker(scorer, MemoryScoreCache())}, "default")
            results: dict[str, Any] = {}
            for arm in arms:
                services = build_services(settings, dispatcher=dispatcher, resolver=_Arm(arm == "rerank"))
                services.search.deadline_ms = 60_000  # quality, not latency: never fall back on a slow machine
                services.index.refresh_if_changed()
                started = time.perf_counter()
                results[arm] = evaluate(ShopSearch(services.search), labelled)
                results[arm]["seconds"] = round(time.perf_counter() - started, 1)
                services.db.dispose()
            report["sets"][labelled.name] = {
                "catalog": str(labelled.catalog.relative_to(REPO)),
                "products": services.index.size,
                "scorer": {k: scorer.info.as_dict()[k] for k in ("model_id", "kind", "backend")},
                "arms": results,
            }
    return report


def markdown(report: dict[str, Any], before: dict[str, Any] | None = None) -> str:
    """The tables of docs/performance.md: every set and arm, then nDCG@10 per query language (``before`` beside)."""

    def cell(now: float | None, then: float | None) -> str:
        if now is None:
            return "–"
        return f"{then:.3f} → **{now:.3f}**" if then is not None else f"{now:.3f}"

    lines = ["| set | arm | queries | nDCG@10 | MRR | trap@3 | zero-result | nonsense empty |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
    for name, body in report["sets"].items():
        for arm, m in body["arms"].items():
            old = ((before or {}).get("sets", {}).get(name, {}).get("arms", {}).get(arm)) or {}
            lines.append(
                f"| {name} | {arm} | {m['queries']} | "
                + " | ".join(cell(m[k], old.get(k)) for k in ("ndcg@10", "mrr", "trap@3", "zero_result_rate"))
                + f" | {cell(m['nonsense_empty'], old.get('nonsense_empty'))} |"
            )
    lines += ["", "| set (rerank arm) | " + " | ".join(["language", "queries", "nDCG@10", "MRR", "trap@3"]) + " |",
              "| --- | --- | ---: | ---: | ---: | ---: |"]  # fmt: skip
    for name, body in report["sets"].items():
        rerank = body["arms"].get("rerank")
        if not rerank:
            continue
        for language, m in rerank["by_language"].items():
            lines.append(f"| {name} | {language} | {m['queries']} | {m['ndcg@10']:.3f} | {m['mrr']:.3f} | "
                         f"{m['trap@3']:.2f} |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default="demo-dev,demo-heldout,dev-catalog,heldout-catalog")
    parser.add_argument("--arms", default="rerank,first_stage")
    parser.add_argument("--workdir", type=Path, default=None, help="keep built shops here and reuse them")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--markdown", type=Path, default=None, help="print the tables of a saved report and exit")
    parser.add_argument("--before", type=Path, default=None, help="with --markdown: a report to show beside")
    args = parser.parse_args()
    if args.markdown:
        before = json.loads(args.before.read_text()) if args.before else None
        print(markdown(json.loads(args.markdown.read_text()), before))
        return
    logging.basicConfig(level=logging.WARNING)
    report = run(args.sets.split(","), args.arms.split(","), args.workdir)
    text = json.dumps(report, ensure_ascii=False, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    parts = []
    for name, body in report["sets"].items():
        for arm, m in body["arms"].items():
            parts.append(f"{name}/{arm}: nDCG@10 {m['ndcg@10']:.3f} MRR {m['mrr']:.3f} trap@3 {m['trap@3']:.2f} "
                         f"zero {m['zero_result_rate']:.2f} nonsense-empty {m['nonsense_empty']}")  # fmt: skip
    print("; ".join(parts))


if __name__ == "__main__":
    main()

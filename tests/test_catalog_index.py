"""The first stage at catalog scale: index versions on disk, a live delta, filters inside retrieval.

Catalogs here are written straight into a real database with generated vectors (no embedding), the way
``bench/catalog_scale.py`` loads a million products; only queries are embedded (e5, real).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import event, update

from catalog.models import Product, ProductEmbedding
from catalog.removal import delete_products
from catalog.vectors import (
    DENSE_TEXT_VERSION,
    EMBEDDING_DIM,
    EMBEDDING_MODEL_ID,
    dense_hash,
    embedder,
    vector_to_bytes,
)
from search.filters import PriceBound, SearchFilters
from search.index import CatalogIndex
from search.lexical_index import LexicalIndex, PostingsBuilder
from search.vector_index import VectorIndex, plan_layout, save
from shoprank import migrate
from shoprank.db import Database, utcnow

WORDS = ["lamp", "kettle", "chair", "desk", "mug", "blanket", "tripod", "router", "speaker", "backpack"]


def add_products(db: Database, specs: list[dict], rng: np.random.Generator) -> None:
    """Products with a current stored vector each (as the importer leaves them)."""
    with db.session() as session:
        for spec in specs:
            product = Product(
                sku=spec["sku"],
                title=spec["title"],
                description=spec.get("description", ""),
                price=Decimal(spec.get("price", "10.00")),
                currency=spec.get("currency", "EUR"),
                category=spec.get("category", "home"),
                language=spec.get("language", "en"),
                brand=spec.get("brand"),
                stock=spec.get("stock", 5),
                attributes={},
            )
            session.add(product)
            session.flush()
            vector = rng.normal(size=EMBEDDING_DIM).astype(np.float32)
            product.dense_hash = dense_hash(
                {"title": product.title, "description": product.description, "brand": product.brand,
                 "category": product.category, "attributes": {}}
            )  # fmt: skip
            session.add(
                ProductEmbedding(
                    product_id=product.id,
                    model_id=EMBEDDING_MODEL_ID,
                    passage_format_version=DENSE_TEXT_VERSION,
                    text_hash=product.dense_hash,
                    dim=EMBEDDING_DIM,
                    vector=vector_to_bytes(vector / np.linalg.norm(vector)),
                )
            )


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog_db(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'catalog.db'}"
    else:
        url = request.getfixturevalue("postgres_factory").create()
    migrate.upgrade(url)
    db = Database(url)
    rng = np.random.default_rng(7)
    specs = [
        {
            "sku": f"S{i:04d}",
            "title": f"{WORDS[i % len(WORDS)]} model {i}",
            "price": f"{5 + i % 90}.00",
            "category": ["home", "office", "outdoor"][i % 3],
            "brand": ["Acme", "Borealis", "Cumulo"][i % 3],
            "language": ["en", "de", "zh"][i % 3],
        }
        for i in range(300)
    ]
    add_products(db, specs, rng)
    yield db
    db.dispose()


def wait_until(predicate, seconds: float = 5.0) -> float:
    """Seconds until ``predicate()`` held; fails after ``seconds`` (the visibility promise)."""
    started = time.monotonic()
    while not predicate():
        assert time.monotonic() - started < seconds, "change not visible within the promised time"
        time.sleep(0.05)
    return time.monotonic() - started


def skus(index: CatalogIndex, query: str, filters: SearchFilters | None = None) -> list[str]:
    return [hit.sku for hit in index.refresh_if_changed().first_stage(query, 100, filters).hits]


def test_catalog_changes_reach_searches_within_seconds_without_a_rebuild(catalog_db, tmp_path):
    # vectors are random here, so let words decide the fused order
    index = CatalogIndex(catalog_db, embedder(), tmp_path / "index", poll_interval=0.2, lexical_weight=4.0)
    version = index.state.version.name
    assert index.state.version.manifest["with_vector"] == 300  # stored vectors are current: none embedded here
    # written seconds before the build, inside the re-read margin, yet nothing is held twice in memory
    assert not index.state.delta.overrides and not index.state.delta.docs
    cheap = SearchFilters.of(max_price=PriceBound(Decimal("20"), "EUR"))
    assert "S0010" in skus(index, "lamp model 10", cheap)  # 15.00 EUR

    # price: an override of the row's filter column, no new document
    with catalog_db.session() as session:
        session.execute(
            update(Product).where(Product.sku == "S0010").values(price=Decimal("45.00"), updated_at=utcnow())
        )
    wait_until(lambda: "S0010" not in skus(index, "lamp model 10", cheap))
    assert "S0010" in skus(index, "lamp model 10")

    # stock: in_stock filter follows
    with catalog_db.session() as session:
        session.execute(update(Product).where(Product.sku == "S0011").values(stock=0, updated_at=utcnow()))
    wait_until(lambda: "S0011" not in skus(index, "kettle model 11", SearchFilters.of(in_stock=True)))
    # a listing without a query sorts by the overridden stock too: sold out, S0011 leaves the first five
    listed, total = index.browse(SearchFilters.of(categories=["outdoor"]), "en", 5)
    assert "S0011" not in [item.sku for item in listed] and total == 100

    # text: a renamed product is found by its new words
    with catalog_db.session() as session:
        session.execute(
            update(Product).where(Product.sku == "S0012").values(title="zorblax hammock", updated_at=utcnow())
        )
    wait_until(lambda: skus(index, "zorblax")[:1] == ["S0012"])

    # a new product, and a deleted one
    add_products(
        catalog_db, [{"sku": "NEW1", "title": "quenbyl thermos", "category": "outdoor"}], np.random.default_rng(1)
    )
    wait_until(lambda: skus(index, "quenbyl", SearchFilters.of(categories=["outdoor"]))[:1] == ["NEW1"])
    with catalog_db.session() as session:
        assert delete_products(session, ["S0013", "NOPE"]) == ["S0013"]
    wait_until(lambda: "S0013" not in skus(index, "desk model 13"))

    assert index.state.version.name == version  # all of it without building a new version
    wait_until(lambda: index.refresh_if_changed().size == 300)  # +1 new, -1 deleted
    assert dict(index.category_counts())["outdoor"] == 101


def test_repeated_searches_read_no_product_rows_until_one_changes(catalog_db, tmp_path):
    """Hydration re-uses the rows it read while the delta shows no change to them; a change is served fresh
    after the next poll, and a search never reads a product row it already holds."""
    index = CatalogIndex(catalog_db, embedder(), tmp_path / "index", poll_interval=0.2, lexical_weight=4.0)
    product_reads: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        if "FROM products" in statement and "products.id IN" in statement:  # a hydration (not a change poll)
            product_reads.append(statement)

    event.listen(catalog_db.engine, "before_cursor_execute", count)
    try:
        first = index.refresh_if_changed().first_stage("lamp model 10", 50)
        assert first.items["S0010"].price == Decimal("15.00") and len(product_reads) == 1
        for _ in range(3):
            again = index.refresh_if_changed().first_stage("lamp model 10", 50)
            assert [h.sku for h in again.hits] == [h.sku for h in first.hits]
        assert len(product_reads) == 1  # the same 50 products, held: no row read again

        with catalog_db.session() as session:
            session.execute(
                update(Product).where(Product.sku == "S0010").values(price=Decimal("45.00"), updated_at=utcnow())
            )
        wait_until(lambda: index.refresh_if_changed().first_stage("lamp model 10", 50).items["S0010"].price == 45)
        reads = len(product_reads)
        index.refresh_if_changed().first_stage("lamp model 10", 50)
        assert len(product_reads) == reads  # the changed row was read once, and is held again
    finally:
        event.remove(catalog_db.engine, "before_cursor_execute", count)


def test_filters_select_inside_the_index_and_a_new_version_takes_over(catalog_db, tmp_path):
    index = CatalogIndex(catalog_db, embedder(), tmp_path / "index", poll_interval=0.0)
    only = SearchFilters.of(brands=["borealis"], languages=["de"], categories=["office"])
    found = index.first_stage("chair", 100, only)
    assert found.hits and found.matching == 100
    assert {item.brand for item in found.items.values()} == {"Borealis"}
    assert {item.language for item in found.items.values()} == {"de"}
    assert index.first_stage("chair", 100, SearchFilters.of(categories=["nothing"])).hits == []

    other = CatalogIndex(catalog_db, embedder(), tmp_path / "index", poll_interval=0.0)
    first = other.state.version.name
    index.refresh()  # a build job elsewhere publishes a new version
    other.refresh_if_changed()
    assert other.state.version.name == index.state.version.name != first


def test_two_processes_share_one_copy_of_the_index_pages(catalog_db, tmp_path):
    """Each process maps the version's files; their pages are shared, not copied per process."""
    index = CatalogIndex(catalog_db, embedder(), tmp_path / "index")
    path = index.state.version.path
    script = textwrap.dedent(
        f"""
        import sys, numpy as np
        from search.vector_index import VectorIndex
        vectors = VectorIndex.open(__import__("pathlib").Path({str(path)!r}))
        assert float(np.asarray(vectors.vectors).sum()) == float(np.asarray(vectors.vectors).sum())  # touch every page
        print("ready", flush=True)
        sys.stdin.readline()
        """
    )
    processes = [
        subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    try:
        for process in processes:
            assert process.stdout.readline().strip() == "ready"
        for process in processes:
            mapping = vector_mapping(process.pid, path / "vectors.npy")
            assert mapping["Rss"] > 0
            assert mapping["Shared_Clean"] >= 0.9 * mapping["Rss"], mapping  # both map the same page-cache pages
            assert mapping["Private_Dirty"] == 0, mapping
    finally:
        for process in processes:
            process.communicate("\n", timeout=30)


def vector_mapping(pid: int, file: Path) -> dict[str, int]:
    """The kB counters of one process's mapping of ``file`` (from /proc/PID/smaps)."""
    counters: dict[str, int] = {}
    inside = False
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        if "-" in line.split(" ", 1)[0]:
            inside = line.rstrip().endswith(str(file))
        elif inside and line.endswith(" kB"):
            name, value = line.split(":", 1)
            counters[name] = counters.get(name, 0) + int(value.split()[0])
    return counters


def clustered(rows: int, dim: int, clusters: int, rng: np.random.Generator) -> np.ndarray:
    centres = rng.normal(size=(clusters, dim))
    data = centres[rng.integers(0, clusters, rows)] + 0.6 * rng.normal(size=(rows, dim))
    return (data / np.linalg.norm(data, axis=1, keepdims=True)).astype(np.float32)


def test_ivf_recall_and_filtered_search_against_exact(tmp_path):
    rng = np.random.default_rng(0)
    vectors = clustered(60_000, 32, 300, rng)
    layout = plan_layout(vectors)
    assert len(layout.centroids) > 1  # above IVF_MIN_ROWS: a real inverted file
    np.save(tmp_path / "vectors.npy", vectors[layout.order])
    save(tmp_path, layout)
    index = VectorIndex.open(tmp_path)
    stored = np.load(tmp_path / "vectors.npy")
    queries = clustered(50, 32, 300, rng)
    recalls = []
    for query in queries:
        rows, _ = index.search(query, 100)
        exact = set(np.argsort(-(stored @ query))[:100].tolist())
        recalls.append(len(exact & set(rows.tolist())) / 100)
    assert np.mean(recalls) >= 0.95

    allowed = rng.random(len(stored)) < 0.3  # an unselective filter: probed lists, then the mask
    rows, _ = index.search(queries[0], 100, allowed)
    assert len(rows) == 100 and allowed[rows].all()
    selective = np.zeros(len(stored), bool)
    selective[rng.choice(len(stored), 500, replace=False)] = True  # a selective one: exact over those rows
    rows, scores = index.search(queries[0], 20, selective)
    exact_rows = np.flatnonzero(selective)[np.argsort(-(stored[selective] @ queries[0]))[:20]]
    assert rows.tolist() == exact_rows.tolist()


def test_bm25_postings_score_like_the_formula_and_outside_documents_compare(tmp_path):
    documents = [["red", "lamp", "lamp"], ["blue", "lamp"], ["red", "chair"], ["desk"]]
    builder = PostingsBuilder()
    for tokens in documents:
        builder.add(tokens)
    builder.save(tmp_path)
    lexical = LexicalIndex.open(tmp_path)
    rows, scores = lexical.search(["red", "lamp"], 10)
    assert rows.tolist()[0] == 0 and set(rows.tolist()) == {0, 1, 2}  # "desk" shares nothing
    for row, score in zip(rows, scores, strict=True):
        assert lexical.weigh(["red", "lamp"], documents[row]) == pytest.approx(float(score), rel=1e-5)
    allowed = np.array([False, True, True, True])
    assert 0 not in lexical.search(["red", "lamp"], 10, allowed)[0].tolist()
    assert lexical.search(["unknown"], 10)[0].size == 0


def test_a_product_only_words_find_reaches_the_candidates():
    """Dense hits fill top_k; the best lexical-only hits still make the candidate list (at its tail)."""
    from search.index import keep_best_lexical
    from search.retrieval import FusedHit

    dense_only = [FusedHit(f"d{i}", 1 / (61 + i), {"dense": i + 1}) for i in range(100)]
    lexical_only = [FusedHit(f"l{i}", 0.25 / (61 + i), {"lexical": i + 1}) for i in range(30)]
    kept = keep_best_lexical(dense_only + lexical_only, 100)
    assert len(kept) == 100
    assert kept[:90] == dense_only[:90]
    assert [h.sku for h in kept[90:]] == [f"l{i}" for i in range(10)]
    assert keep_best_lexical(dense_only[:50] + lexical_only, 100) == (dense_only[:50] + lexical_only)[:100]

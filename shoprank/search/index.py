"""The in-memory catalog the search reads: product fields, passages, the dense matrix and the BM25 index.

Built from the database in one pass (products joined with their stored
embeddings) and swapped atomically on refresh, so a search never sees half a
catalog and never queries the database.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import numpy as np
from sqlalchemy import func, select

from reranking.language_centering import LanguageCentering
from reranking.scorers.bi_encoder import E5Embedder
from reranking.text import clean_text
from shoprank.catalog.models import Product, ProductEmbedding
from shoprank.db import Database
from shoprank.search.embeddings import (
    EMBEDDING_DIM,
    dense_text,
    is_current,
    product_passage,
    vector_from_bytes,
)
from shoprank.search.retrieval import DEFAULT_LEXICAL_WEIGHT, DenseRetriever, HybridRetriever, LexicalRetriever

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CatalogItem:
    id: int
    sku: str
    title: str
    description: str
    price: Decimal
    currency: str
    category: str
    language: str
    brand: str | None
    image: str | None
    stock: int
    attributes: dict[str, Any]
    passage: str

    def as_mapping(self) -> dict[str, Any]:
        return {
            "sku": self.sku,
            "title": self.title,
            "description": self.description,
            "price": self.price,
            "currency": self.currency,
            "brand": self.brand,
            "attributes": self.attributes,
        }


def lexical_text(item: CatalogItem) -> str:
    """Title twice (a title match matters more than a description match), brand, category, description, attributes."""
    attributes = " ".join(str(v) for v in item.attributes.values() if isinstance(v, str | int | float))
    return " ".join(
        [
            item.title,
            item.title,
            item.brand or "",
            item.category.replace("-", " "),
            clean_text(item.description),
            attributes,
        ]
    )


@dataclass(frozen=True)
class CatalogSnapshot:
    items: list[CatalogItem]
    matrix: np.ndarray
    retriever: HybridRetriever
    fingerprint: tuple[Any, ...]
    #: Fitted on this catalog's vectors and languages; shared with the e5 fallback scorer (None: one language).
    centering: LanguageCentering | None = None
    built_at: float = field(default_factory=time.time)
    embedded_on_load: int = 0  # products whose stored vector was missing or stale

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_sku", {item.sku: item for item in self.items})

    by_sku: dict[str, CatalogItem] = field(init=False, repr=False)

    @property
    def size(self) -> int:
        return len(self.items)


def catalog_fingerprint(db: Database) -> tuple[Any, ...]:
    """Changes whenever a product is added, removed or updated: (count, max id, newest update)."""
    with db.session() as session:
        count, max_id, newest = session.execute(
            select(func.count(Product.id), func.max(Product.id), func.max(Product.updated_at))
        ).one()
    return (count, max_id, newest.isoformat() if isinstance(newest, datetime) else newest)


def build_snapshot(
    db: Database, embedder: E5Embedder, lexical_weight: float = DEFAULT_LEXICAL_WEIGHT
) -> CatalogSnapshot:
    fingerprint = catalog_fingerprint(db)
    with db.session() as session:
        rows = session.execute(
            select(Product, ProductEmbedding)
            .outerjoin(ProductEmbedding, ProductEmbedding.product_id == Product.id)
            .order_by(Product.id)
        ).all()
    items: list[CatalogItem] = []
    vectors: list[np.ndarray | None] = []
    for product, stored in rows:
        item = CatalogItem(
            id=product.id,
            sku=product.sku,
            title=product.title,
            description=product.description or "",
            price=Decimal(product.price),
            currency=product.currency,
            category=product.category,
            language=product.language,
            brand=product.brand,
            image=product.image,
            stock=product.stock,
            attributes=dict(product.attributes or {}),
            passage="",
        )
        passage = product_passage(item.as_mapping())
        item = dataclasses.replace(item, passage=passage)
        items.append(item)
        usable = stored is not None and is_current(
            stored.model_id, stored.passage_format_version, stored.text_hash, product.dense_hash
        )
        vectors.append(vector_from_bytes(stored.vector, stored.dim) if usable else None)

    missing = [i for i, v in enumerate(vectors) if v is None]
    if missing:
        log.warning(
            "%d product(s) have no current stored embedding; embedding them in memory now "
            "(run `shoprank catalog embed` to store them)",
            len(missing),
        )
        fresh = embedder.passages([dense_text(dataclasses.asdict(items[i])) for i in missing])
        for i, vector in zip(missing, fresh, strict=True):
            vectors[i] = vector
    matrix = np.vstack(vectors).astype(np.float32) if vectors else np.empty((0, EMBEDDING_DIM), np.float32)
    if items:  # the fallback scorer reads the same passages: never embed them twice
        embedder.remember([item.passage for item in items], matrix)
    skus = [item.sku for item in items]
    centering = LanguageCentering.fit(matrix, [item.language for item in items]) if items else None
    retriever = HybridRetriever(
        [DenseRetriever(skus, matrix, embedder, centering), LexicalRetriever(skus, [lexical_text(i) for i in items])],
        weights={"lexical": lexical_weight},
    )
    return CatalogSnapshot(items, matrix, retriever, fingerprint, centering, embedded_on_load=len(missing))


class CatalogIndex:
    """Holds the current snapshot; ``refresh`` rebuilds it, ``refresh_if_changed`` only when the catalog moved.

    ``refresh_if_changed`` lets a running server pick up a ``shoprank catalog
    import`` done by another process: searches call it, and at most one check per
    ``check_interval`` seconds costs one small aggregate query.
    """

    def __init__(
        self,
        db: Database,
        embedder: E5Embedder,
        check_interval: float = 10.0,
        lexical_weight: float = DEFAULT_LEXICAL_WEIGHT,
    ) -> None:
        self._db = db
        self._embedder = embedder
        self._lock = threading.Lock()
        self._snapshot: CatalogSnapshot | None = None
        self._checked_at = 0.0
        self.check_interval = check_interval
        self.lexical_weight = lexical_weight
        #: Called with each new snapshot (e.g. to hand its language centering to the fallback scorer).
        self.on_refresh: list[Callable[[CatalogSnapshot], None]] = []

    @property
    def snapshot(self) -> CatalogSnapshot:
        snapshot = self._snapshot
        if snapshot is None:
            return self.refresh()
        return snapshot

    def refresh(self) -> CatalogSnapshot:
        with self._lock:
            started = time.perf_counter()
            snapshot = build_snapshot(self._db, self._embedder, self.lexical_weight)
            for listener in self.on_refresh:
                listener(snapshot)
            self._snapshot = snapshot
            self._checked_at = time.monotonic()
        log.info("catalog index: %d products loaded in %.0f ms", snapshot.size, (time.perf_counter() - started) * 1000)
        return snapshot

    def refresh_if_changed(self) -> CatalogSnapshot:
        snapshot = self.snapshot
        now = time.monotonic()
        if now - self._checked_at < self.check_interval:
            return snapshot
        self._checked_at = now
        try:
            if catalog_fingerprint(self._db) != snapshot.fingerprint:
                return self.refresh()
        except Exception:  # a database hiccup must not fail a search that can run on the old snapshot
            log.exception("catalog change check failed; keeping the loaded catalog")
        return snapshot

    def get(self, skus: Sequence[str]) -> list[CatalogItem]:
        by_sku = self.snapshot.by_sku
        return [by_sku[s] for s in skus if s in by_sku]

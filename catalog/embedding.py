"""The embedding stage: compute the first-stage vector of every product whose stored vector is not current.

Separate from the import on purpose: import commits rows fast (searchable lexically
at once), and this stage makes them searchable densely as vectors land. Work is
found with one query (no vector, another model, an older text format, or a text hash
that differs from ``products.dense_hash``), taken in id order in chunks, and each
chunk's vectors are committed as soon as they arrive. Interrupting it loses at most
the chunks in flight; running it again picks up exactly what is still stale.

Where vectors are computed is a backend: ``LocalEmbedding`` in this process, or
``workers.embed_client.CeleryEmbedding`` on any number of embed workers.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from sqlalchemy import ColumnElement, and_, func, insert, or_, select, update
from sqlalchemy.orm import Session

from catalog.models import Category, Product, ProductEmbedding
from catalog.progress import Progress
from catalog.vectors import (
    DENSE_TEXT_VERSION,
    EMBED_BATCH,
    EMBEDDING_DIM,
    EMBEDDING_MODEL_ID,
    dense_text,
    text_hash,
    vector_to_bytes,
)
from shoprank.db import Database, utcnow

DEFAULT_CHUNK = 64


@dataclass(frozen=True, slots=True)
class DenseItem:
    product_id: int
    text: str
    hash: str


class EmbeddingBackend(Protocol):
    """Turns chunks of texts into vectors; may work on several chunks at once, yields them in any order."""

    def embed_chunks(self, chunks: Iterator[list[DenseItem]]) -> Iterator[tuple[list[DenseItem], np.ndarray]]: ...


class LocalEmbedding:
    """In this process, with ``embed`` (e.g. ``catalog.vectors.embedder().passages``)."""

    def __init__(self, embed: Callable[[Sequence[str]], np.ndarray]) -> None:
        self.embed = embed

    def embed_chunks(self, chunks: Iterator[list[DenseItem]]) -> Iterator[tuple[list[DenseItem], np.ndarray]]:
        for chunk in chunks:
            parts = [
                np.asarray(self.embed([item.text for item in chunk[i : i + EMBED_BATCH]]), dtype=np.float32)
                for i in range(0, len(chunk), EMBED_BATCH)
            ]
            yield chunk, np.concatenate(parts) if parts else np.empty((0, EMBEDDING_DIM), np.float32)


def vector_is_stale() -> ColumnElement[bool]:
    """SQL: the product (joined with its embedding, outer) has no current vector."""
    return or_(
        ProductEmbedding.product_id.is_(None),
        Product.dense_hash.is_(None),
        ProductEmbedding.model_id != EMBEDDING_MODEL_ID,
        ProductEmbedding.passage_format_version != DENSE_TEXT_VERSION,
        ProductEmbedding.text_hash != Product.dense_hash,
    )


def vector_is_current() -> ColumnElement[bool]:
    """SQL: the product (joined with its embedding, inner or outer) has a current vector. For the index."""
    return and_(
        Product.dense_hash.is_not(None),
        ProductEmbedding.model_id == EMBEDDING_MODEL_ID,
        ProductEmbedding.passage_format_version == DENSE_TEXT_VERSION,
        ProductEmbedding.text_hash == Product.dense_hash,
    )


def count_stale(session: Session) -> int:
    return (
        session.scalar(
            select(func.count(Product.id))
            .outerjoin(ProductEmbedding, ProductEmbedding.product_id == Product.id)
            .where(vector_is_stale())
        )
        or 0
    )


def next_stale(session: Session, after_id: int, limit: int) -> list[DenseItem]:
    """Up to ``limit`` stale products with id > ``after_id``, with the dense text to embed."""
    rows = session.execute(
        select(
            Product.id,
            Product.title,
            Product.brand,
            Product.category,
            Product.description,
            Product.attributes,
            Category.name,
            Category.path,
        )
        .outerjoin(ProductEmbedding, ProductEmbedding.product_id == Product.id)
        .outerjoin(Category, Category.slug == Product.category)
        .where(Product.id > after_id, vector_is_stale())
        .order_by(Product.id)
        .limit(limit)
    ).all()
    items = []
    for row in rows:
        text = dense_text(
            {
                "title": row.title,
                "brand": row.brand,
                "category": row.category,
                "description": row.description,
                "attributes": row.attributes,
                "category_name": row.name,
                "category_path": row.path,
            }
        )
        items.append(DenseItem(row.id, text, text_hash(text)))
    return items


def store_vectors(session: Session, items: Sequence[DenseItem], vectors: np.ndarray) -> None:
    """Upsert the vectors and set each product's ``dense_hash`` to the hash of the text embedded."""
    if vectors.shape != (len(items), EMBEDDING_DIM):
        raise RuntimeError(f"embedder returned shape {vectors.shape}, expected ({len(items)}, {EMBEDDING_DIM})")
    now = utcnow()
    ids = [item.product_id for item in items]
    existing = set(session.scalars(select(ProductEmbedding.product_id).where(ProductEmbedding.product_id.in_(ids))))
    rows = [
        {
            "product_id": item.product_id,
            "model_id": EMBEDDING_MODEL_ID,
            "passage_format_version": DENSE_TEXT_VERSION,
            "text_hash": item.hash,
            "dim": EMBEDDING_DIM,
            "vector": vector_to_bytes(vector),
            "updated_at": now,
        }
        for item, vector in zip(items, vectors, strict=True)
    ]
    new = [row for row in rows if row["product_id"] not in existing]
    if new:
        session.execute(insert(ProductEmbedding), new)
    if len(new) < len(rows):
        session.execute(update(ProductEmbedding), [row for row in rows if row["product_id"] in existing])
    # Backfills rows imported before dense_hash existed; a category renamed since import also lands here.
    session.execute(update(Product), [{"id": item.product_id, "dense_hash": item.hash} for item in items])


@dataclass
class EmbedReport:
    embedded: int = 0
    stale_at_start: int = 0
    seconds: float = 0.0

    @property
    def per_second(self) -> float:
        return self.embedded / self.seconds if self.seconds else 0.0


def _chunks(db: Database, chunk_size: int, limit: int | None) -> Iterator[list[DenseItem]]:
    after_id, taken = 0, 0
    while limit is None or taken < limit:
        size = chunk_size if limit is None else min(chunk_size, limit - taken)
        with db.session() as session:
            items = next_stale(session, after_id, size)
        if not items:
            return
        after_id, taken = items[-1].product_id, taken + len(items)
        yield items


def embed_catalog(
    db: Database,
    backend: EmbeddingBackend,
    *,
    chunk_size: int = DEFAULT_CHUNK,
    limit: int | None = None,
    progress: Progress | None = None,
) -> EmbedReport:
    """Embed every stale product (at most ``limit``), committing each chunk as its vectors arrive."""
    started = time.perf_counter()
    with db.session() as session:
        stale = count_stale(session)
    report = EmbedReport(stale_at_start=stale)
    total = stale if limit is None else min(stale, limit)
    progress = progress or Progress()
    progress.stage("embedding", total)
    for items, vectors in backend.embed_chunks(_chunks(db, chunk_size, limit)):
        with db.session() as session:
            store_vectors(session, items, np.asarray(vectors, dtype=np.float32))
        report.embedded += len(items)
        progress.advance(len(items))
    report.seconds = time.perf_counter() - started
    return report

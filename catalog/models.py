"""Catalog tables: products, the stored first-stage embedding of each, category names, import jobs."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, LargeBinary, Numeric, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from shoprank.db import Base, utcnow


class Product(Base):
    __tablename__ = "products"
    #: Category pages page through one category in id order.
    __table_args__ = (Index("ix_products_category_id", "category", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    sku: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(500))
    description: Mapped[str] = mapped_column(Text, default="")
    price: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    currency: Mapped[str] = mapped_column(String(3))
    category: Mapped[str] = mapped_column(String(64), index=True)
    language: Mapped[str] = mapped_column(String(8), index=True)
    brand: Mapped[str | None] = mapped_column(String(200))
    image: Mapped[str | None] = mapped_column(String(1000))
    #: NULL: the feed said nothing about stock (availability unknown: buyable, no badge; ``catalog.stock``).
    stock: Mapped[int | None] = mapped_column(Integer)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    #: sha256 of ``catalog.vectors.dense_text`` at import; a vector with the same hash is current.
    dense_hash: Mapped[str | None] = mapped_column(String(64))

    embedding: Mapped[ProductEmbedding | None] = relationship(
        back_populates="product", cascade="all, delete-orphan", passive_deletes=True
    )


class ProductEmbedding(Base):
    """One passage vector per product, with what it was computed from.

    ``model_id`` + ``passage_format_version`` + ``text_hash`` say whether the vector
    is still valid: a re-import re-embeds only products whose passage text (or the
    model, or the passage format) changed.
    """

    __tablename__ = "product_embeddings"

    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"), primary_key=True)
    model_id: Mapped[str] = mapped_column(String(200))
    passage_format_version: Mapped[int] = mapped_column(Integer)
    text_hash: Mapped[str] = mapped_column(String(64))
    dim: Mapped[int] = mapped_column(Integer)
    vector: Mapped[bytes] = mapped_column(LargeBinary)  # float32, little-endian, ``dim`` values
    #: Indexed: the search index's delta reads vectors that landed after its build.
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)

    product: Mapped[Product] = relationship(back_populates="embedding")


class ProductTombstone(Base):
    """A deleted product, kept so every web process's index delta hides it before the next index build."""

    __tablename__ = "product_tombstones"

    product_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    sku: Mapped[str] = mapped_column(String(64))
    deleted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)


class Category(Base):
    """Display name (and path) of a category slug, as the feed named it; pages show ``name``."""

    __tablename__ = "categories"

    slug: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    path: Mapped[str | None] = mapped_column(String(1000))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ImportJob(Base):
    """One run of ``shoprank catalog import`` over one file: what a re-run resumes from, and what was kept.

    ``rows_done`` counts the file's records (in file order) whose chunk is committed; a
    re-run of the same file (same ``fingerprint``) skips them. ``status`` is ``writing``
    while chunks are being committed, ``done`` or ``failed`` at the end.
    """

    __tablename__ = "import_jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(1000))
    fingerprint: Mapped[str] = mapped_column(String(64), index=True)
    format: Mapped[str] = mapped_column(String(32))
    mode: Mapped[str] = mapped_column(String(16))  # full | delta
    status: Mapped[str] = mapped_column(String(16))
    rows_total: Mapped[int] = mapped_column(Integer, default=0)
    rows_done: Mapped[int] = mapped_column(Integer, default=0)
    inserted: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    unchanged: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    warnings: Mapped[list[str]] = mapped_column(JSON, default=list)
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

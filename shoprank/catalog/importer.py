"""``shoprank catalog import FILE``: validate everything, then upsert by sku and embed what changed, atomically.

Two phases on purpose. Phase 1 reads and validates every row and stops with all
problems listed (line and field) if any row is bad. Phase 2 runs in one
transaction: upsert products by sku, then (re)compute the first-stage embedding of
each product whose passage text changed. An error anywhere in phase 2 rolls back
everything, so a catalog is never half-imported.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select

from reranking.passages import PASSAGE_FORMAT_VERSION
from shoprank.catalog.models import Product, ProductEmbedding
from shoprank.catalog.validation import FIELDS, REQUIRED, ProductRecord, RowProblems, validate_row
from shoprank.db import Database, utcnow
from shoprank.search.embeddings import (
    EMBED_BATCH,
    EMBEDDING_DIM,
    EMBEDDING_MODEL_ID,
    is_current,
    product_passage,
    text_hash,
    vector_to_bytes,
)

FORMATS = ("jsonl", "csv")
_PRODUCT_COLUMNS = ("title", "description", "price", "currency", "category", "language", "brand", "stock", "image")
_SQL_IN_CHUNK = 500


@dataclass(frozen=True, slots=True)
class RowError:
    line: int
    problems: list[str]

    def __str__(self) -> str:
        return f"line {self.line}: " + "; ".join(self.problems)


class CatalogFileError(ValueError):
    """The file was rejected before anything was written; ``errors`` has every bad line."""

    def __init__(self, path: str, errors: list[RowError]) -> None:
        super().__init__(f"{path}: {len(errors)} invalid row(s); nothing was imported")
        self.path = path
        self.errors = errors


@dataclass
class ImportReport:
    rows: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    embedded: int = 0
    seconds: float = 0.0
    skus: list[str] = field(default_factory=list, repr=False)

    def summary(self) -> str:
        return (
            f"{self.rows} rows: {self.inserted} new, {self.updated} updated, {self.unchanged} unchanged; "
            f"{self.embedded} embedded in {self.seconds:.1f} s"
        )


def detect_format(path: Path, fmt: str | None) -> str:
    if fmt:
        if fmt not in FORMATS:
            raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
        return fmt
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if suffix == ".csv":
        return "csv"
    raise ValueError(f"{path.name}: cannot tell the format from the extension; pass --format jsonl|csv")


def _jsonl_rows(text: str) -> Iterable[tuple[int, Any]]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as exc:
            yield number, RowProblems([f"invalid JSON ({exc.msg} at column {exc.colno})"])


def _csv_rows(text: str) -> Iterable[tuple[int, Any]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = reader.fieldnames or []
    missing = [name for name in REQUIRED if name not in header]
    unknown = [name for name in header if name not in FIELDS]
    if missing or unknown:
        problems = []
        if missing:
            problems.append(f"header: missing column(s) {', '.join(missing)}")
        if unknown:
            problems.append(f"header: unknown column(s) {', '.join(unknown)}")
        yield 1, RowProblems(problems)
        return
    for row in reader:
        if None in row:  # more cells than header columns
            yield reader.line_num, RowProblems([f"{len(row[None])} more cell(s) than the header has columns"])
            continue
        yield reader.line_num, {key: (value if value != "" else None) for key, value in row.items()}


def read_catalog(path: Path, fmt: str | None = None) -> list[ProductRecord]:
    """Every row validated; raises ``CatalogFileError`` with all problems, or ``ValueError`` for unusable files."""
    fmt = detect_format(path, fmt)
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise CatalogFileError(str(path), [RowError(line, [f"not UTF-8 (byte {exc.start})"])]) from None
    records: list[ProductRecord] = []
    errors: list[RowError] = []
    first_line: dict[str, int] = {}
    rows = _jsonl_rows(text) if fmt == "jsonl" else _csv_rows(text)
    for line, raw in rows:
        try:
            if isinstance(raw, RowProblems):
                raise raw
            record = validate_row(raw)
        except RowProblems as exc:
            errors.append(RowError(line, exc.problems))
            continue
        if record.sku in first_line:
            errors.append(RowError(line, [f"sku {record.sku!r} already appears on line {first_line[record.sku]}"]))
            continue
        first_line[record.sku] = line
        records.append(record)
    if not records and not errors:
        errors.append(RowError(1, ["the file has no products"]))
    if errors:
        raise CatalogFileError(str(path), errors)
    return records


def _changed(product: Product, record: ProductRecord) -> bool:
    return any(getattr(product, name) != getattr(record, name) for name in _PRODUCT_COLUMNS) or (
        dict(product.attributes or {}) != record.attributes
    )


def _apply(product: Product, record: ProductRecord) -> None:
    for name in _PRODUCT_COLUMNS:
        setattr(product, name, getattr(record, name))
    product.attributes = dict(record.attributes)


Embed = Callable[[Sequence[str]], np.ndarray]
Progress = Callable[[int], None]


def import_records(
    db: Database,
    records: Sequence[ProductRecord],
    embed: Embed,
    *,
    on_embed_start: Callable[[int], None] | None = None,
    on_progress: Progress | None = None,
) -> ImportReport:
    """Upsert ``records`` by sku and embed changed passages, in one transaction."""
    started = time.perf_counter()
    report = ImportReport(rows=len(records), skus=[r.sku for r in records])
    with db.session() as session:
        existing: dict[str, Product] = {}
        skus = [r.sku for r in records]
        for start in range(0, len(skus), _SQL_IN_CHUNK):
            chunk = skus[start : start + _SQL_IN_CHUNK]
            existing.update({p.sku: p for p in session.scalars(select(Product).where(Product.sku.in_(chunk)))})
        now = utcnow()
        products: list[tuple[Product, ProductRecord]] = []
        for record in records:
            product = existing.get(record.sku)
            if product is None:
                product = Product(sku=record.sku, created_at=now, updated_at=now)
                _apply(product, record)
                session.add(product)
                report.inserted += 1
            elif _changed(product, record):
                _apply(product, record)
                product.updated_at = now
                report.updated += 1
            else:
                report.unchanged += 1
            products.append((product, record))
        session.flush()  # assigns ids to new products

        stored: dict[int, ProductEmbedding] = {}
        ids = [p.id for p, _ in products]
        for start in range(0, len(ids), _SQL_IN_CHUNK):
            chunk = ids[start : start + _SQL_IN_CHUNK]
            stored.update(
                {
                    e.product_id: e
                    for e in session.scalars(select(ProductEmbedding).where(ProductEmbedding.product_id.in_(chunk)))
                }
            )
        stale: list[tuple[Product, str, str]] = []
        for product, record in products:
            passage = product_passage(record.as_dict())
            digest = text_hash(passage)
            current = stored.get(product.id)
            if current is None or not is_current(
                current.model_id, current.passage_format_version, current.text_hash, digest
            ):
                stale.append((product, passage, digest))

        if on_embed_start:
            on_embed_start(len(stale))
        for start in range(0, len(stale), EMBED_BATCH):
            batch = stale[start : start + EMBED_BATCH]
            vectors = np.asarray(embed([passage for _, passage, _ in batch]), dtype=np.float32)
            if vectors.shape != (len(batch), EMBEDDING_DIM):
                raise RuntimeError(f"embedder returned shape {vectors.shape}, expected ({len(batch)}, {EMBEDDING_DIM})")
            for (product, _, digest), vector in zip(batch, vectors, strict=True):
                row = stored.get(product.id)
                if row is None:
                    row = ProductEmbedding(product_id=product.id)
                    session.add(row)
                row.model_id = EMBEDDING_MODEL_ID
                row.passage_format_version = PASSAGE_FORMAT_VERSION
                row.text_hash = digest
                row.dim = EMBEDDING_DIM
                row.vector = vector_to_bytes(vector)
                row.updated_at = now
            report.embedded += len(batch)
            if on_progress:
                on_progress(len(batch))
    report.seconds = time.perf_counter() - started
    return report


def import_file(
    db: Database,
    path: Path,
    embed: Embed,
    fmt: str | None = None,
    *,
    on_embed_start: Callable[[int], None] | None = None,
    on_progress: Progress | None = None,
) -> ImportReport:
    return import_records(db, read_catalog(path, fmt), embed, on_embed_start=on_embed_start, on_progress=on_progress)

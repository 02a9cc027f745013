"""Index versions on disk: the layout, the atomic switch, and the job that builds one from the database.

Layout of ``SHOPRANK_INDEX_DIR`` (one directory per database by default)::

    CURRENT                 name of the live version (replaced atomically by rename)
    .build.lock             held by the one process building (flock)
    v20261204T171500-3f2a/  one immutable version
        manifest.json       rows, watermark, dictionaries (categories, brands, languages), build facts
        vectors.npy         (rows, dim) float32, unit length, language-centred, grouped by IVF list
        ivf_centroids.npy, ivf_offsets.npy
        lex_*.npy, lex_stats.json        BM25 postings (search.lexical_index): tokens, stems, compound parts
        lex_words.tsv, lex_compounds.json   the vocabulary (typo correction, decompounding; search.lexicon)
        product_id.npy, price_ref.npy, stock.npy (-1: unknown), category.npy, brand.npy, language.npy,
        has_vector.npy, text_hash.npy, changed_us.npy   one value per row, for filters and change detection
        ids_sorted.npy, ids_sorted_row.npy   product id → row by binary search
        centering.npz           language centroids (search dense space)

Web processes only read versions (``np.load(mmap_mode="r")``: the page cache holds one copy for every
process on the node); a version is built by ``shoprank index build``, the importer, or — once, under
the lock — by the first process that finds none. Changes after a version's *watermark* are served
from the database by each process's delta (``search.index``) until the next build.

Several nodes: build on one node and copy the version directory, then ``CURRENT`` last (or share the
directory over a network file system); readers poll ``CURRENT`` and switch between two searches.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import func, select

from catalog.models import Product, ProductEmbedding
from catalog.stock import stock_column
from catalog.vectors import EMBEDDING_DIM, vector_from_bytes
from reranking.language_centering import LanguageCentering
from reranking.text import clean_text
from search import lexical_index, vector_index
from search.filters import FxRates
from search.lexicon import PART_WEIGHT, VocabularyBuilder, document_terms
from search.tokenize import tokenize_forms
from shoprank.db import Database

log = logging.getLogger(__name__)

FORMAT = 1
#: Versions kept besides the live one (a process may still be reading the previous one).
KEEP_OLD_VERSIONS = 1
_READ_CHUNK = 5_000


def lexical_text(title: str, brand: str | None, category: str, description: str, attributes: dict[str, Any]) -> str:
    """Title twice (a title match matters more than a description match), brand, category, description, attributes."""
    attribute_text = " ".join(str(v) for v in (attributes or {}).values() if isinstance(v, str | int | float))
    return " ".join([title, title, brand or "", category.replace("-", " "), clean_text(description), attribute_text])


def content_hash(text: str, language: str) -> int:
    """Identity of what the indexes hold for a product: a change means re-indexing its text, not just its price."""
    digest = hashlib.blake2b(f"{language}\x1f{text}".encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little") & 0x7FFF_FFFF_FFFF_FFFF


@dataclass(frozen=True)
class BuildReport:
    version: str
    rows: int
    with_vector: int
    seconds: float
    path: Path


def current_version(index_dir: Path) -> str | None:
    try:
        name = (index_dir / "CURRENT").read_text().strip()
    except FileNotFoundError:
        return None
    return name if name and (index_dir / name / "manifest.json").exists() else None


@contextmanager
def build_lock(index_dir: Path) -> Iterator[None]:
    index_dir.mkdir(parents=True, exist_ok=True)
    with open(index_dir / ".build.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _publish(index_dir: Path, version: str) -> None:
    temporary = index_dir / "CURRENT.tmp"
    temporary.write_text(version + "\n")
    os.replace(temporary, index_dir / "CURRENT")
    versions = sorted(p for p in index_dir.iterdir() if p.is_dir() and p.name.startswith("v") and p.name != version)
    for old in versions[: max(0, len(versions) - KEEP_OLD_VERSIONS)]:
        shutil.rmtree(old, ignore_errors=True)  # open maps keep working on unlinked files


def _watermark(db: Database) -> datetime | None:
    with db.session() as session:
        newest = session.execute(
            select(func.max(Product.updated_at)).union_all(select(func.max(ProductEmbedding.updated_at)))
        ).scalars()
        stamps = [aware(s) for s in newest if s is not None]
    return max(stamps) if stamps else None


def stamp_us(stamp: datetime | None) -> int:
    """A change stamp as integer microseconds since the epoch (UTC); 0 for none. What the delta compares with."""
    if stamp is None:
        return 0
    stamp = aware(stamp)
    return (stamp - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def aware(stamp: datetime) -> datetime:
    """A stamp as UTC-aware (SQLite hands back naive datetimes that were written as UTC)."""
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


class _Codes:
    """Dictionary-encodes a text column: value → small int, in first-seen order."""

    def __init__(self) -> None:
        self.values: list[str] = []
        self._code: dict[str, int] = {}

    def code(self, value: str | None) -> int:
        if value is None or value == "":
            return -1
        found = self._code.get(value)
        if found is None:
            found = self._code[value] = len(self.values)
            self.values.append(value)
        return found


def build_version(
    db: Database,
    index_dir: Path,
    *,
    fx: FxRates | None = None,
    embed_missing: Callable[[list[str]], np.ndarray] | None = None,
    embed_missing_limit: int = 5_000,
    progress: Callable[[int, int], None] | None = None,
) -> BuildReport:
    """Read every product (and its stored vector) from the database once and write a new version.

    Products without a current stored vector are indexed lexically only, unless ``embed_missing`` is given
    and at most ``embed_missing_limit`` lack one (the embedded demo); the rest get vectors from
    ``shoprank catalog embed`` and reach the dense index through the delta, then the next build.
    """
    from catalog.vectors import stored_vector_is_current

    started = time.perf_counter()
    fx = fx or FxRates()
    index_dir.mkdir(parents=True, exist_ok=True)
    watermark = _watermark(db)
    with db.session() as session:
        total = session.scalar(select(func.count(Product.id))) or 0
    version = f"v{datetime.now(UTC):%Y%m%dT%H%M%S}-{os.urandom(3).hex()}"
    staging = index_dir / f".{version}.partial"
    staging.mkdir()
    raw = np.lib.format.open_memmap(
        staging / "raw_vectors.npy", mode="w+", dtype=np.float32, shape=(total, EMBEDDING_DIM)
    )
    ids, prices, stocks, has_vector, hashes, changed = [], [], [], [], [], []
    categories, brands, languages = _Codes(), _Codes(), _Codes()
    category_codes, brand_codes, language_codes = [], [], []
    postings = lexical_index.PostingsBuilder()
    vocabulary = VocabularyBuilder()
    missing_texts: dict[int, dict[str, Any]] = {}  # row -> the product's fields, for embed_missing
    brand_spelling: dict[str, str] = {}  # case-folded brand -> the first spelling seen (for pages)
    columns = (
        Product.id, Product.title, Product.description, Product.price, Product.currency, Product.category,
        Product.language, Product.brand, Product.stock, Product.attributes, Product.dense_hash, Product.updated_at,
        ProductEmbedding.updated_at,
        ProductEmbedding.model_id, ProductEmbedding.passage_format_version, ProductEmbedding.text_hash,
        ProductEmbedding.dim, ProductEmbedding.vector,
    )  # fmt: skip
    query = select(*columns).outerjoin(ProductEmbedding, ProductEmbedding.product_id == Product.id).order_by(Product.id)
    row = 0
    with db.engine.connect() as connection:
        # Typed as plain tuples: mypy unpacks a Row[*tuple[Any, ...]] to objects.
        result: Iterable[tuple[Any, ...]] = connection.execution_options(
            stream_results=True, yield_per=_READ_CHUNK
        ).execute(query)
        for record in result:
            if row >= total:  # rows added while reading reach searches through the delta
                break
            (pid, title, description, price, currency, category, language, brand, stock, attributes, dense_hash,
             product_changed, vector_changed, model_id, format_version, stored_hash, dim, vector) = record  # fmt: skip
            changed.append(max(stamp_us(product_changed), stamp_us(vector_changed)))
            text = lexical_text(title, brand, category, description or "", attributes or {})
            ids.append(pid)
            prices.append(fx.to_reference(Decimal(price), currency))
            stocks.append(stock_column(stock))  # unknown (NULL) as UNKNOWN_STOCK: the column is int32
            category_codes.append(categories.code(category))
            brand_codes.append(brands.code((brand or "").strip().casefold() or None))
            if brand and brand.strip():
                brand_spelling.setdefault(brand.strip().casefold(), brand.strip())
            language_codes.append(languages.code(language))
            hashes.append(content_hash(text, language))
            tokens = vocabulary.add(tokenize_forms(text), language)
            postings.add(document_terms(tokens, language), len(tokens))
            mapping = {"title": title, "description": description or "", "brand": brand, "category": category,
                       "price": price, "currency": currency, "attributes": attributes or {},
                       "dense_hash": dense_hash}  # fmt: skip
            usable = vector is not None and stored_vector_is_current(mapping, model_id, format_version, stored_hash)
            if usable:
                raw[row] = vector_from_bytes(vector, dim)
            else:
                missing_texts[row] = mapping
            has_vector.append(usable)
            row += 1
            if progress and row % _READ_CHUNK == 0:
                progress(row, total)
    rows = row
    has = np.asarray(has_vector, dtype=bool)
    if embed_missing is not None and missing_texts and len(missing_texts) <= embed_missing_limit:
        from catalog.vectors import embedding_text

        log.warning("%d product(s) have no current stored vector; embedding them for this build", len(missing_texts))
        missing_rows = sorted(missing_texts)
        fresh = embed_missing([embedding_text(missing_texts[r]) for r in missing_rows])
        for r, vector in zip(missing_rows, fresh, strict=True):
            raw[r] = vector
        has[missing_rows] = True
    raw.flush()
    language_column = np.asarray(language_codes, dtype=np.int16)
    centering = _fit_centering(raw[:rows], has, language_column, languages.values)
    # The e5 fallback scorer reads raw vectors of the hydrated candidates (it centres them itself);
    # search scans the centred copy.
    vectors_in = np.lib.format.open_memmap(
        staging / "centred_unordered.npy", mode="w+", dtype=np.float32, shape=(rows, EMBEDDING_DIM)
    )
    vectors_in[:] = raw[:rows]
    _center_in_place(vectors_in, has, centering)
    layout = vector_index.plan_layout(vectors_in[has] if not has.all() else vectors_in)
    # rows without a vector go after every list (they are never probed), keeping one row order for all files
    with_vector_rows = np.flatnonzero(has)
    order = np.concatenate([with_vector_rows[layout.order], np.flatnonzero(~has)])
    _write_rows(staging / "vectors.npy", vectors_in, order)
    del vectors_in
    _write_rows(staging / "raw_vectors_ordered.npy", raw[:rows], order)
    del raw
    (staging / "raw_vectors.npy").unlink()
    os.replace(staging / "raw_vectors_ordered.npy", staging / "raw_vectors.npy")
    (staging / "centred_unordered.npy").unlink()
    vector_index.save(staging, layout)
    compounds = vocabulary.compounds()  # needs every product's words: parts join the postings now
    postings.save(staging, order, derived=compounds, derived_weight=PART_WEIGHT)
    vocabulary.save(staging, compounds)
    id_column = np.asarray(ids, dtype=np.int64)[order]
    columns_out = {
        "product_id": id_column,
        "price_ref": np.asarray([np.nan if p is None else p for p in prices], dtype=np.float32)[order],
        "stock": np.asarray(stocks, dtype=np.int32)[order],
        "category": np.asarray(category_codes, dtype=np.int32)[order],
        "brand": np.asarray(brand_codes, dtype=np.int32)[order],
        "language": language_column[order],
        "has_vector": has[order],
        "text_hash": np.asarray(hashes, dtype=np.int64)[order],
        "changed_us": np.asarray(changed, dtype=np.int64)[order],
    }
    for name, values in columns_out.items():
        np.save(staging / f"{name}.npy", values)
    by_id = np.argsort(id_column, kind="stable")
    np.save(staging / "ids_sorted.npy", id_column[by_id])
    np.save(staging / "ids_sorted_row.npy", by_id.astype(np.int64))
    if centering is not None:
        np.savez(
            staging / "centering.npz", languages=np.asarray(centering[0]), centroids=centering[1], mean=centering[2]
        )
    manifest = {
        "format": FORMAT,
        "version": version,
        "rows": rows,
        "with_vector": int(has.sum()),
        "dim": EMBEDDING_DIM,
        "ivf_lists": int(len(layout.centroids)),
        "watermark": watermark.isoformat() if watermark else None,
        "built_at": datetime.now(UTC).isoformat(),
        "categories": categories.values,
        "brands": brands.values,
        "brand_names": [brand_spelling.get(b, b) for b in brands.values],
        "languages": languages.values,
        "reference_currency": "USD",
    }
    (staging / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False))
    os.replace(staging, index_dir / version)
    _publish(index_dir, version)
    seconds = time.perf_counter() - started
    log.info("index version %s: %d products (%d with vectors) in %.1f s", version, rows, int(has.sum()), seconds)
    return BuildReport(version, rows, int(has.sum()), seconds, index_dir / version)


def _write_rows(path: Path, source: np.ndarray, order: np.ndarray) -> None:
    """``source[order]`` into a new ``.npy``, in chunks (bounded memory at any size)."""
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(len(order), source.shape[1]))
    for start in range(0, len(order), _READ_CHUNK):
        out[start : start + _READ_CHUNK] = source[order[start : start + _READ_CHUNK]]
    out.flush()
    del out


def _fit_centering(
    vectors: np.ndarray, has: np.ndarray, language_codes: np.ndarray, names: list[str]
) -> tuple[list[str], np.ndarray, np.ndarray] | None:
    """Per-language centroids of the stored vectors (see ``reranking.language_centering``), in one pass."""
    usable = np.flatnonzero(has)
    if not len(usable):
        return None
    sums = np.zeros((len(names), vectors.shape[1]), np.float64)
    counts = np.zeros(len(names), np.int64)
    total = np.zeros(vectors.shape[1], np.float64)
    for start in range(0, len(usable), _READ_CHUNK):
        part = usable[start : start + _READ_CHUNK]
        chunk = np.asarray(vectors[part], dtype=np.float64)
        codes = language_codes[part]
        np.add.at(sums, codes, chunk)
        counts += np.bincount(codes, minlength=len(names))
        total += chunk.sum(axis=0)
    keep = [i for i in range(len(names)) if counts[i] >= 5]
    if len(keep) < 2:
        return None
    centroids = (sums[keep] / counts[keep, None]).astype(np.float32)
    return [names[i] for i in keep], centroids, (total / len(usable)).astype(np.float32)


def load_centering(directory: Path) -> LanguageCentering | None:
    path = directory / "centering.npz"
    if not path.exists():
        return None
    data = np.load(path)
    return LanguageCentering(dict(zip(data["languages"].tolist(), data["centroids"], strict=True)), data["mean"])


def _center_in_place(vectors: np.ndarray, has: np.ndarray, centering: Any) -> None:
    transform = (
        LanguageCentering(dict(zip(centering[0], centering[1], strict=True)), centering[2]).transform
        if centering is not None
        else _unit
    )
    usable = np.flatnonzero(has)
    for start in range(0, len(usable), _READ_CHUNK):
        part = usable[start : start + _READ_CHUNK]
        vectors[part] = transform(np.asarray(vectors[part]))


def _unit(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    unit: np.ndarray = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    return unit

"""The catalog the search reads: a memory-mapped index version plus a live delta from the database.

A web process never builds the whole index (``search.index_files`` does, as a job). It maps
the current version's files and keeps, in memory, only what changed since that version's watermark:

- a price or stock change of an indexed product is an *override* of that row's filter columns;
- a product whose text changed, a new product, or one whose vector arrived later is a *delta document*,
  scored exactly beside the version (dense: its stored vector; lexical: BM25 with the version's statistics);
- a deleted product (``product_tombstones``) hides its row.

``refresh_if_changed`` polls for those changes at most once per ``poll_interval`` seconds (one indexed
query) and switches to a newer version when ``CURRENT`` moves, so a catalog change is visible to searches
within about a second, without a rebuild. Result rows are hydrated from the database, so the price a
shopper sees is the stored one, not the index's copy.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
from cachetools import LRUCache
from sqlalchemy import func, select

from catalog.models import Product, ProductEmbedding, ProductTombstone
from catalog.stock import buyable_column, is_out_of_stock, stock_column
from catalog.vectors import product_passage, stored_vector_is_current, vector_from_bytes
from reranking.language_centering import LanguageCentering, centred_unit
from reranking.scorers.bi_encoder import E5Embedder
from search import index_files
from search.filters import FxRates, SearchFilters
from search.index_files import (
    BuildReport,
    aware,
    build_version,
    content_hash,
    current_version,
    lexical_text,
    stamp_us,
)
from search.lexical_index import LexicalIndex
from search.lexicon import Lexicon
from search.retrieval import DEFAULT_LEXICAL_WEIGHT, RRF_K, FusedHit, Hit, rrf_fuse
from search.tokenize import tokenize
from search.vector_index import VectorIndex
from shoprank.db import Database, is_database_unavailable

log = logging.getLogger(__name__)

#: Each poll re-reads changes this far behind the previous poll: a transaction that commits late, with an older
#: ``updated_at``, is still picked up. Longer transactions reach searches with the next build.
CHANGE_MARGIN = timedelta(seconds=10)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: Past this many changed products the delta costs each process real memory: log that a build is due.
DELTA_BUILD_HINT = 50_000
#: Query-encoding threads per index (they wait on the engine's lock, so this bounds waiting searches, not compute).
ENCODER_THREADS = 8


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
    stock: int | None  # None: availability unknown, buyable without a badge (``catalog.stock``)
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
            "category": self.category,
            "attributes": self.attributes,
        }


#: The columns a CatalogItem is read from (hydration selects these, not whole ORM objects).
_ITEM_COLUMNS = (
    Product.id, Product.sku, Product.title, Product.description, Product.price, Product.currency, Product.category,
    Product.language, Product.brand, Product.image, Product.stock, Product.attributes,
)  # fmt: skip


def item_from_row(row: Any) -> CatalogItem:
    """A CatalogItem (with its reranker passage) from a products row or ORM object."""
    item = CatalogItem(
        id=row.id,
        sku=row.sku,
        title=row.title,
        description=row.description or "",
        price=Decimal(row.price),
        currency=row.currency,
        category=row.category,
        language=row.language,
        brand=row.brand,
        image=row.image,
        stock=row.stock,
        attributes=dict(row.attributes or {}),
        passage="",
    )
    return dataclasses.replace(item, passage=product_passage(item.as_mapping()))


@dataclass(frozen=True, slots=True)
class FirstStage:
    hits: list[FusedHit]  # fused, best first; ``sku`` is the product's sku
    items: dict[str, CatalogItem]  # every hit's product, fresh from the database
    timings_ms: dict[str, float]
    #: Products in the index that pass the filters (the size of the filtered catalog; all products without).
    matching: int = 0
    #: The query with its misspelt words corrected, when the lexical stage searched with corrections.
    did_you_mean: str | None = None


class IndexVersion:
    """One built version, opened read-only (memory-mapped)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = path.name
        self.manifest = json.loads((path / "manifest.json").read_text())
        self.vectors = VectorIndex.open(path)
        self.raw_vectors = np.load(path / "raw_vectors.npy", mmap_mode="r")
        self.lexical = LexicalIndex.open(path)
        self.lexicon = Lexicon(path, self.lexical.contains)

        def load(name: str) -> np.ndarray:
            column: np.ndarray = np.load(path / f"{name}.npy", mmap_mode="r")
            return column

        self.product_id = load("product_id")
        self.price_ref, self.stock = load("price_ref"), load("stock")
        self.category, self.brand, self.language = load("category"), load("brand"), load("language")
        self.has_vector, self.text_hash = load("has_vector"), load("text_hash")
        self.changed_us = load("changed_us")
        self._ids_sorted, self._ids_sorted_row = load("ids_sorted"), load("ids_sorted_row")
        self.centering: LanguageCentering | None = index_files.load_centering(path)
        self.categories: list[str] = self.manifest["categories"]
        self.brands: list[str] = self.manifest["brands"]
        self.languages: list[str] = self.manifest["languages"]
        stamp = self.manifest.get("watermark")
        self.watermark = datetime.fromisoformat(stamp) if stamp else None

    @property
    def rows(self) -> int:
        return int(self.manifest["rows"])

    def rows_of(self, product_ids: Sequence[int]) -> np.ndarray:
        """Row of each product id in this version, -1 where it is not indexed."""
        ids = np.asarray(product_ids, dtype=np.int64)
        if not len(self._ids_sorted) or not len(ids):
            return np.full(len(ids), -1, np.int64)
        slots = np.minimum(np.searchsorted(self._ids_sorted, ids), len(self._ids_sorted) - 1)
        found = np.asarray(self._ids_sorted)[slots] == ids
        return np.where(found, np.asarray(self._ids_sorted_row)[slots], -1)

    def codes(self, names: list[str], wanted: frozenset[str]) -> np.ndarray:
        return np.asarray([i for i, name in enumerate(names) if name in wanted], dtype=np.int32)


@dataclass(frozen=True)
class _DeltaDoc:
    item: CatalogItem
    vector: np.ndarray | None  # centred, unit length; None: lexical only until its vector lands
    raw_vector: np.ndarray | None
    terms: dict[str, float]  # as the build would index it (search.lexicon.document_terms)
    length: int  # tokens as written (BM25's document length)
    price_ref: float | None


@dataclass
class _Delta:
    """What changed since the version's watermark, as this process has read it."""

    docs: dict[int, _DeltaDoc] = field(default_factory=dict)
    #: id -> (row, price_ref, stock as the index column stores it: ``UNKNOWN_STOCK`` for unknown)
    overrides: dict[int, tuple[int, float, int]] = field(default_factory=dict)
    deleted: set[int] = field(default_factory=set)
    seen: dict[int, Any] = field(default_factory=dict)  # id -> change stamp already applied
    #: When the previous poll ran (None: not yet for this version). Polls read from here minus the margin, so a
    #: bulk write before the build is never re-read once the version has been polled.
    frontier: datetime | None = None
    generation: int = 0  # bumped by every poll that changed something
    # derived arrays, rebuilt after each poll that changed something
    hidden_rows: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    override_rows: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    override_price: np.ndarray = field(default_factory=lambda: np.empty(0, np.float32))
    override_stock: np.ndarray = field(default_factory=lambda: np.empty(0, np.int32))


@dataclass(frozen=True, slots=True)
class _CachedItem:
    item: CatalogItem
    version: str  # the index version it was read under
    seen: Any  # the delta's change stamp for the product when it was read (None: unchanged since the build)


@dataclass
class _State:
    version: IndexVersion
    delta: _Delta


class CatalogIndex:
    """The first stage over an index version + delta; thread-safe (the state is swapped whole)."""

    def __init__(
        self,
        db: Database,
        embedder: E5Embedder,
        index_dir: Path | str,
        *,
        fx: FxRates | None = None,
        poll_interval: float = 1.0,
        lexical_weight: float = DEFAULT_LEXICAL_WEIGHT,
        build_if_missing: bool = True,
        embed_missing_on_build: bool = True,
    ) -> None:
        self._db = db
        self._embedder = embedder
        self.index_dir = Path(index_dir)
        self.fx = fx or FxRates()
        self.poll_interval = poll_interval
        self.lexical_weight = lexical_weight
        self.build_if_missing = build_if_missing
        self.embed_missing_on_build = embed_missing_on_build
        self._state: _State | None = None
        self._open_lock = threading.Lock()
        self._poll_lock = threading.Lock()
        self._polled_at = 0.0
        #: id -> the row as last read: served without a database read while the delta shows no change to it, and
        #: served while the database is down
        self._items: LRUCache[int, _CachedItem] = LRUCache(maxsize=20_000)
        self._items_lock = threading.Lock()  # LRUCache reorders itself on every read: not thread-safe alone
        self._titles: tuple[str, list[tuple[str, str, str, int | None]]] | None = None
        self._category_names: tuple[tuple[str, int], dict[str, dict[str, str]]] | None = None
        #: Called with the index after it opens a (new) version, e.g. to share its language centering.
        self.on_refresh: list[Callable[[CatalogIndex], None]] = []
        self._encoders: ThreadPoolExecutor | None = None  # made on first use: after a fork, in the process using it
        self._encoders_lock = threading.Lock()

    def _encoder_pool(self) -> ThreadPoolExecutor:
        """Threads that encode queries beside the lexical stage (the engine itself runs one call at a time; the
        pool is as wide as a web process's request threads so a cached query never queues behind an encoding)."""
        pool = self._encoders
        if pool is None:
            with self._encoders_lock:
                if self._encoders is None:
                    self._encoders = ThreadPoolExecutor(max_workers=ENCODER_THREADS, thread_name_prefix="query-encode")
                pool = self._encoders
        return pool

    # --- versions ---------------------------------------------------------------------------------------

    @property
    def state(self) -> _State:
        state = self._state
        if state is None:
            with self._open_lock:
                if self._state is None:
                    self._open(self._current_or_build())
                state = self._state
        assert state is not None
        return state

    def _current_or_build(self) -> str:
        name = current_version(self.index_dir)
        if name is None:
            if not self.build_if_missing:
                raise FileNotFoundError(f"no index version in {self.index_dir}; run `shoprank index build`")
            with index_files.build_lock(self.index_dir):  # one process builds; the others wait and map it
                name = current_version(self.index_dir)
                if name is None:
                    name = self._build().version
        return name

    def _build(self) -> BuildReport:
        embed = self._embedder.passages if self.embed_missing_on_build else None
        return build_version(self._db, self.index_dir, fx=self.fx, embed_missing=embed)

    def _open(self, name: str) -> None:
        started = time.perf_counter()
        version = IndexVersion(self.index_dir / name)
        state = _State(version, _Delta())
        self._poll_into(state)
        self._state = state
        self._polled_at = time.monotonic()
        for listener in self.on_refresh:
            listener(self)
        log.info(
            "catalog index %s: %d products mapped in %.0f ms (%d changed since its build)",
            name,
            version.rows,
            (time.perf_counter() - started) * 1000,
            len(state.delta.docs) + len(state.delta.overrides),
        )

    def refresh(self) -> CatalogIndex:
        """Build a new version now and switch to it (tests, the CLI after an import)."""
        with index_files.build_lock(self.index_dir):
            report = self._build()
        with self._open_lock:
            self._open(report.version)
        return self

    def refresh_if_changed(self) -> CatalogIndex:
        """Pick up catalog changes and newer versions; at most one poll per ``poll_interval``, never blocking."""
        state = self.state
        if time.monotonic() - self._polled_at < self.poll_interval or not self._poll_lock.acquire(blocking=False):
            return self
        try:
            self._polled_at = time.monotonic()
            name = current_version(self.index_dir)
            if name is not None and name != state.version.name:
                with self._open_lock:
                    self._open(name)
            else:
                self._poll_into(state)
        except Exception:  # a database hiccup must not fail a search that can run on what is loaded
            log.exception("catalog change poll failed; searching the loaded catalog")
        finally:
            self._poll_lock.release()
        return self

    # --- the delta --------------------------------------------------------------------------------------

    def _poll_into(self, state: _State) -> None:
        delta, version = state.delta, state.version
        polled_at = datetime.now(UTC)
        # the first poll of a version reads exactly what came after its watermark
        since = (version.watermark or _EPOCH) if delta.frontier is None else delta.frontier - CHANGE_MARGIN
        changed_ids, deleted = self._changed_since(since)
        delta.frontier = polled_at
        fresh = {pid: stamp for pid, stamp in changed_ids.items() if delta.seen.get(pid) != stamp}
        # Rows the version already holds as they are now: re-read only because of the margin. Skipping them keeps
        # a freshly built version's delta empty, whatever was written in the seconds before the build.
        if fresh:
            ids = list(fresh)
            at = version.rows_of(ids)
            built = np.where(at >= 0, np.asarray(version.changed_us)[np.maximum(at, 0)], -1)
            for pid, row_changed in zip(ids, built.tolist(), strict=True):
                untouched = pid not in delta.docs and pid not in delta.overrides and pid not in delta.deleted
                if row_changed >= stamp_us(fresh[pid]) and untouched:
                    delta.seen[pid] = fresh.pop(pid)
        fresh_deleted = {pid for pid in deleted if pid not in delta.deleted}
        if not fresh and not fresh_deleted:
            return
        rows = self._load_changed(list(fresh))
        present = set()
        for product, embedding in rows:
            present.add(product.id)
            self._apply_change(state, product, embedding)
            delta.seen[product.id] = fresh[product.id]
        for pid in fresh_deleted | (set(fresh) - present):
            delta.docs.pop(pid, None)
            delta.overrides.pop(pid, None)
            delta.deleted.add(pid)
            delta.seen[pid] = fresh.get(pid)
        delta.generation += 1
        self._derive(state)
        if len(delta.docs) + len(delta.overrides) > DELTA_BUILD_HINT:
            log.warning("catalog index: %d products changed since %s; run `shoprank index build`",
                        len(delta.docs) + len(delta.overrides), version.name)  # fmt: skip

    def _changed_since(self, since: datetime) -> tuple[dict[int, Any], dict[int, Any]]:
        """Products (or their vectors) changed after ``since``, and products deleted after it."""
        changed: dict[int, Any] = {}
        with self._db.session() as session:
            for pid, stamp in session.execute(select(Product.id, Product.updated_at).where(Product.updated_at > since)):
                changed[pid] = aware(stamp)
            for pid, stamp in session.execute(
                select(ProductEmbedding.product_id, ProductEmbedding.updated_at).where(
                    ProductEmbedding.updated_at > since
                )
            ):
                changed[pid] = max(changed.get(pid, aware(stamp)), aware(stamp))
            deleted = {
                pid: aware(stamp)
                for pid, stamp in session.execute(
                    select(ProductTombstone.product_id, ProductTombstone.deleted_at).where(
                        ProductTombstone.deleted_at > since
                    )
                )
            }
        return changed, deleted

    def _load_changed(self, ids: list[int]) -> list[tuple[Any, Any]]:
        out: list[tuple[Any, Any]] = []
        with self._db.session() as session:
            for start in range(0, len(ids), 1000):
                out.extend(
                    session.execute(
                        select(Product, ProductEmbedding)
                        .outerjoin(ProductEmbedding, ProductEmbedding.product_id == Product.id)
                        .where(Product.id.in_(ids[start : start + 1000]))
                    ).all()
                )
        return out

    def _apply_change(self, state: _State, product: Any, embedding: Any) -> None:
        version, delta = state.version, state.delta
        item = item_from_row(product)
        text = lexical_text(item.title, item.brand, item.category, item.description, item.attributes)
        row = int(version.rows_of([item.id])[0])
        price_ref = self.fx.to_reference(item.price, item.currency)
        vector_current = embedding is not None and stored_vector_is_current(
            {**item.as_mapping(), "dense_hash": product.dense_hash},
            embedding.model_id,
            embedding.passage_format_version,
            embedding.text_hash,
        )
        same_text = row >= 0 and int(version.text_hash[row]) == content_hash(text, item.language)
        if same_text and (bool(version.has_vector[row]) or not vector_current):
            delta.docs.pop(item.id, None)
            delta.overrides[item.id] = (row, np.nan if price_ref is None else price_ref, stock_column(item.stock))
            return
        raw = vector_from_bytes(embedding.vector, embedding.dim) if vector_current else None
        centred = None
        if raw is not None:
            centring = version.centering
            centred = centring.transform(raw)[0] if centring is not None else raw / max(np.linalg.norm(raw), 1e-12)
        delta.overrides.pop(item.id, None)
        delta.deleted.discard(item.id)
        tokens = tokenize(text)
        terms = version.lexicon.document_terms(tokens, item.language)
        delta.docs[item.id] = _DeltaDoc(item, centred, raw, terms, len(tokens), price_ref)

    def _derive(self, state: _State) -> None:
        version, delta = state.version, state.delta
        hidden = [*delta.docs, *delta.deleted]
        rows = version.rows_of(hidden)
        delta.hidden_rows = rows[rows >= 0]
        overrides = list(delta.overrides.values())
        delta.override_rows = np.asarray([o[0] for o in overrides], dtype=np.int64)
        delta.override_price = np.asarray([o[1] for o in overrides], dtype=np.float32)
        delta.override_stock = np.asarray([o[2] for o in overrides], dtype=np.int32)

    # --- searching --------------------------------------------------------------------------------------

    @property
    def size(self) -> int:
        state = self.state
        new_docs = int((state.version.rows_of(list(state.delta.docs)) < 0).sum())
        return state.version.rows - len(state.delta.deleted) + new_docs

    @property
    def centering(self) -> LanguageCentering | None:
        return self.state.version.centering

    @property
    def fingerprint(self) -> tuple[str, int]:
        """Changes whenever what searches see changes (a new version, or a poll that read changes)."""
        state = self.state
        return state.version.name, state.delta.generation

    def _base_mask(self, state: _State, filters: SearchFilters | None) -> np.ndarray | None:
        """Allowed version rows (None = all): filters column-wise, overrides applied, changed rows hidden."""
        version, delta = state.version, state.delta
        mask: np.ndarray | None = None
        if filters is not None and not filters.is_empty():
            mask = self._column_mask(version, filters, version.price_ref, version.stock, slice(None))
            if len(delta.override_rows):
                mask[delta.override_rows] = self._column_mask(
                    version, filters, delta.override_price, delta.override_stock, delta.override_rows
                )
        if len(delta.hidden_rows):
            mask = np.ones(version.rows, dtype=bool) if mask is None else mask
            mask[delta.hidden_rows] = False
        return mask

    def _column_mask(
        self, version: IndexVersion, filters: SearchFilters, price: np.ndarray, stock: np.ndarray, rows: Any
    ) -> np.ndarray:
        mask = np.ones(len(price), dtype=bool)
        if filters.categories:
            mask &= np.isin(version.category[rows], version.codes(version.categories, filters.categories))
        if filters.brands:
            mask &= np.isin(version.brand[rows], version.codes(version.brands, filters.brands))
        if filters.languages:
            mask &= np.isin(version.language[rows], version.codes(version.languages, filters.languages))
        if filters.in_stock:
            mask &= buyable_column(stock)  # a count > 0, or unknown
        low, high = filters.reference_price_range(self.fx)
        if low is not None or high is not None:
            price = np.asarray(price)
            with np.errstate(invalid="ignore"):
                if low is not None:
                    mask &= price >= np.float32(low)
                if high is not None:
                    mask &= price <= np.float32(high)
        return mask

    def _doc_allowed(self, doc: _DeltaDoc, filters: SearchFilters | None) -> bool:
        if filters is None or filters.is_empty():
            return True
        item = doc.item
        return filters.matches(category=item.category, brand=item.brand, language=item.language, stock=item.stock,
                               reference_price=doc.price_ref, fx=self.fx)  # fmt: skip

    def first_stage(
        self, query: str, top_k: int, filters: SearchFilters | None = None, *, language: str | None = None
    ) -> FirstStage:
        """Dense and lexical candidates over version + delta under ``filters``, fused by weighted RRF.

        ``language`` is the shopper's: the lexical stage stems the query in it (``search.lexicon``) and corrects
        words the catalog does not know; the corrected query comes back as ``did_you_mean``.
        """
        state = self.state
        version, delta = state.version, state.delta
        # The e5 engine releases the GIL: the query is encoded on a helper thread while this one applies the filters
        # and runs the lexical stage, so a search waits for the longer of the two instead of their sum (``dense``
        # is what is left of the encoding after the lexical stage, plus the IVF probes; the timings still add up
        # to the first stage's wall time).
        encoding = self._encoder_pool().submit(self._embedder.queries, [query])
        timings: dict[str, float] = {}
        mark = time.perf_counter()
        mask = self._base_mask(state, filters)
        docs = [d for d in delta.docs.values() if self._doc_allowed(d, filters)]
        matching = (version.rows if mask is None else int(mask.sum())) + len(docs)
        timings["filters"] = (time.perf_counter() - mark) * 1000

        mark = time.perf_counter()
        analysed = version.lexicon.query_terms(query, language)
        tokens = analysed.terms
        rows, scores = version.lexical.search(tokens, top_k, mask)
        lexical = [Hit(str(int(version.product_id[r])), float(s)) for r, s in zip(rows, scores, strict=True)]
        for doc in docs:
            score = version.lexical.weigh(tokens, doc.terms, doc.length)
            if score > 0:
                lexical.append(Hit(str(doc.item.id), score))
        lexical = sorted(lexical, key=lambda h: -h.score)[:top_k]
        timings["lexical"] = (time.perf_counter() - mark) * 1000

        mark = time.perf_counter()
        query_vector = encoding.result()
        if version.centering is not None:
            query_vector = version.centering.transform(query_vector)
        query_vector = query_vector[0]
        dense_mask = mask if mask is not None else None
        if not bool(np.all(version.has_vector)):
            dense_mask = np.asarray(version.has_vector) if dense_mask is None else dense_mask & version.has_vector
        rows, scores = version.vectors.search(query_vector, top_k, dense_mask)
        dense = [Hit(str(int(version.product_id[r])), float(s)) for r, s in zip(rows, scores, strict=True)]
        dense += [Hit(str(d.item.id), float(d.vector @ query_vector)) for d in docs if d.vector is not None]
        dense = sorted(dense, key=lambda h: -h.score)[:top_k]
        timings["dense"] = (time.perf_counter() - mark) * 1000

        mark = time.perf_counter()
        fused = keep_best_lexical(
            rrf_fuse({"dense": dense, "lexical": lexical}, RRF_K, {"lexical": self.lexical_weight}), top_k
        )
        timings["fusion"] = (time.perf_counter() - mark) * 1000
        mark = time.perf_counter()
        in_delta = {str(d.item.id): d.item for d in docs}
        by_id = self._hydrate([int(h.sku) for h in fused if h.sku not in in_delta], state)
        by_id.update({int(k): v for k, v in in_delta.items()})
        hits = [FusedHit(by_id[int(h.sku)].sku, h.score, h.ranks) for h in fused if int(h.sku) in by_id]
        items = {by_id[int(h.sku)].sku: by_id[int(h.sku)] for h in fused if int(h.sku) in by_id}
        self._share_vectors(state, list(items.values()))
        timings["hydrate"] = (time.perf_counter() - mark) * 1000
        return FirstStage(hits, items, timings, matching, analysed.did_you_mean)

    def _hydrate(self, ids: list[int], state: _State | None = None) -> dict[int, CatalogItem]:
        """The current rows of these products.

        A row this process read before is current while the index shows no change to it since that read: same
        version, and the delta's last seen change stamp for the product is what it was at the read (every
        write after the version's watermark lands in ``delta.seen`` within one poll). So a head-heavy query
        stream reads the database only for products it has not seen, with the same staleness bound as the
        index itself (``SHOPRANK_INDEX_POLL_SECONDS``). While the database is unreachable, the last rows this
        process read are served (searches keep answering through an outage, as the ops promise says; unseen
        products are left out).
        """
        if not ids:
            return {}
        state = state or self.state
        version, seen = state.version.name, state.delta.seen
        out: dict[int, CatalogItem] = {}
        stale: list[int] = []
        with self._items_lock:
            for pid in ids:
                cached = self._items.get(pid)
                if cached is not None and cached.version == version and cached.seen == seen.get(pid):
                    out[pid] = cached.item
                else:
                    stale.append(pid)
        if not stale:
            return out
        seen_before = {pid: seen.get(pid) for pid in stale}  # before the read: a change racing it re-reads later
        try:
            with self._db.session() as session:
                # plain rows, not ORM objects: a cold search hydrates ~100 products and the ORM's identity map
                # and instrumentation cost more than the query
                rows = session.execute(select(*_ITEM_COLUMNS).where(Product.id.in_(stale))).all()
                read = {row.id: item_from_row(row) for row in rows}
        except Exception as exc:
            if not is_database_unavailable(exc):
                raise
            log.warning("catalog database unreachable (%s); serving the products this process last read", exc)
            with self._items_lock:
                out.update({pid: self._items[pid].item for pid in stale if pid in self._items})
            return out
        with self._items_lock:
            for pid, item in read.items():
                self._items[pid] = _CachedItem(item, version, seen_before[pid])
        out.update(read)
        return out

    def _share_vectors(self, state: _State, items: list[CatalogItem]) -> None:
        """Seed the e5 fallback scorer's cache with the stored vectors of these passages (never embed them live)."""
        version = state.version
        rows = version.rows_of([item.id for item in items])
        texts, vectors = [], []
        for item, row in zip(items, rows, strict=True):
            doc = state.delta.docs.get(item.id)
            if doc is not None and doc.raw_vector is not None:
                texts.append(item.passage)
                vectors.append(doc.raw_vector)
            elif doc is None and row >= 0 and version.has_vector[row]:
                texts.append(item.passage)
                vectors.append(np.asarray(version.raw_vectors[row]))
        if texts:
            self._embedder.remember(texts, np.stack(vectors))

    def vectors_of(self, items: Sequence[CatalogItem]) -> np.ndarray:
        """Language-centred unit e5 vectors of these products, as the dense first stage compares them.

        Stored vectors are used where the index has them (version rows, delta documents); a product without one
        (its vector has not landed yet, or an inline product of ``/api/rank``) is embedded from its passage.
        """
        state = self.state
        version = state.version
        rows = version.rows_of([item.id for item in items])
        out = np.zeros((len(items), self._embedder.dim), dtype=np.float32)
        missing: list[int] = []
        for i, (item, row) in enumerate(zip(items, rows.tolist(), strict=True)):
            doc = state.delta.docs.get(item.id)
            if doc is not None and doc.raw_vector is not None:
                out[i] = doc.raw_vector
            elif doc is None and row >= 0 and version.has_vector[row]:
                out[i] = version.raw_vectors[row]
            else:
                missing.append(i)
        if missing:
            out[missing] = self._embedder.passages([items[i].passage for i in missing])
        return centred_unit(out, version.centering)

    def query_vectors(self, queries: Sequence[str]) -> np.ndarray:
        """Language-centred unit e5 query vectors (the embedder's query cache makes repeats free)."""
        return centred_unit(self._embedder.queries(list(queries)), self.state.version.centering)

    def query_vector(self, query: str) -> np.ndarray:
        """The query's language-centred unit e5 vector."""
        vector: np.ndarray = self.query_vectors([query])[0]
        return vector

    def passage_vectors(self, texts: Sequence[str]) -> np.ndarray:
        """Language-centred unit e5 vectors of arbitrary passage texts (title heads and targets, for intent)."""
        return centred_unit(self._embedder.passages(list(texts)), self.state.version.centering)

    def profile_inputs(self) -> tuple[str, np.ndarray, list[str], LanguageCentering | None]:
        """What ``search.intent.build_profile`` needs: version name, raw vectors, category per row, centering.

        Rows without a vector are left out (their zero vectors would pull every centroid toward the origin).
        """
        version = self.state.version
        with_vector = np.flatnonzero(np.asarray(version.has_vector))
        codes = np.asarray(version.category)[with_vector]
        names = [version.categories[int(code)] if code >= 0 else "" for code in codes.tolist()]
        return version.name, np.asarray(version.raw_vectors)[with_vector], names, version.centering

    # --- lookups for pages and /api/rank -----------------------------------------------------------------

    def get(self, skus: Sequence[str]) -> list[CatalogItem]:
        """Products by sku, in the order asked (unknown skus left out)."""
        if not skus:
            return []
        with self._db.session() as session:
            rows = session.execute(select(Product).where(Product.sku.in_(list(skus)))).scalars().all()
            by_sku = {row.sku: item_from_row(row) for row in rows}
        return [by_sku[s] for s in skus if s in by_sku]

    def item(self, sku: str) -> CatalogItem | None:
        found = self.get([sku])
        return found[0] if found else None

    def browse(self, filters: SearchFilters, language: str | None, limit: int) -> tuple[list[CatalogItem], int]:
        """Products passing ``filters`` without a query (a category or brand listing), and how many there are.

        Order: buyable first (in stock or unknown), listings in ``language`` next, then the most stocked (unknown
        after known counts), then oldest; at most ``limit`` products are returned (sorted column-wise over the
        matching rows, hydrated from the database).
        """
        state = self.state
        version, delta = state.version, state.delta
        mask = self._base_mask(state, filters)
        rows = np.arange(version.rows) if mask is None else np.flatnonzero(mask)
        stock = np.asarray(version.stock)[rows].copy()
        if len(delta.override_rows) and len(rows):  # rows is sorted: place each override by binary search
            at = np.minimum(np.searchsorted(rows, delta.override_rows), len(rows) - 1)
            listed = rows[at] == delta.override_rows
            stock[at[listed]] = delta.override_stock[listed]
        code = version.languages.index(language) if language in version.languages else -2
        product_ids = np.asarray(version.product_id)[rows]
        sold_out = ~buyable_column(stock)
        keys = (product_ids, -np.clip(stock, 0, 50), np.asarray(version.language)[rows] != code, sold_out)
        order = np.lexsort(keys)[:limit]
        docs = [d.item for d in delta.docs.values() if self._doc_allowed(d, filters)]
        by_id = self._hydrate([int(i) for i in product_ids[order]], state)
        items = [by_id[int(i)] for i in product_ids[order] if int(i) in by_id] + docs
        items.sort(key=lambda i: (is_out_of_stock(i.stock), i.language != language, -min(i.stock or 0, 50), i.id))
        return items[:limit], len(rows) + len(docs)

    def brand_counts(self) -> dict[str, int]:
        """Products per brand, as merchants spell it (the version's first spelling of each case-folded brand)."""
        state = self.state
        version = state.version
        codes = np.asarray(version.brand)
        if len(state.delta.hidden_rows):
            codes = np.delete(codes, state.delta.hidden_rows)
        spelled = version.manifest.get("brand_names") or version.brands
        per_code = np.bincount(codes[codes >= 0], minlength=len(spelled))
        counts = {spelled[i]: int(n) for i, n in enumerate(per_code) if n}
        for doc in state.delta.docs.values():
            if doc.item.brand and doc.item.brand.strip():
                name = doc.item.brand.strip()
                counts[name] = counts.get(name, 0) + 1
        return counts

    def title_sample(self, limit: int = 20_000) -> list[tuple[str, str, str, int | None]]:
        """``(sku, title, language, stock)`` of up to ``limit`` products, buyable (in stock or unknown) first: what
        title autocomplete scans by prefix (a bounded list per process, refreshed with each version)."""
        name = self.state.version.name
        cached = self._titles
        if cached is not None and cached[0] == name:
            return cached[1]
        with self._db.session() as session:
            rows = session.execute(
                select(Product.sku, Product.title, Product.language, Product.stock)
                .order_by(func.coalesce(Product.stock, 1) <= 0, Product.id)  # NULL (unknown) is buyable
                .limit(limit)
            ).all()
        sample = [(r.sku, r.title, r.language, r.stock) for r in rows]
        self._titles = (name, sample)
        return sample

    def category_names(self) -> dict[str, dict[str, str]]:
        """Category display names from merchant feeds (slug → {"en": name}; the feed's name is the fallback
        every UI language shows when its translation table lacks the slug). Re-read when the catalog changes."""
        fingerprint = self.fingerprint
        cached = self._category_names
        if cached is not None and cached[0] == fingerprint:
            return cached[1]
        from catalog.categories import category_names

        with self._db.session() as session:
            names = {slug: {"en": name} for slug, name in category_names(session).items()}
        self._category_names = (fingerprint, names)
        return names

    def category_counts(self) -> list[tuple[str, int]]:
        """Products per category (version + delta), most first: the navigation bar, without a table scan."""
        state = self.state
        version, delta = state.version, state.delta
        codes = np.asarray(version.category)
        if len(delta.hidden_rows):
            codes = np.delete(codes, delta.hidden_rows)
        per_code = np.bincount(codes[codes >= 0], minlength=len(version.categories))
        counts = {version.categories[i]: int(n) for i, n in enumerate(per_code)}
        for doc in delta.docs.values():
            counts[doc.item.category] = counts.get(doc.item.category, 0) + 1
        return sorted(((c, n) for c, n in counts.items() if n > 0), key=lambda kv: (-kv[1], kv[0]))


#: Lexical hits that always reach the candidates (see ``keep_best_lexical``).
LEXICAL_RESERVE = 10


def keep_best_lexical(fused: list[FusedHit], top_k: int) -> list[FusedHit]:
    """The fused top ``top_k``, with the best lexical hits kept in place of its last entries.

    With the lexical weight below 1, a product only BM25 finds (a rare exact word, a new product whose vector
    has not landed yet) scores below every one of ``top_k`` dense hits and would be cut before the reranker
    ever saw it. The reserve keeps the ``LEXICAL_RESERVE`` best lexical hits among the candidates, at the tail
    of the first-stage order (the fused order above them is unchanged); the reranker decides where they go.
    """
    head = fused[:top_k]
    reserve = min(LEXICAL_RESERVE, top_k // 10)
    chosen = {h.sku for h in head}
    missing = [h for h in fused[top_k:] if h.ranks.get("lexical", reserve + 1) <= reserve and h.sku not in chosen]
    if not missing:
        return head
    return head[: top_k - len(missing)] + sorted(missing, key=lambda h: h.ranks["lexical"])

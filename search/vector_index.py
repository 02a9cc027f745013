"""Dense first stage at catalog scale: an inverted-file (IVF) index over a memory-mapped vector file.

Why IVF on a plain ``.npy`` rather than a graph index: the rows are stored grouped by their nearest
centroid, so a probe reads a few contiguous slices of one read-only file. Every web process maps the
same file, so the page cache holds one copy whatever the number of processes, a filter is a boolean
mask over the same rows (no per-library predicate API), and a selective filter can switch to an
exact scan of just the allowed rows. ``bench/ann_choice.py`` compares it with hnswlib and usearch.

Vectors are unit length (cosine = dot product) and already language-centred by the builder.
Small catalogs (below ``IVF_MIN_ROWS``) are one list, i.e. exact search.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Below this many rows an exact scan is as fast as probing and needs no training.
IVF_MIN_ROWS = 50_000
#: Training sample per list (k-means on a sample is as good as on everything, far cheaper).
TRAIN_ROWS_PER_LIST = 48
KMEANS_ITERATIONS = 8
#: Allowed rows below this share → exact scan of the allowed rows instead of probing.
EXACT_SHARE = 0.02
_CHUNK = 16_384


def list_count(rows: int) -> int:
    """≈ 2·√N lists (about 500 rows per list at 1M): the usual IVF sizing."""
    return 1 if rows < IVF_MIN_ROWS else int(2 * math.sqrt(rows))


def default_probes(lists: int) -> int:
    """Lists scanned per query: 1/16 of them (at least 8) gave recall@100 ≥ 0.95 in bench/catalog_scale.py."""
    return lists if lists == 1 else min(lists, max(8, lists // 16))


def train_centroids(vectors: np.ndarray, lists: int, seed: int = 0) -> np.ndarray:
    """Spherical k-means on a sample: centroids of unit length, so assignment is a max dot product."""
    rng = np.random.default_rng(seed)
    sample_size = min(len(vectors), lists * TRAIN_ROWS_PER_LIST)
    sample = np.asarray(vectors[np.sort(rng.choice(len(vectors), sample_size, replace=False))], dtype=np.float32)
    centroids = sample[rng.choice(sample_size, lists, replace=False)].copy()
    for _ in range(KMEANS_ITERATIONS):
        nearest = assign(sample, centroids)
        sums = np.zeros_like(centroids)
        np.add.at(sums, nearest, sample)
        empty = np.bincount(nearest, minlength=lists) == 0
        sums[empty] = sample[rng.choice(sample_size, int(empty.sum()), replace=False)]  # re-seed empty lists
        centroids = sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)
    return centroids.astype(np.float32)


def assign(vectors: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Nearest centroid of each row, in chunks so memory stays bounded at any catalog size."""
    out = np.empty(len(vectors), dtype=np.int32)
    for start in range(0, len(vectors), _CHUNK):
        chunk = np.asarray(vectors[start : start + _CHUNK], dtype=np.float32)
        out[start : start + len(chunk)] = np.argmax(chunk @ centroids.T, axis=1)
    return out


@dataclass(frozen=True)
class IvfLayout:
    """How to reorder rows so each list is contiguous: ``order[i]`` is the input row stored at row ``i``."""

    centroids: np.ndarray
    order: np.ndarray
    offsets: np.ndarray  # list j holds stored rows offsets[j]:offsets[j+1]


def plan_layout(vectors: np.ndarray, lists: int | None = None) -> IvfLayout:
    lists = lists or list_count(len(vectors))
    if lists <= 1 or len(vectors) == 0:
        dim = vectors.shape[1] if vectors.ndim == 2 else 0
        centroid = np.zeros((1, dim), np.float32)
        return IvfLayout(centroid, np.arange(len(vectors), dtype=np.int64), np.array([0, len(vectors)], np.int64))
    centroids = train_centroids(vectors, lists)
    nearest = assign(vectors, centroids)
    order = np.argsort(nearest, kind="stable").astype(np.int64)
    offsets = np.zeros(lists + 1, dtype=np.int64)
    np.cumsum(np.bincount(nearest, minlength=lists), out=offsets[1:])
    return IvfLayout(centroids, order, offsets)


def save(directory: Path, layout: IvfLayout) -> None:
    np.save(directory / "ivf_centroids.npy", layout.centroids)
    np.save(directory / "ivf_offsets.npy", layout.offsets)


class VectorIndex:
    """Read side: searches the memory-mapped rows of one index version."""

    def __init__(self, vectors: np.ndarray, centroids: np.ndarray, offsets: np.ndarray, probes: int | None = None):
        self.vectors = vectors  # (rows, dim) float32, usually np.memmap
        self.centroids = centroids
        self.offsets = offsets
        self.probes = probes or default_probes(len(centroids))

    @classmethod
    def open(cls, directory: Path, probes: int | None = None) -> VectorIndex:
        vectors = np.load(directory / "vectors.npy", mmap_mode="r")
        return cls(vectors, np.load(directory / "ivf_centroids.npy"), np.load(directory / "ivf_offsets.npy"), probes)

    @property
    def rows(self) -> int:
        return int(self.vectors.shape[0])

    def search(self, query: np.ndarray, top_k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(rows, scores) of the best ``top_k`` allowed rows, best first.

        A selective filter (few allowed rows) scans exactly those rows; otherwise the probed lists are
        scanned and filtered, and if that leaves fewer than ``top_k`` the allowed rows are scanned exactly.
        """
        if self.rows == 0 or top_k <= 0:
            return np.empty(0, np.int64), np.empty(0, np.float32)
        query = np.asarray(query, dtype=np.float32).reshape(-1)
        if allowed is not None:
            allowed_rows = np.flatnonzero(allowed)
            if len(allowed_rows) <= max(top_k, EXACT_SHARE * self.rows) or len(self.centroids) == 1:
                return self._exact(query, top_k, allowed_rows)
        elif len(self.centroids) == 1:
            searchable = int(self.offsets[-1])  # rows past the lists have no vector yet
            return _top(np.arange(searchable), np.asarray(self.vectors[:searchable]) @ query, top_k)
        probed = np.argpartition(-(self.centroids @ query), min(self.probes, len(self.centroids)) - 1)[: self.probes]
        starts, ends = self.offsets[probed], self.offsets[probed + 1]
        lengths = ends - starts
        total = int(lengths.sum())
        before = np.cumsum(lengths) - lengths  # where each list's scores start in the concatenation
        rows = np.arange(total, dtype=np.int64) + np.repeat(starts - before, lengths)
        scores = np.empty(total, dtype=np.float32)
        for start, end, at in zip(starts.tolist(), ends.tolist(), before.tolist(), strict=True):
            np.matmul(np.asarray(self.vectors[start:end]), query, out=scores[at : at + end - start])
        if allowed is not None:
            keep = allowed[rows]
            rows, scores = rows[keep], scores[keep]
            if len(rows) < top_k:  # the probed lists held too few allowed rows: scan the allowed ones
                return self._exact(query, top_k, np.flatnonzero(allowed))
        return _top(rows, scores, top_k)

    def _exact(self, query: np.ndarray, top_k: int, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        scores = np.empty(len(rows), dtype=np.float32)
        for start in range(0, len(rows), _CHUNK):
            part = rows[start : start + _CHUNK]
            scores[start : start + len(part)] = np.asarray(self.vectors[part]) @ query
        return _top(rows, scores, top_k)


def _top(rows: np.ndarray, scores: np.ndarray, top_k: int) -> tuple[np.ndarray, np.ndarray]:
    k = min(top_k, len(scores))
    if k <= 0:
        return np.empty(0, np.int64), np.empty(0, np.float32)
    best = np.argpartition(-scores, k - 1)[:k]
    best = best[np.argsort(-scores[best], kind="stable")]
    return np.asarray(rows)[best].astype(np.int64), scores[best].astype(np.float32)

"""Lexical first stage at catalog scale: BM25 postings in memory-mapped arrays.

Each token's postings (rows, precomputed BM25 weights) are one contiguous slice of two ``.npy``
files; the vocabulary is a sorted array of 64-bit token hashes, so opening an index version costs
no per-token Python objects and every web process shares the same pages. Scoring a query is
adding a few slices; documents changed since the version was built are scored on the fly with the
version's statistics (``weigh``), so their scores compare with the indexed ones.

BM25 is Lucene's (k1 = 1.5, b = 0.75, idf = ln(1 + (N − df + ½)/(df + ½))), the variant the
first stage used before (bm25s' default), so the demo relevance is unchanged.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

K1 = 1.5
B = 0.75


@lru_cache(maxsize=1 << 16)  # words repeat across listings (Zipf): a build hashes each common word once
def token_hash(token: str) -> int:
    return int.from_bytes(hashlib.blake2b(token.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")


def _hashes(tokens: Iterable[str]) -> np.ndarray:
    return np.fromiter((token_hash(t) for t in tokens), dtype=np.uint64)


def idf(document_frequency: np.ndarray | int, documents: int) -> np.ndarray:
    df = np.asarray(document_frequency, dtype=np.float64)
    return np.log1p((documents - df + 0.5) / (df + 0.5)).astype(np.float32)


class PostingsBuilder:
    """Collects (token, row, term frequency) triples in numpy chunks: bounded Python memory at 1M documents."""

    def __init__(self) -> None:
        self._hashes: list[np.ndarray] = []
        self._rows: list[np.ndarray] = []
        self._tfs: list[np.ndarray] = []
        self._lengths: list[int] = []

    def add(self, tokens: Sequence[str] | Mapping[str, float], length: int | None = None) -> None:
        """One document: its tokens, or term → (weighted) frequency with ``length`` its number of tokens."""
        row = len(self._lengths)
        counts = tokens if isinstance(tokens, Mapping) else Counter(tokens)
        self._lengths.append(len(tokens) if length is None else length)
        if counts:
            self._hashes.append(_hashes(counts.keys()))
            self._rows.append(np.full(len(counts), row, dtype=np.int32))
            self._tfs.append(np.fromiter(counts.values(), dtype=np.float32, count=len(counts)))

    def save(
        self,
        directory: Path,
        order: np.ndarray | None = None,
        derived: Mapping[str, Sequence[str]] | None = None,
        derived_weight: float = 0.5,
    ) -> None:
        """Write the postings; ``order[i]`` = the added document stored at row ``i`` (the dense layout's order).

        ``derived``: term → further terms every document holding it also holds, at ``derived_weight`` of its
        frequency (a compound's parts, known only once every document is read).
        """
        documents = len(self._lengths)
        lengths = np.asarray(self._lengths, dtype=np.float32)
        hashes = np.concatenate(self._hashes) if self._hashes else np.empty(0, np.uint64)
        rows = np.concatenate(self._rows) if self._rows else np.empty(0, np.int32)
        tfs = np.concatenate(self._tfs) if self._tfs else np.empty(0, np.float32)
        if derived:
            hashes, rows, tfs = _with_derived(hashes, rows, tfs, derived, derived_weight)
        if order is not None:  # renumber documents to their stored rows
            stored_row = np.empty(documents, dtype=np.int32)
            stored_row[order] = np.arange(documents, dtype=np.int32)
            rows = stored_row[rows]
            lengths = lengths[order]
        average = float(lengths.mean()) if documents else 0.0
        by_token = np.lexsort((rows, hashes))
        hashes, rows, tfs = hashes[by_token], rows[by_token], tfs[by_token]
        vocabulary, starts, frequencies = np.unique(hashes, return_index=True, return_counts=True)
        weights = idf(frequencies, documents).repeat(frequencies) * _saturate(tfs, lengths[rows], average)
        np.save(directory / "lex_vocab.npy", vocabulary)
        np.save(directory / "lex_offsets.npy", np.append(starts, len(hashes)).astype(np.int64))
        np.save(directory / "lex_rows.npy", rows)
        np.save(directory / "lex_weights.npy", weights.astype(np.float32))
        (directory / "lex_stats.json").write_text(json.dumps({"documents": documents, "average_length": average}))


def _with_derived(
    hashes: np.ndarray, rows: np.ndarray, tfs: np.ndarray, derived: Mapping[str, Sequence[str]], weight: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The postings plus each derived term's, merged per (term, row) by adding frequencies."""
    sources = list(derived)
    source_hashes = _hashes(sources)
    sorter = np.argsort(source_hashes)
    sorted_sources = source_hashes[sorter]
    slot = np.minimum(np.searchsorted(sorted_sources, hashes), len(sorted_sources) - 1)
    entries = np.flatnonzero(sorted_sources[slot] == hashes)
    if not len(entries):
        return hashes, rows, tfs
    counts = np.asarray([len(derived[w]) for w in sources], dtype=np.int64)
    flat = _hashes(t for w in sources for t in derived[w])
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    word = sorter[slot[entries]]
    per = counts[word]
    total = int(per.sum())
    within = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(per) - per, per)
    new_hashes = flat[np.repeat(starts[word], per) + within]
    hashes = np.concatenate([hashes, new_hashes])
    rows = np.concatenate([rows, np.repeat(rows[entries], per)])
    tfs = np.concatenate([tfs, np.repeat(tfs[entries] * np.float32(weight), per)])
    # one posting per (term, row)
    by_key = np.lexsort((rows, hashes))
    hashes, rows, tfs = hashes[by_key], rows[by_key], tfs[by_key]
    first = np.ones(len(hashes), dtype=bool)
    first[1:] = (hashes[1:] != hashes[:-1]) | (rows[1:] != rows[:-1])
    starts_at = np.flatnonzero(first)
    return hashes[starts_at], rows[starts_at], np.add.reduceat(tfs, starts_at).astype(np.float32)


def _sum_by_row(row_parts: list[np.ndarray], weight_parts: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Each row once with the sum of its weights over the query's postings, rows ascending.

    Every token's postings are sorted by row, so a stable sort of their concatenation is a merge of sorted runs
    (timsort finds them) and the sums are added in the same order as before; at 1M products a common word has
    ~50k postings, where ``np.unique(return_inverse) + np.add.at`` cost 1.5x as much.
    """
    if len(row_parts) == 1:
        return row_parts[0], weight_parts[0].astype(np.float32, copy=True)
    rows, weights = np.concatenate(row_parts), np.concatenate(weight_parts)
    order = np.argsort(rows, kind="stable")
    rows, weights = rows[order], weights[order]
    first = np.empty(len(rows), dtype=bool)
    first[:1] = True
    np.not_equal(rows[1:], rows[:-1], out=first[1:])
    starts = np.flatnonzero(first)
    return rows[starts], np.add.reduceat(weights, starts).astype(np.float32, copy=False)


def _saturate(tf: np.ndarray, length: np.ndarray, average: float) -> np.ndarray:
    norm = K1 * (1 - B + B * length / max(average, 1e-9))
    return (tf * (K1 + 1) / (tf + norm)).astype(np.float32)


@dataclass(frozen=True)
class LexicalIndex:
    vocabulary: np.ndarray  # sorted uint64 token hashes
    offsets: np.ndarray
    rows: np.ndarray
    weights: np.ndarray
    documents: int
    average_length: float

    @classmethod
    def open(cls, directory: Path) -> LexicalIndex:
        stats = json.loads((directory / "lex_stats.json").read_text())
        return cls(
            np.load(directory / "lex_vocab.npy", mmap_mode="r"),
            np.load(directory / "lex_offsets.npy", mmap_mode="r"),
            np.load(directory / "lex_rows.npy", mmap_mode="r"),
            np.load(directory / "lex_weights.npy", mmap_mode="r"),
            int(stats["documents"]),
            float(stats["average_length"]),
        )

    def contains(self, term: str) -> bool:
        """Whether any document holds ``term``."""
        if not len(self.vocabulary):
            return False
        h = np.uint64(token_hash(term))
        slot = int(np.searchsorted(self.vocabulary, h))
        return slot < len(self.vocabulary) and bool(self.vocabulary[slot] == h)

    def _slots(self, tokens: Sequence[str]) -> list[int]:
        """Vocabulary slots of the query's known tokens (a repeated query token counts once)."""
        if not len(self.vocabulary):
            return []
        hashes = np.unique(_hashes(tokens))
        slots = np.searchsorted(self.vocabulary, hashes)
        slots = slots[slots < len(self.vocabulary)]
        return [int(s) for s in slots if self.vocabulary[s] in hashes]

    def search(
        self, tokens: Sequence[str], top_k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(rows, scores) of the best ``top_k`` allowed rows sharing a token with the query, best first."""
        slots = self._slots(tokens)
        if not slots or top_k <= 0:
            return np.empty(0, np.int64), np.empty(0, np.float32)
        row_parts = [np.asarray(self.rows[self.offsets[s] : self.offsets[s + 1]]) for s in slots]
        weight_parts = [np.asarray(self.weights[self.offsets[s] : self.offsets[s + 1]]) for s in slots]
        rows, scores = _sum_by_row(row_parts, weight_parts)
        if allowed is not None:
            keep = allowed[rows]
            rows, scores = rows[keep], scores[keep]
        k = min(top_k, len(rows))
        if k == 0:
            return np.empty(0, np.int64), np.empty(0, np.float32)
        best = np.argpartition(-scores, k - 1)[:k]
        best = best[np.lexsort((rows[best], -scores[best]))]
        return rows[best].astype(np.int64), scores[best]

    def weigh(
        self,
        query_tokens: Sequence[str],
        document_tokens: Sequence[str] | Mapping[str, float],
        length: int | None = None,
    ) -> float:
        """BM25 of a document outside the index (changed since the build) with this version's statistics.

        The document as ``PostingsBuilder.add`` takes it: tokens, or term → frequency with its ``length``.
        """
        counts = document_tokens if isinstance(document_tokens, Mapping) else Counter(document_tokens)
        length = len(document_tokens) if length is None else length
        shared = [t for t in set(query_tokens) if t in counts]
        if not shared:
            return 0.0
        frequencies = []
        for token in shared:
            h = np.uint64(token_hash(token))
            slot = int(np.searchsorted(self.vocabulary, h)) if len(self.vocabulary) else 0
            known = slot < len(self.vocabulary) and self.vocabulary[slot] == h
            frequencies.append(int(self.offsets[slot + 1] - self.offsets[slot]) if known else 0)
        weights = idf(np.asarray(frequencies), max(self.documents, 1)) * _saturate(
            np.asarray([counts[t] for t in shared], np.float32),
            np.full(len(shared), length, np.float32),
            self.average_length or length,
        )
        return float(weights.sum())

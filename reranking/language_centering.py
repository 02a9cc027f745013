"""Make multilingual-e5 vectors more language-neutral by removing each language's mean.

Multilingual encoders put a strong language component into every vector: an
Arabic query sits closer to *any* Arabic listing than to the English product it
describes. Subtracting the centroid of the text's language and adding back the
global mean removes much of that component (Libovický, Rosa & Fraser, 2020, "On
the Language Neutrality of Pre-trained Multilingual Representations").

The language component is also what makes language identification easy: the
nearest language centroid (cosine of the raw vector) identifies the language of
99.8% of demo-catalog passages and 92% of the short demo queries, so transform
time needs no language labels. Only fitting does, and the catalog has them.

Measured on the 103 labelled demo queries (``bench/relevance.py``), dense
retrieval nDCG@10 goes from 0.58 to 0.65 and cross-lingual hit@10 from 0.76 to
0.87. The transform must be applied to *both* sides of a comparison and by every
component that compares vectors (dense retrieval and the e5 fallback scorer), or
one stage would undo the other.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

#: A language needs this many catalog vectors for a centroid worth trusting.
MIN_VECTORS_PER_LANGUAGE = 5


class LanguageCentering:
    """Fitted centroids; ``transform`` is pure and thread-safe."""

    def __init__(self, centroids: dict[str, np.ndarray], global_mean: np.ndarray) -> None:
        if len(centroids) < 2:
            raise ValueError("language centering needs at least two languages")
        self.languages = sorted(centroids)
        self._centroids = np.stack([centroids[lang] for lang in self.languages]).astype(np.float32)
        self._unit_centroids = self._centroids / np.linalg.norm(self._centroids, axis=1, keepdims=True)
        self._global_mean = np.asarray(global_mean, dtype=np.float32)
        digest = hashlib.blake2b(self._centroids.tobytes() + self._global_mean.tobytes(), digest_size=6)
        self.fingerprint = "lc-" + digest.hexdigest()

    @classmethod
    def fit(
        cls, vectors: np.ndarray, languages: Sequence[str], min_per_language: int = MIN_VECTORS_PER_LANGUAGE
    ) -> LanguageCentering | None:
        """Centroids of the languages with enough vectors; None when fewer than two qualify (nothing to remove)."""
        vectors = np.asarray(vectors, dtype=np.float32)
        labels = np.asarray(languages)
        if vectors.ndim != 2 or len(vectors) != len(labels):
            raise ValueError("one language label per vector is required")
        centroids = {
            str(lang): vectors[labels == lang].mean(axis=0)
            for lang in np.unique(labels)
            if (labels == lang).sum() >= min_per_language
        }
        if len(centroids) < 2:
            return None
        return cls(centroids, vectors.mean(axis=0))

    def detect(self, vectors: np.ndarray) -> list[str]:
        """Nearest centroid by cosine: the language each vector most looks like."""
        vectors = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
        return [self.languages[i] for i in np.argmax(vectors @ self._unit_centroids.T, axis=1)]

    def transform(self, vectors: np.ndarray) -> np.ndarray:
        """Remove each vector's language centroid, add the global mean back, re-normalise to unit length."""
        vectors = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
        nearest = np.argmax(vectors @ self._unit_centroids.T, axis=1)
        shifted = vectors - self._centroids[nearest] + self._global_mean
        norms = np.linalg.norm(shifted, axis=1, keepdims=True)
        centered: np.ndarray = (shifted / np.maximum(norms, 1e-12)).astype(np.float32)
        return centered


def centred_unit(vectors: np.ndarray, centering: LanguageCentering | None) -> np.ndarray:
    """Vectors as the dense first stage compares them: language-centred when a centring is fitted, else only
    scaled to unit length (retrieval, the relevance gate and the catalog profile all go through this)."""
    vectors = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
    if centering is not None and len(vectors):
        return centering.transform(vectors)
    unit: np.ndarray = (vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)).astype(np.float32)
    return unit

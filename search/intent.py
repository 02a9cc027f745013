"""What a query asks for, learned from the catalog itself rather than from rules about particular queries.

A shopper's query names a *kind of product*. Two things tell us which, in every language the e5 encoder knows:

- **Category intent.** Each category's centroid (the mean of its products' language-centred e5 vectors) is
  compared with the query's vector; the categories that stand out from the rest for this query (a z-score over
  the categories, so it does not depend on how a model or a language pair scales similarities) are the
  query's *intended* categories. No category list or synonym table is written by hand: a new catalog brings its
  own categories, in whatever language and naming its feed uses.
- **How strongly anything matches.** The same vectors give the catalog's similarity distribution for the query
  (mean ``q·μ`` and spread ``sqrt(qᵀΣq)`` from the catalog's covariance), so a candidate's similarity is read as
  "how many standard deviations above an average product", comparable across queries and language pairs.

Both are computed per index version (``CatalogProfile``, a sample of at most ``PROFILE_SAMPLE`` rows), so the
cost at query time is a few small matrix products. The product-type half of intent (accessory or the product
itself) lives in ``search.product_type``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from reranking.language_centering import LanguageCentering, centred_unit

#: Rows used for the catalog's mean and covariance (a uniform sample; the spread is stable long before this).
PROFILE_SAMPLE = 20_000
#: At most this many products per category go into its centroid (a random subset of larger categories).
CENTROID_ROWS = 400
#: A category is intended when its z-score is within this of the best category's (in category standard
#: deviations). Chosen on the demo *development* queries only (bench/relevance.py reports the held-out sets).
INTENT_BAND = 1.0
#: With fewer categories than this the z-score over categories means nothing: every category is intended.
MIN_CATEGORIES = 3


@dataclass(frozen=True, slots=True)
class CatalogProfile:
    """The catalog's shape in the encoder's space, for one index version."""

    version: str
    kinds: tuple[tuple[str, ...], ...]  # categories grouped into kinds of product (see ``_kinds``)
    centroids: np.ndarray  # (kinds, dim), unit rows
    mean: np.ndarray  # (dim,)
    covariance: np.ndarray  # (dim, dim)

    def spread(self, query: np.ndarray) -> tuple[float, float]:
        """Mean and standard deviation of the catalog's similarities to ``query`` (a centred unit vector)."""
        mean = float(self.mean @ query)
        variance = float(query @ self.covariance @ query)
        return mean, max(variance, 1e-12) ** 0.5


@dataclass(frozen=True, slots=True)
class QueryIntent:
    """What the catalog says about one query."""

    categories: frozenset[str]  # the intended categories (all of them when the catalog has too few to tell)
    category_scores: dict[str, float]  # z-score of each category's centroid for the query
    mean: float  # the catalog's mean similarity to the query
    spread: float  # ... and its standard deviation

    def z(self, similarity: float) -> float:
        """A similarity as standard deviations above the catalog's average product for this query."""
        return (similarity - self.mean) / self.spread


def build_profile(
    version: str,
    vectors: np.ndarray,
    categories: Sequence[str],
    centering: LanguageCentering | None,
    *,
    seed: int = 0,
) -> CatalogProfile:
    """Centroids, mean and covariance of the catalog's (language-centred, unit) product vectors."""
    labels = np.asarray(categories)
    rows = len(labels)
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(rows, size=min(rows, PROFILE_SAMPLE), replace=False)) if rows else np.empty(0, int)
    names = tuple(sorted(set(labels.tolist())))
    picked: list[np.ndarray] = []
    for name in names:
        members = np.flatnonzero(labels == name)
        if len(members) > CENTROID_ROWS:
            members = np.sort(rng.choice(members, size=CENTROID_ROWS, replace=False))
        picked.append(members)
    wanted = np.unique(np.concatenate([sample, *picked])) if rows else np.empty(0, int)
    matrix = centred_unit(vectors[wanted], centering)
    position = {int(row): i for i, row in enumerate(wanted.tolist())}
    sampled = matrix[[position[int(r)] for r in sample.tolist()]] if len(sample) else matrix
    member_vectors = [matrix[[position[int(r)] for r in members.tolist()]] for members in picked]
    groups = _kinds(names, member_vectors)
    centroids = np.stack([np.concatenate([member_vectors[i] for i in group]).mean(axis=0) for group in groups])
    centroids /= np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
    kinds = tuple(tuple(names[i] for i in group) for group in groups)
    mean = sampled.mean(axis=0) if len(sampled) else np.zeros(matrix.shape[1], np.float32)
    covariance = np.cov(sampled.T) if len(sampled) > 1 else np.eye(matrix.shape[1])
    return CatalogProfile(version, kinds, centroids.astype(np.float32), mean.astype(np.float32), covariance)


def _kinds(names: Sequence[str], members: Sequence[np.ndarray]) -> list[list[int]]:
    """Categories grouped into kinds of product: merchant feeds name one kind several ways ("Mattresses",
    "Matratzen", "Colchones") and split it into leaves of one or two products, so a category alone is too
    fine and too noisy to stand for what a query asks for.

    Two categories join when their centroids are at least as close as a typical product is to the rest of its own
    category (the catalog's median leave-one-out cohesion, over categories with two or more products): then the
    catalog itself says they hold the same kind of product. Average-linkage clustering (scipy) applies that rule
    transitively; no constant is tuned.
    """
    if len(names) < 2:
        return [list(range(len(names)))]
    from scipy.cluster.hierarchy import fcluster, linkage

    # around the catalog's mean: e5 vectors share a large common direction that makes every centroid look alike
    middle = np.concatenate(list(members)).mean(axis=0)
    centred = [m - middle for m in members]
    centroids = np.stack([m.mean(axis=0) for m in centred])
    units = centroids / np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
    cohesion = [_leave_one_out_cohesion(m) for m in centred if len(m) >= 2]
    if not cohesion:
        return [[i] for i in range(len(names))]
    threshold = 1.0 - float(np.median(cohesion))  # cosine distance
    labels = fcluster(linkage(units, method="average", metric="cosine"), t=threshold, criterion="distance")
    grouped: dict[int, list[int]] = {}
    for index, label in enumerate(labels.tolist()):
        grouped.setdefault(int(label), []).append(index)
    return sorted(grouped.values())


def understand(profile: CatalogProfile, query: np.ndarray) -> QueryIntent:
    """The intended categories and the catalog's similarity spread for ``query`` (a centred unit vector).

    Kinds of product are scored (``_kinds``); every category of an intended kind is intended.
    """
    mean, spread = profile.spread(query)
    similarities = profile.centroids @ query
    everything = frozenset(name for kind in profile.kinds for name in kind)
    if len(similarities) < MIN_CATEGORIES:
        return QueryIntent(everything, {name: 0.0 for name in everything}, mean, spread)
    z = (similarities - similarities.mean()) / max(float(similarities.std()), 1e-12)
    best = float(z.max())
    scores = {name: float(score) for kind, score in zip(profile.kinds, z.tolist(), strict=True) for name in kind}
    intended = frozenset(name for name, score in scores.items() if score >= best - INTENT_BAND)
    return QueryIntent(intended, scores, mean, spread)


def _leave_one_out_cohesion(members: np.ndarray) -> float:
    """Median cosine of each product to the centroid of the *other* products of its category."""
    total = members.sum(axis=0)
    others = (total[None, :] - members) / (len(members) - 1)
    cosines = np.einsum("ij,ij->i", members, others) / np.maximum(
        np.linalg.norm(members, axis=1) * np.linalg.norm(others, axis=1), 1e-12
    )
    return float(np.median(cosines))


class ProfileCache:
    """One profile per index version, built on first use by the first search that needs it."""

    def __init__(self) -> None:
        self._profile: CatalogProfile | None = None
        self._lock = threading.Lock()

    def get(self, version: str, build: Callable[[], CatalogProfile]) -> CatalogProfile:
        profile = self._profile
        if profile is not None and profile.version == version:
            return profile
        with self._lock:
            if self._profile is None or self._profile.version != version:
                self._profile = build()
            assert self._profile is not None
            return self._profile

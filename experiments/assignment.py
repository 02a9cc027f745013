"""Sticky, hash-based traffic splitting with GrowthBook's semantics (DESIGN.md §5).

A unit (visitor cookie or API ``user``) is hashed with the experiment's seed; the hash picks a variant through
bucket ranges laid out by weight over a coverage fraction. Nothing is stored: the same unit and seed give the
same variant forever, and because each variant's range starts where its weight says (not where coverage says),
raising coverage only adds units, never moves an included one (GrowthBook's ``getBucketRanges``).

Everything here is pure and framework-free: the database model is converted to :class:`ExperimentDefinition`,
and the web tier logs an exposure only when :attr:`Assignment.in_experiment` is true (once per unit: the event
store enforces the uniqueness).

Reference: GrowthBook JavaScript SDK ``packages/sdk-js/src/util.ts`` (``getEqualWeights``, ``getBucketRanges``,
``chooseVariation``, ``inNamespace``) and ``GrowthBook._run``; verified against the SDK's ``cases.json``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from experiments.hashing import gb_hash

BucketRange = tuple[float, float]
Attributes = Mapping[str, object]

#: GrowthBook falls back to equal weights when the weights' sum is outside this band.
_WEIGHT_SUM_TOLERANCE = 0.01


class ExperimentStatus(StrEnum):
    DRAFT = "draft"
    RUNNING = "running"
    STOPPED = "stopped"


class ExperimentKind(StrEnum):
    AB = "ab"
    INTERLEAVING = "interleaving"


class AssignmentReason(StrEnum):
    ASSIGNED = "assigned"  # hashed into a variant: log an exposure
    NOT_RUNNING = "not_running"  # draft or stopped: serve control, no exposure
    HOLDOUT = "holdout"  # in the experiment's holdout: serve control, no exposure


# --- GrowthBook primitives -----------------------------------------------------------------------------------------


def get_equal_weights(num_variations: int) -> list[float]:
    """``1/n`` for each of ``n`` variations; empty for ``n <= 0`` (GrowthBook ``getEqualWeights``)."""
    if num_variations <= 0:
        return []
    return [1.0 / num_variations] * num_variations


def get_bucket_ranges(
    num_variations: int, coverage: float = 1.0, weights: Sequence[float] | None = None
) -> list[BucketRange]:
    """Variant ranges on [0, 1), exactly as GrowthBook's ``getBucketRanges``.

    Variant ``i`` owns ``[start_i, start_i + coverage * w_i)`` with ``start_i`` the cumulative weight before it.
    The start does not depend on coverage, which is what keeps included units in place when coverage grows.
    Coverage is clamped to [0, 1]; weights of the wrong length, or whose sum is outside 1 ± 0.01, are replaced by
    equal weights (GrowthBook does not rescale; use :func:`normalize_weights` first for weights like ``[50, 50]``).
    """
    coverage = min(max(coverage, 0.0), 1.0)
    equal = get_equal_weights(num_variations)
    chosen = list(weights) if weights is not None else equal
    if len(chosen) != num_variations:
        chosen = equal
    total = sum(chosen)
    if total < 1 - _WEIGHT_SUM_TOLERANCE or total > 1 + _WEIGHT_SUM_TOLERANCE:
        chosen = equal
    ranges: list[BucketRange] = []
    cumulative = 0.0
    for weight in chosen:
        start = cumulative
        cumulative += weight
        ranges.append((start, start + coverage * weight))
    return ranges


def in_range(n: float, bucket_range: BucketRange) -> bool:
    """Half-open ``[start, end)``, so adjacent ranges never share a unit."""
    return bucket_range[0] <= n < bucket_range[1]


def choose_variant(n: float, ranges: Sequence[BucketRange]) -> int:
    """Index of the first range holding ``n``; -1 when ``n`` is outside coverage (GrowthBook ``chooseVariation``)."""
    for index, bucket_range in enumerate(ranges):
        if in_range(n, bucket_range):
            return index
    return -1


def normalize_weights(weights: Sequence[float]) -> tuple[float, ...]:
    """Rescale non-negative weights to sum to 1, so the store may keep ``[1, 1]`` or ``[50, 50]``."""
    values = [float(w) for w in weights]
    if not values or any(not math.isfinite(w) or w < 0 for w in values):
        raise ValueError(f"weights must be finite and non-negative, got {list(weights)!r}")
    largest = max(values)
    if largest <= 0:
        raise ValueError("weights must not all be zero")
    scaled = [w / largest for w in values]  # first, so two weights of 1e308 do not sum to inf
    total = math.fsum(scaled)
    return tuple(w / total for w in scaled)


# --- namespaces and holdouts ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Namespace:
    """A slice ``[start, end)`` of a named namespace; experiments with disjoint slices of one namespace share no unit.

    GrowthBook hashes the unit once per namespace (``hash("__" + name, unit, 1)``), independently of any experiment
    seed, so the slices partition traffic and each experiment then splits its own slice.
    """

    name: str
    start: float
    end: float

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("namespace name must not be empty")
        if not 0.0 <= self.start <= self.end <= 1.0:
            raise ValueError(f"namespace range must satisfy 0 <= start <= end <= 1, got [{self.start}, {self.end})")

    def overlaps(self, other: Namespace) -> bool:
        return self.name == other.name and self.start < other.end and other.start < self.end


def in_namespace(unit_id: str, namespace: Namespace) -> bool:
    """GrowthBook ``inNamespace``: the legacy v1 hash (1,000 buckets) of the unit with seed ``"__" + name``."""
    n = gb_hash("__" + namespace.name, unit_id, 1)
    if n is None:  # unreachable for version 1; keeps the type checker honest
        return False
    return namespace.start <= n < namespace.end


@dataclass(frozen=True)
class Holdout:
    """A share of units kept on control and out of every experiment that names this holdout.

    Held-out units are measured against everyone else to see the long-run effect of all shipped changes together.
    Its own seed makes membership independent of the experiments' variant hashes.
    """

    key: str
    fraction: float
    seed: str | None = None

    def __post_init__(self) -> None:
        if not self.key:
            raise ValueError("holdout key must not be empty")
        if not 0.0 <= self.fraction < 1.0:
            raise ValueError(f"holdout fraction must be in [0, 1), got {self.fraction}")

    @property
    def effective_seed(self) -> str:
        return self.seed if self.seed is not None else self.key


def in_holdout(unit_id: str, holdout: Holdout) -> bool:
    n = gb_hash(holdout.effective_seed, unit_id, 2)
    return n is not None and n < holdout.fraction


# --- experiment definition and assignment --------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    key: str
    weight: float = 1.0
    name: str = ""


@dataclass(frozen=True)
class ExperimentDefinition:
    """What assignment needs to know about an experiment; the SQL model converts itself to this.

    ``variants[0]`` is control. Weights are relative (normalised here). ``seed`` defaults to ``key``; changing the
    seed (or the weights) re-randomises everyone, so do it only when starting a new phase. ``languages`` and
    ``markets`` are targeting allow-lists (empty = everyone); a language target ``"de"`` matches ``"de-CH"`` too.
    """

    key: str
    variants: tuple[Variant, ...]
    status: ExperimentStatus = ExperimentStatus.RUNNING
    coverage: float = 1.0
    seed: str | None = None
    hash_version: int = 2
    namespace: Namespace | None = None
    holdout: Holdout | None = None
    languages: frozenset[str] = field(default_factory=frozenset)
    markets: frozenset[str] = field(default_factory=frozenset)
    kind: ExperimentKind = ExperimentKind.AB

    def __post_init__(self) -> None:
        if not self.key:
            raise ValueError("experiment key must not be empty")
        object.__setattr__(self, "status", ExperimentStatus(self.status))
        object.__setattr__(self, "kind", ExperimentKind(self.kind))
        object.__setattr__(self, "variants", tuple(self.variants))
        if len(self.variants) < 2:
            raise ValueError(f"experiment {self.key!r} needs at least two variants (control first)")
        keys = [variant.key for variant in self.variants]
        if len(set(keys)) != len(keys) or any(not key for key in keys):
            raise ValueError(f"experiment {self.key!r} has empty or duplicate variant keys: {keys}")
        if self.kind is ExperimentKind.INTERLEAVING and len(self.variants) != 2:
            raise ValueError("an interleaving experiment compares exactly two rankers")
        if not (math.isfinite(self.coverage) and 0.0 <= self.coverage <= 1.0):
            raise ValueError(f"coverage must be in [0, 1], got {self.coverage}")
        if self.hash_version not in (1, 2):
            raise ValueError(f"hash_version must be 1 or 2, got {self.hash_version}")
        normalize_weights([variant.weight for variant in self.variants])  # finite, non-negative
        if any(variant.weight <= 0 for variant in self.variants):
            # a zero-weight arm gets no units, breaks the SRM check and cannot be analysed: drop it in a new phase
            raise ValueError(f"experiment {self.key!r}: every variant needs a positive weight")
        object.__setattr__(self, "languages", frozenset(_normalize_tag(tag) for tag in self.languages))
        object.__setattr__(self, "markets", frozenset(market.strip().upper() for market in self.markets))

    @property
    def effective_seed(self) -> str:
        return self.seed if self.seed is not None else self.key

    @property
    def weights(self) -> tuple[float, ...]:
        return normalize_weights([variant.weight for variant in self.variants])

    def bucket_ranges(self) -> list[BucketRange]:
        return get_bucket_ranges(len(self.variants), self.coverage, self.weights)


@dataclass(frozen=True)
class Assignment:
    """The variant to serve. Log an exposure only when ``in_experiment`` (once per unit and experiment).

    ``interleaved`` is set for units in an interleaving experiment: show the team-draft merge of ``variants[0]``
    (team A) and ``variants[1]`` (team B) from :mod:`experiments.interleaving`; ``variant_index`` then names
    control, the ranking to fall back to if the merge cannot be built.
    """

    experiment_key: str
    variant_index: int
    variant_key: str
    in_experiment: bool
    reason: AssignmentReason
    bucket: float | None = None
    interleaved: bool = False


def _normalize_tag(tag: str) -> str:
    return tag.strip().replace("_", "-").lower()


def language_matches(targets: frozenset[str], language: str | None) -> bool:
    """Empty target set matches all; ``"de"`` matches ``"de"`` and ``"de-CH"``; ``"de-ch"`` matches only itself."""
    if not targets:
        return True
    if not language:
        return False
    tag = _normalize_tag(language)
    return tag in targets or tag.split("-", 1)[0] in targets


def market_matches(targets: frozenset[str], market: str | None) -> bool:
    if not targets:
        return True
    return bool(market) and str(market).strip().upper() in targets


def _attribute(attributes: Attributes | None, name: str) -> str | None:
    if not attributes:
        return None
    value = attributes.get(name)
    return None if value is None else str(value)


def _control(experiment: ExperimentDefinition, reason: AssignmentReason, bucket: float | None = None) -> Assignment:
    return Assignment(experiment.key, 0, experiment.variants[0].key, False, reason, bucket)


def assign(
    experiment: ExperimentDefinition, unit_id: str | None, attributes: Attributes | None = None
) -> Assignment | None:
    """Decide what ``unit_id`` sees in ``experiment``.

    Returns ``None`` when the experiment does not concern this unit (no unit id, language/market targeting does
    not match, the unit hashes outside the experiment's namespace slice or coverage): the caller serves its
    default and moves on to other experiments, as GrowthBook skips a rule. Otherwise returns an
    :class:`Assignment`; a draft or stopped experiment, or a held-out unit, gets control with
    ``in_experiment=False`` so no exposure is logged. In an interleaving experiment every included unit gets
    ``interleaved=True`` instead of a variant of its own.

    ``attributes`` may carry ``"language"`` (BCP-47 tag, e.g. ``"de-CH"``) and ``"market"`` (e.g. ``"DE"``).
    """
    if not unit_id:
        return None
    if not language_matches(experiment.languages, _attribute(attributes, "language")):
        return None
    if not market_matches(experiment.markets, _attribute(attributes, "market")):
        return None
    if experiment.namespace is not None and not in_namespace(unit_id, experiment.namespace):
        return None
    if experiment.status is not ExperimentStatus.RUNNING:
        return _control(experiment, AssignmentReason.NOT_RUNNING)
    if experiment.holdout is not None and in_holdout(unit_id, experiment.holdout):
        return _control(experiment, AssignmentReason.HOLDOUT)
    n = gb_hash(experiment.effective_seed, unit_id, experiment.hash_version)
    if n is None:
        return None
    index = choose_variant(n, experiment.bucket_ranges())
    if index < 0:
        return None
    if experiment.kind is ExperimentKind.INTERLEAVING:  # coverage decides who takes part; everyone sees both rankers
        return Assignment(experiment.key, 0, experiment.variants[0].key, True, AssignmentReason.ASSIGNED, n, True)
    return Assignment(experiment.key, index, experiment.variants[index].key, True, AssignmentReason.ASSIGNED, n)

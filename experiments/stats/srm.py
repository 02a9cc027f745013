"""Sample ratio mismatch: are units split the way the weights say? If not, nothing else can be trusted."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats as scipy_stats

#: Flag threshold (GrowthBook and most platforms use 0.001: SRM checks run on every look, so a strict bar).
SRM_P_THRESHOLD = 0.001


@dataclass(frozen=True)
class SrmResult:
    observed: list[int]
    expected: list[float]
    chi_square: float
    p_value: float
    flagged: bool
    threshold: float = SRM_P_THRESHOLD


def weight_shares(weights: Sequence[float]) -> list[float]:
    """Each weight's share of the total, for any positive finite weights (``1e308`` and ``5e-324`` included).

    Dividing by the largest weight first keeps the sum finite (two ``1e308`` would overflow to ``inf`` and
    every share would become 0); a weight too small to register next to the largest gets share 0, which the
    chi-square below handles instead of dividing by it. Stored weights are bounded where they are entered
    (``experiments.manage``), but a page must never depend on that.
    """
    values = [float(w) for w in weights]
    if not values or any(not (math.isfinite(w) and w > 0) for w in values):
        raise ValueError("weights must be positive finite numbers")
    largest = max(values)
    scaled = [w / largest for w in values]
    total = math.fsum(scaled)
    return [w / total for w in scaled]


def _pearson_term(observed: int, expected: float) -> float:
    """``(o - e)² / e``; an arm expected to get (practically) nothing that got units is an infinite mismatch."""
    if expected > 0:
        return (observed - expected) ** 2 / expected
    return 0.0 if observed == 0 else math.inf


def srm_check(units: Sequence[int], weights: Sequence[float], threshold: float = SRM_P_THRESHOLD) -> SrmResult:
    """Pearson chi-square goodness-of-fit of unit counts against the expected split (gbstats ``check_srm``).

    ``weights`` are relative (normalised here). With no units at all there is nothing to test: p = 1.
    """
    if len(units) != len(weights) or len(units) < 2:
        raise ValueError("need one weight per variant and at least two variants")
    shares = weight_shares(weights)
    if any(u < 0 for u in units):
        raise ValueError("unit counts must be non-negative")
    total_units = sum(units)
    expected = [share * total_units for share in shares]
    if total_units == 0:
        return SrmResult(list(units), expected, 0.0, 1.0, False, threshold)
    chi_square = sum(_pearson_term(o, e) for o, e in zip(units, expected, strict=True))
    p_value = float(scipy_stats.chi2.sf(chi_square, len(units) - 1))
    return SrmResult([int(u) for u in units], expected, float(chi_square), p_value, p_value < threshold, threshold)

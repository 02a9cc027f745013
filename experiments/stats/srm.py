"""Sample ratio mismatch: are units split the way the weights say? If not, nothing else can be trusted."""

from __future__ import annotations

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


def srm_check(units: Sequence[int], weights: Sequence[float], threshold: float = SRM_P_THRESHOLD) -> SrmResult:
    """Pearson chi-square goodness-of-fit of unit counts against the expected split (gbstats ``check_srm``).

    ``weights`` are relative (normalised here). With no units at all there is nothing to test: p = 1.
    """
    if len(units) != len(weights) or len(units) < 2:
        raise ValueError("need one weight per variant and at least two variants")
    if any(w <= 0 for w in weights):
        raise ValueError("SRM weights must be positive")
    if any(u < 0 for u in units):
        raise ValueError("unit counts must be non-negative")
    total_units = sum(units)
    total_weight = sum(weights)
    expected = [w / total_weight * total_units for w in weights]
    if total_units == 0:
        return SrmResult(list(units), expected, 0.0, 1.0, False, threshold)
    chi_square = sum((o - e) ** 2 / e for o, e in zip(units, expected, strict=True))
    p_value = float(scipy_stats.chi2.sf(chi_square, len(units) - 1))
    return SrmResult([int(u) for u in units], expected, float(chi_square), p_value, p_value < threshold, threshold)

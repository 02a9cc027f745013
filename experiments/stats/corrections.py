"""Multiple-comparison correction across the treatment-vs-control comparisons of one metric."""

from __future__ import annotations

from collections.abc import Sequence


def holm_adjust(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm–Bonferroni adjusted p-values (Holm 1979), in input order; ``None`` entries pass through untouched.

    Controls the family-wise error rate at alpha under any dependence, and is uniformly more powerful than plain
    Bonferroni. Untestable comparisons (``None``) are not part of the family, so they do not inflate ``m``.
    Matches ``statsmodels.stats.multitest.multipletests(method="holm")``.
    """
    indexed = [(p, i) for i, p in enumerate(p_values) if p is not None]
    m = len(indexed)
    adjusted: list[float | None] = list(p_values)
    running_max = 0.0
    for rank, (p, i) in enumerate(sorted(indexed)):
        running_max = max(running_max, min(1.0, (m - rank) * p))
        adjusted[i] = running_max
    return adjusted

"""Sample size and minimum detectable effect for a two-sided, two-sample comparison (normal approximation).

Power of a two-sided level-alpha z-test when the true lift is ``delta`` and its standard error is ``se``:
``Phi(|delta|/se - z) + Phi(-|delta|/se - z)`` with ``z = Phi^-1(1 - alpha/2)``; both rejection tails are counted,
as statsmodels' ``NormalIndPower`` does, so the numbers agree with it. ``se^2 = var_c/n_c + var_t/n_t``.

Inputs are the per-unit baseline mean and variance, which the caller can read off pre-period sufficient
statistics (:func:`baseline_moments`): for a ratio metric such as CTR that is the delta-method variance per unit.
With several treatment arms pass ``num_comparisons``: alpha is split Bonferroni-style, which is conservative for
the Holm correction the analysis applies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import optimize
from scipy import stats as scipy_stats

from experiments.stats.sufficient import MetricStats


@dataclass(frozen=True)
class SampleSize:
    n_control: int
    n_treatment: int
    n_total: int  # control + ONE treatment arm; multiply the treatment part by the number of arms
    exact_n_control: float  # before rounding up, for comparisons with other calculators


def _critical_value(alpha: float, num_comparisons: int) -> float:
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if num_comparisons < 1:
        raise ValueError("num_comparisons must be >= 1")
    return float(scipy_stats.norm.isf(alpha / num_comparisons / 2))


def power_two_sided(delta: float, std_error: float, alpha: float = 0.05, num_comparisons: int = 1) -> float:
    """Probability that a two-sided z-test rejects when the true lift is ``delta``."""
    z = _critical_value(alpha, num_comparisons)
    shift = abs(delta) / std_error
    return float(scipy_stats.norm.sf(z - shift) + scipy_stats.norm.cdf(-z - shift))


def _absolute_delta(baseline_mean: float, mde: float, relative: bool) -> float:
    delta = mde * baseline_mean if relative else mde
    if delta == 0:
        raise ValueError("the minimum detectable effect must be non-zero")
    return delta


def baseline_moments(stats: MetricStats) -> tuple[float, float]:
    """Per-unit mean and variance from pre-period (or control) sufficient statistics."""
    return stats.mean, stats.variance


def required_sample_size(
    *,
    baseline_mean: float,
    baseline_variance: float,
    mde: float,
    relative: bool = True,
    alpha: float = 0.05,
    power: float = 0.8,
    treatment_ratio: float = 1.0,
    num_comparisons: int = 1,
    treatment_variance: float | None = None,
) -> SampleSize:
    """Units needed per arm to detect ``mde`` (relative to ``baseline_mean`` when ``relative``) with ``power``.

    ``treatment_ratio`` = n_treatment / n_control. ``treatment_variance`` defaults to the baseline variance
    (use :func:`required_sample_size_proportion` for rates, where it changes with the effect).
    """
    if not 0 < power < 1:
        raise ValueError(f"power must be in (0, 1), got {power}")
    if baseline_variance <= 0 or treatment_ratio <= 0:
        raise ValueError("variance and treatment_ratio must be positive")
    delta = _absolute_delta(baseline_mean, mde, relative)
    var_t = baseline_variance if treatment_variance is None else treatment_variance

    def shortfall(n_control: float) -> float:
        se = math.sqrt(baseline_variance / n_control + var_t / (n_control * treatment_ratio))
        return power_two_sided(delta, se, alpha, num_comparisons) - power

    upper = 1.0
    while shortfall(upper) < 0:
        upper *= 2
        if upper > 1e15:
            raise ValueError("effect too small to detect with any realistic sample")
    lower = upper / 2 if upper > 1 else 1e-9
    exact = float(optimize.brentq(shortfall, lower, upper, xtol=1e-10, rtol=1e-14))
    n_control = math.ceil(exact - 1e-9)
    n_treatment = math.ceil(exact * treatment_ratio - 1e-9)
    return SampleSize(n_control, n_treatment, n_control + n_treatment, exact)


def required_sample_size_proportion(
    *,
    baseline_rate: float,
    mde: float,
    relative: bool = True,
    alpha: float = 0.05,
    power: float = 0.8,
    treatment_ratio: float = 1.0,
    num_comparisons: int = 1,
) -> SampleSize:
    """:func:`required_sample_size` for a conversion rate, with variance ``p (1 - p)`` at each arm's own rate."""
    if not 0 < baseline_rate < 1:
        raise ValueError(f"baseline_rate must be in (0, 1), got {baseline_rate}")
    treatment_rate = baseline_rate + _absolute_delta(baseline_rate, mde, relative)
    if not 0 < treatment_rate < 1:
        raise ValueError(f"the treatment rate {treatment_rate} implied by the effect is outside (0, 1)")
    return required_sample_size(
        baseline_mean=baseline_rate,
        baseline_variance=baseline_rate * (1 - baseline_rate),
        mde=treatment_rate - baseline_rate,
        relative=False,
        alpha=alpha,
        power=power,
        treatment_ratio=treatment_ratio,
        num_comparisons=num_comparisons,
        treatment_variance=treatment_rate * (1 - treatment_rate),
    )


def minimum_detectable_effect(
    *,
    baseline_mean: float,
    baseline_variance: float,
    n_control: float,
    n_treatment: float,
    relative: bool = True,
    alpha: float = 0.05,
    power: float = 0.8,
    num_comparisons: int = 1,
) -> float:
    """Smallest lift (relative to ``baseline_mean`` when ``relative``) detectable with ``power`` at these sizes.

    Assumes equal variance in both arms (for a rate, pass ``p (1 - p)`` of the baseline; close enough for small
    effects, and :func:`required_sample_size_proportion` is exact for a given effect).
    """
    if not 0 < power < 1:
        raise ValueError(f"power must be in (0, 1), got {power}")
    if baseline_variance <= 0 or n_control <= 0 or n_treatment <= 0:
        raise ValueError("variance and sample sizes must be positive")
    se = math.sqrt(baseline_variance / n_control + baseline_variance / n_treatment)

    def shortfall(delta: float) -> float:
        return power_two_sided(delta, se, alpha, num_comparisons) - power

    upper = se
    while shortfall(upper) < 0:
        upper *= 2
    delta = float(optimize.brentq(shortfall, 0.0, upper, xtol=1e-14, rtol=1e-14))
    if not relative:
        return delta
    if baseline_mean == 0:
        raise ValueError("relative MDE needs a non-zero baseline mean")
    return delta / abs(baseline_mean)

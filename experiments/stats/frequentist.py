"""Fixed-horizon tests: Welch t-test with delta-method relative lift, and the two-proportion z-test.

Conventions (deliberately gbstats' frequentist engine, ``gbstats.frequentist.tests.TwoSidedTTest``, so numbers
match GrowthBook's):

- absolute lift ``mb - ma`` with variance ``vb/nb + va/na``;
- relative lift ``(mb - ma) / ma`` with the delta-method variance ``vb/(ma^2 nb) + va mb^2/(ma^4 na)`` (a
  first-order approximation; textbook alternatives such as Fieller intervals differ for small samples);
- both use Student's t with Welch–Satterthwaite degrees of freedom computed from the *per-variant* variances,
  also for the relative lift and also for proportions (gbstats does the same);
- proportions use ``p (1 - p)`` as variance (no ``n/(n-1)``).

The two-proportion z-test (pooled under H0, as ``statsmodels.stats.proportion.proportions_ztest``) is offered
separately because it is the textbook test for conversion.

All ``*_arrays`` functions broadcast over numpy arrays so an A/A simulation can test thousands of experiments in
a single call; the scalar wrappers return typed results.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats as scipy_stats

from experiments.stats.sufficient import MetricStats

ArrayLike = Any


@dataclass(frozen=True)
class LiftEstimate:
    """One lift (absolute or relative) with its two-sided CI and p-value, all from the same test."""

    estimate: float
    std_error: float
    ci_lower: float
    ci_upper: float
    p_value: float
    df: float | None = None  # degrees of freedom of the t reference; None for normal / sequential


def lift_and_variance(
    mean_a: ArrayLike,
    var_a: ArrayLike,
    n_a: ArrayLike,
    mean_b: ArrayLike,
    var_b: ArrayLike,
    n_b: ArrayLike,
    relative: bool,
    *,
    base_a: ArrayLike | None = None,
    base_b: ArrayLike | None = None,
) -> tuple[ArrayLike, ArrayLike]:
    """Point estimate and variance of the lift of B over A (gbstats ``frequentist_diff`` / ``frequentist_variance``).

    ``base_a`` / ``base_b`` are the unadjusted means a relative lift is a fraction of; they differ from
    ``mean_a`` / ``mean_b`` only for regression-adjusted (CUPED) means, whose lift is still relative to the
    observed control mean (gbstats ``unadjusted_mean``).
    """
    mean_a = np.asarray(mean_a, dtype=float)
    mean_b = np.asarray(mean_b, dtype=float)
    base_a = mean_a if base_a is None else np.asarray(base_a, dtype=float)
    base_b = mean_b if base_b is None else np.asarray(base_b, dtype=float)
    var_a = np.asarray(var_a, dtype=float)
    var_b = np.asarray(var_b, dtype=float)
    n_a = np.asarray(n_a, dtype=float)
    n_b = np.asarray(n_b, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        if relative:
            estimate = (mean_b - mean_a) / base_a
            variance = var_b / (base_a**2 * n_b) + var_a * base_b**2 / (base_a**4 * n_a)
        else:
            estimate = mean_b - mean_a
            variance = var_b / n_b + var_a / n_a
    return estimate, variance


def welch_satterthwaite_df(var_a: ArrayLike, n_a: ArrayLike, var_b: ArrayLike, n_b: ArrayLike) -> ArrayLike:
    """Welch–Satterthwaite degrees of freedom from per-variant variances (``n - 1`` each)."""
    var_a = np.asarray(var_a, dtype=float)
    var_b = np.asarray(var_b, dtype=float)
    n_a = np.asarray(n_a, dtype=float)
    n_b = np.asarray(n_b, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (var_b / n_b + var_a / n_a) ** 2 / (var_b**2 / (n_b**2 * (n_b - 1)) + var_a**2 / (n_a**2 * (n_a - 1)))


def t_interval_arrays(
    estimate: ArrayLike, variance: ArrayLike, df: ArrayLike, alpha: float, null_value: float = 0.0
) -> tuple[ArrayLike, ArrayLike, ArrayLike]:
    """Two-sided t interval and p-value: ``(lower, upper, p)``."""
    std_error = np.sqrt(variance)
    with np.errstate(divide="ignore", invalid="ignore"):
        t_stat = (np.asarray(estimate) - null_value) / std_error
    half_width = scipy_stats.t.ppf(1 - alpha / 2, df) * std_error
    p_value = 2 * scipy_stats.t.sf(np.abs(t_stat), df)
    return estimate - half_width, estimate + half_width, p_value


def welch_arrays(
    mean_a: ArrayLike,
    var_a: ArrayLike,
    n_a: ArrayLike,
    mean_b: ArrayLike,
    var_b: ArrayLike,
    n_b: ArrayLike,
    *,
    relative: bool,
    alpha: float = 0.05,
    base_a: ArrayLike | None = None,
    base_b: ArrayLike | None = None,
) -> dict[str, ArrayLike]:
    """Vectorised Welch test of B vs A: keys ``estimate, std_error, ci_lower, ci_upper, p_value, df``.

    ``base_a`` / ``base_b``: unadjusted means for a regression-adjusted relative lift (see :func:`lift_and_variance`).
    """
    estimate, variance = lift_and_variance(
        mean_a, var_a, n_a, mean_b, var_b, n_b, relative, base_a=base_a, base_b=base_b
    )
    df = welch_satterthwaite_df(var_a, n_a, var_b, n_b)
    lower, upper, p_value = t_interval_arrays(estimate, variance, df, alpha)
    return {
        "estimate": estimate,
        "std_error": np.sqrt(variance),
        "ci_lower": lower,
        "ci_upper": upper,
        "p_value": p_value,
        "df": df,
    }


def two_proportion_z_arrays(
    successes_a: ArrayLike, n_a: ArrayLike, successes_b: ArrayLike, n_b: ArrayLike, *, pooled: bool = True
) -> tuple[ArrayLike, ArrayLike]:
    """Two-sided two-proportion z-test of ``p_b - p_a = 0``: ``(z, p_value)``.

    ``pooled=True`` uses the pooled rate under H0 for the standard error (the textbook test and statsmodels'
    default); ``pooled=False`` is the Wald test with per-group variances.
    """
    successes_a = np.asarray(successes_a, dtype=float)
    successes_b = np.asarray(successes_b, dtype=float)
    n_a = np.asarray(n_a, dtype=float)
    n_b = np.asarray(n_b, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        rate_a = successes_a / n_a
        rate_b = successes_b / n_b
        if pooled:
            pooled_rate = (successes_a + successes_b) / (n_a + n_b)
            std_error = np.sqrt(pooled_rate * (1 - pooled_rate) * (1 / n_a + 1 / n_b))
        else:
            std_error = np.sqrt(rate_a * (1 - rate_a) / n_a + rate_b * (1 - rate_b) / n_b)
        z = (rate_b - rate_a) / std_error
    return z, 2 * scipy_stats.norm.sf(np.abs(z))


# --- scalar API ----------------------------------------------------------------------------------------------------


class UntestableError(ValueError):
    """The data cannot support a test (too few units, no variance, zero baseline); the message says which."""


def check_testable(control: MetricStats, treatment: MetricStats, *, relative: bool) -> None:
    if control.n < 2 or treatment.n < 2:
        raise UntestableError("needs at least 2 units in each variant")
    # gbstats refuses when either variance is zero (e.g. no conversions yet in one arm): the Welch reference
    # distribution then rests on one arm alone and small-sample p-values are not trustworthy.
    if control.variance <= 0 or treatment.variance <= 0:
        raise UntestableError("zero variance in a variant")
    if relative and (control.mean == 0 or control.unadjusted_mean == 0):
        raise UntestableError("control mean is zero, relative lift undefined")


def tested_lift(control: MetricStats, treatment: MetricStats, *, relative: bool) -> tuple[float, float]:
    """Estimate and variance of the lift of treatment over control, after :func:`check_testable`: where every
    two-arm test (Welch, sequential, Bayesian) starts. Relative lifts are fractions of the unadjusted control mean."""
    check_testable(control, treatment, relative=relative)
    estimate, variance = lift_and_variance(
        control.mean,
        control.variance,
        control.n,
        treatment.mean,
        treatment.variance,
        treatment.n,
        relative,
        base_a=control.unadjusted_mean,
        base_b=treatment.unadjusted_mean,
    )
    return float(estimate), float(variance)


def welch_test(control: MetricStats, treatment: MetricStats, *, relative: bool, alpha: float = 0.05) -> LiftEstimate:
    """Welch t-test of treatment vs control on means, rates or delta-method ratios (gbstats ``TwoSidedTTest``).

    Raises :class:`UntestableError` when the data cannot support a test.
    """
    estimate, variance = tested_lift(control, treatment, relative=relative)
    df = welch_satterthwaite_df(control.variance, control.n, treatment.variance, treatment.n)
    lower, upper, p_value = t_interval_arrays(estimate, variance, df, alpha)
    return LiftEstimate(
        estimate=estimate,
        std_error=float(np.sqrt(variance)),
        ci_lower=float(lower),
        ci_upper=float(upper),
        p_value=float(p_value),
        df=float(df),
    )


def two_proportion_z_test(
    control_successes: float, control_n: int, treatment_successes: float, treatment_n: int, *, pooled: bool = True
) -> tuple[float, float]:
    """Scalar two-proportion z-test: ``(z, two-sided p)``; see :func:`two_proportion_z_arrays`."""
    if control_n < 1 or treatment_n < 1:
        raise UntestableError("needs at least 1 unit in each variant")
    total = control_successes + treatment_successes
    if pooled and (total == 0 or total == control_n + treatment_n):
        raise UntestableError("every unit converted or none did: no variance")
    z, p_value = two_proportion_z_arrays(control_successes, control_n, treatment_successes, treatment_n, pooled=pooled)
    if not np.isfinite(z):
        raise UntestableError("no variance")
    return float(z), float(p_value)

"""Always-valid inference: asymptotic confidence sequences, so merchandisers may look every day.

A fixed-horizon 95 % interval checked daily and acted on at the first "significant" look has a far higher false
positive rate than 5 %. An asymptotic confidence sequence (Waudby-Smith, Ramdas et al., "Time-uniform central
limit theory and asymptotic confidence sequences", arXiv:2103.06476, eq. 9; normal-mixture boundary of Howard et al.
2021) covers the true effect at *all* sample sizes simultaneously with probability >= 1 - alpha, so any number of
peeks is fine.

Implementation mirrors gbstats' ``SequentialTwoSidedTTest`` exactly:

- ``N = n_a + n_b`` and ``s^2 = Var(lift) * N`` (the per-observation variance implied by the fixed-horizon one);
- ``rho^2 = (-2 ln alpha + ln(-2 ln alpha + 1)) / tuning`` (eq. 161), where ``tuning`` is the total sample size
  at which the sequence is tightest (gbstats default 5,000);
- half-width ``sqrt(s^2) * sqrt(2 (N rho^2 + 1) ln(sqrt(N rho^2 + 1) / alpha) / (N rho)^2)``;
- p-value ``min(1, 1 / e)`` with the mixture e-value ``e = exp(rho^2 S / (2 (N rho^2 + 1))) / sqrt(N rho^2 + 1)``
  and ``S = (lift - null)^2 N / Var(lift)`` (eq. 155), so ``p < alpha`` exactly when the sequence excludes the null.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from experiments.stats.frequentist import LiftEstimate, tested_lift
from experiments.stats.sufficient import MetricStats

ArrayLike = Any

#: gbstats' default: the sequence is tightest around 5,000 units in total.
DEFAULT_TUNING = 5000.0


def mixture_rho(alpha: float, tuning: float) -> float:
    """Mixture scale making the boundary tightest at ``tuning`` total units (arXiv:2103.06476 eq. 161)."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if tuning <= 0:
        raise ValueError(f"tuning must be positive, got {tuning}")
    return float(np.sqrt((-2 * np.log(alpha) + np.log(-2 * np.log(alpha) + 1)) / tuning))


def sequential_arrays(
    estimate: ArrayLike,
    variance: ArrayLike,
    n_total: ArrayLike,
    *,
    alpha: float = 0.05,
    tuning: float = DEFAULT_TUNING,
    null_value: float = 0.0,
) -> tuple[ArrayLike, ArrayLike, ArrayLike]:
    """Confidence-sequence bounds and always-valid p-value: ``(lower, upper, p)``; broadcasts over arrays."""
    rho = mixture_rho(alpha, tuning)
    estimate = np.asarray(estimate, dtype=float)
    variance = np.asarray(variance, dtype=float)
    n_total = np.asarray(n_total, dtype=float)
    scaled_variance = variance * n_total
    n_rho2_plus_1 = n_total * rho**2 + 1
    half_width = np.sqrt(scaled_variance) * np.sqrt(
        2 * n_rho2_plus_1 * np.log(np.sqrt(n_rho2_plus_1) / alpha) / (n_total * rho) ** 2
    )
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        statistic = (estimate - null_value) ** 2 * n_total / variance
        # log-space e-value avoids overflow for huge effects; p = min(1, 1/e)
        log_e_value = rho**2 * statistic / (2 * n_rho2_plus_1) - 0.5 * np.log(n_rho2_plus_1)
        p_value = np.minimum(1.0, np.exp(-log_e_value))
    return estimate - half_width, estimate + half_width, p_value


def sequential_test(
    control: MetricStats,
    treatment: MetricStats,
    *,
    relative: bool,
    alpha: float = 0.05,
    tuning: float = DEFAULT_TUNING,
) -> LiftEstimate:
    """Always-valid lift of treatment over control (same lift/variance conventions as :func:`welch_test`)."""
    estimate, variance = tested_lift(control, treatment, relative=relative)
    lower, upper, p_value = sequential_arrays(estimate, variance, control.n + treatment.n, alpha=alpha, tuning=tuning)
    return LiftEstimate(
        estimate=float(estimate),
        std_error=float(np.sqrt(variance)),
        ci_lower=float(lower),
        ci_upper=float(upper),
        p_value=float(p_value),
    )

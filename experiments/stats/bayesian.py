"""Bayesian view of a lift: chance to win and risk, as GrowthBook's default engine reports them.

Merchandisers ask "how likely is B better, and what do I lose if I ship it and I'm wrong?" rather than for a
p-value. The model is gbstats' ``EffectBayesianABTest``: the lift (relative by default) has the normal likelihood
``N(d, V)`` with the same point estimate ``d`` and delta-method variance ``V`` as the fixed-horizon test
(:func:`experiments.stats.frequentist.lift_and_variance`), combined with a Gaussian prior on the effect.

- gbstats' default prior is *improper* (flat): the posterior is ``N(d, V)`` itself. A proper prior
  ``N(m0, s0^2)`` (stated on the relative lift, as GrowthBook does; rescaled by the control mean for an absolute
  lift) shrinks the posterior to ``N((d/V + m0/s0^2) / P, 1/P)`` with precision ``P = 1/V + 1/s0^2``.
- chance to win: posterior ``P(lift > 0)`` (``P(lift < 0)`` for a metric where lower is better);
- risk: expected loss of each decision. Shipping the treatment loses ``E[max(-lift, 0)]``, keeping control loses
  ``E[max(lift, 0)]``; for a normal ``N(mu, s^2)``: ``E[max(X, 0)] = mu Phi(mu/s) + s phi(mu/s)``. For a metric
  where lower is better the two are swapped, as in gbstats.
- credible interval: the posterior's central ``1 - alpha`` interval.

The array function broadcasts, so simulations can run thousands of experiments at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats as scipy_stats

from experiments.stats.frequentist import tested_lift
from experiments.stats.sufficient import MetricStats

ArrayLike = Any


@dataclass(frozen=True)
class GaussianPrior:
    """Prior on the *relative* lift. gbstats' default: improper (flat), so only the data speak."""

    mean: float = 0.0
    stddev: float = 0.1
    proper: bool = False

    def __post_init__(self) -> None:
        if self.proper and not self.stddev > 0:
            raise ValueError(f"a proper prior needs a positive stddev, got {self.stddev}")


@dataclass(frozen=True)
class BayesianResult:
    """Posterior of the lift of treatment over control (relative: a fraction of the control mean)."""

    chance_to_win: float
    expected: float  # posterior mean of the lift
    std_error: float  # posterior standard deviation
    ci_lower: float  # central credible interval at 1 - alpha
    ci_upper: float
    risk_control: float  # expected loss of keeping control (what the treatment's upside would have been)
    risk_treatment: float  # expected loss of shipping the treatment
    relative: bool


def expected_positive_part(mu: ArrayLike, sigma: ArrayLike) -> ArrayLike:
    """``E[max(X, 0)]`` for ``X ~ N(mu, sigma^2)`` in closed form."""
    mu = np.asarray(mu, dtype=float)
    sigma = np.asarray(sigma, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = mu / sigma
    return mu * scipy_stats.norm.cdf(z) + sigma * scipy_stats.norm.pdf(z)


def bayesian_arrays(
    estimate: ArrayLike,
    variance: ArrayLike,
    *,
    prior_mean: float = 0.0,
    prior_variance: float = 0.01,
    proper: bool = False,
    higher_is_better: bool = True,
    alpha: float = 0.05,
) -> dict[str, ArrayLike]:
    """Posterior of a lift with normal likelihood ``N(estimate, variance)``; the prior is on the same scale.

    Keys: ``expected, std_error, chance_to_win, ci_lower, ci_upper, risk_control, risk_treatment``.
    """
    estimate = np.asarray(estimate, dtype=float)
    variance = np.asarray(variance, dtype=float)
    if proper:
        precision = 1 / variance + 1 / prior_variance
        mean = (estimate / variance + prior_mean / prior_variance) / precision
    else:
        precision = 1 / variance
        mean = estimate
    sd = np.sqrt(1 / precision)
    up = scipy_stats.norm.sf(0, mean, sd)  # P(lift > 0)
    gain = expected_positive_part(mean, sd)  # E[max(lift, 0)]
    loss = expected_positive_part(-mean, sd)  # E[max(-lift, 0)]
    z = scipy_stats.norm.ppf(1 - alpha / 2)
    return {
        "expected": mean,
        "std_error": sd,
        "chance_to_win": up if higher_is_better else 1 - up,
        "ci_lower": mean - z * sd,
        "ci_upper": mean + z * sd,
        "risk_control": gain if higher_is_better else loss,
        "risk_treatment": loss if higher_is_better else gain,
    }


def bayesian_test(
    control: MetricStats,
    treatment: MetricStats,
    *,
    relative: bool = True,
    prior: GaussianPrior | None = None,
    higher_is_better: bool = True,
    alpha: float = 0.05,
) -> BayesianResult:
    """gbstats' ``EffectBayesianABTest`` on our statistics (regression-adjusted ones included).

    Raises :class:`~experiments.stats.frequentist.UntestableError` where gbstats returns its uninformative
    default (empty arm, zero variance, zero control mean for a relative lift).
    """
    prior = prior or GaussianPrior()
    estimate, variance = tested_lift(control, treatment, relative=relative)
    scale = 1.0 if relative else abs(control.unadjusted_mean)  # the prior is stated on the relative lift
    out = bayesian_arrays(
        estimate,
        variance,
        prior_mean=prior.mean * scale,
        prior_variance=(prior.stddev * scale) ** 2,
        proper=prior.proper,
        higher_is_better=higher_is_better,
        alpha=alpha,
    )
    return BayesianResult(
        chance_to_win=float(out["chance_to_win"]),
        expected=float(out["expected"]),
        std_error=float(out["std_error"]),
        ci_lower=float(out["ci_lower"]),
        ci_upper=float(out["ci_upper"]),
        risk_control=float(out["risk_control"]),
        risk_treatment=float(out["risk_treatment"]),
        relative=relative,
    )

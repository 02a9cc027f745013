"""CUPED: regression adjustment with each unit's pre-exposure activity, so tests need fewer shoppers.

A shopper who searched and bought a lot last week will likely do so again: much of a metric's variance is
*between shoppers* and has nothing to do with the variant. Subtracting ``theta * (pre - mean(pre))`` from each
unit's metric (Deng, Xu, Kohavi, Walker 2013, "Improving the Sensitivity of Online Controlled Experiments by
Utilizing Pre-Experiment Data") removes the part explained by the pre-period without biasing the lift, because
the pre-period cannot depend on the variant. With correlation ``rho`` between pre and post the variance shrinks
by ``rho^2``.

Conventions follow gbstats' ``RegressionAdjustedStatistic`` so numbers match GrowthBook's:

- one ``theta`` for both arms, from the *pooled* sums: ``Cov(post, pre) / Var(pre)`` (0, i.e. no adjustment,
  when either pooled variance is 0);
- adjusted mean ``mean(post) - theta * mean(pre)``; adjusted variance
  ``Var(post) + theta^2 Var(pre) - 2 theta Cov(post, pre)`` (``n - 1`` sample (co)variances, ``p (1 - p)`` for
  a yes/no metric);
- a relative lift stays relative to the *unadjusted* control mean (``unadjusted_mean``), and its delta-method
  variance uses the unadjusted means too (see :func:`experiments.stats.frequentist.lift_and_variance`).

gbstats 0.8.0 adjusts per-unit means and proportions only; ratio metrics (CTR) are analysed unadjusted.
Everything here is a sum over units, so SQL computes it (``experiments.store.covariates``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from experiments.stats.sufficient import MeanStats, ProportionStats, empty_like, mean_moments, proportion_moments

ArrayLike = Any
BaseStats = MeanStats | ProportionStats


def sum_covariance(n: ArrayLike, sum_x: ArrayLike, sum_y: ArrayLike, sum_xy: ArrayLike) -> ArrayLike:
    """``n - 1`` sample covariance from sums (0 when ``n <= 1``)."""
    n = np.asarray(n, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        covariance = (np.asarray(sum_xy) - np.asarray(sum_x) * np.asarray(sum_y) / n) / (n - 1)
    return np.where(n > 1, covariance, 0.0)


def pooled_theta_arrays(
    joint_post_variance: ArrayLike, joint_pre_variance: ArrayLike, joint_covariance: ArrayLike
) -> np.ndarray:
    """``Cov / Var(pre)`` from both arms pooled; 0 (no adjustment) where either pooled variance is 0."""
    post = np.asarray(joint_post_variance, dtype=float)
    pre = np.asarray(joint_pre_variance, dtype=float)
    usable = (pre != 0) & (post != 0)
    return np.where(usable, np.asarray(joint_covariance, dtype=float) / np.where(usable, pre, 1.0), 0.0)


def adjusted_moments(
    post_mean: ArrayLike,
    post_variance: ArrayLike,
    pre_mean: ArrayLike,
    pre_variance: ArrayLike,
    covariance: ArrayLike,
    theta: ArrayLike,
) -> tuple[ArrayLike, ArrayLike]:
    """Regression-adjusted mean and per-unit variance at a given ``theta``."""
    theta = np.asarray(theta, dtype=float)
    mean = np.asarray(post_mean, dtype=float) - theta * np.asarray(pre_mean, dtype=float)
    variance = np.asarray(post_variance) + theta**2 * np.asarray(pre_variance) - 2 * theta * np.asarray(covariance)
    return mean, variance


def _moments(stats: BaseStats) -> tuple[float, float]:
    if isinstance(stats, ProportionStats):
        mean, variance = proportion_moments(stats.n, stats.successes)
    else:
        mean, variance = mean_moments(stats.n, stats.sum, stats.sum_squares)
    return float(mean), float(variance)


@dataclass(frozen=True)
class RegressionAdjustedStats:
    """A per-unit metric (``post``) with the same metric in the unit's pre-exposure window (``pre``).

    ``sum_post_pre`` is the sum over units of ``post * pre``. ``theta`` is 0 until a comparison sets the pooled
    value (:func:`adjust_pair`), so on its own the object reports the unadjusted mean and variance.
    """

    post: BaseStats
    pre: BaseStats
    sum_post_pre: float
    theta: float = 0.0

    def __post_init__(self) -> None:
        if self.post.n != self.pre.n:
            raise ValueError(f"post and pre need the same units; got {self.post.n} and {self.pre.n}")

    def __add__(self, other: RegressionAdjustedStats) -> RegressionAdjustedStats:
        return RegressionAdjustedStats(
            self.post + other.post,  # type: ignore[operator]  # same metric in both, so the same stats kind
            self.pre + other.pre,  # type: ignore[operator]  # same metric in both, so the same stats kind
            self.sum_post_pre + other.sum_post_pre,
        )

    @property
    def n(self) -> int:
        return self.post.n

    @property
    def covariance(self) -> float:
        return float(sum_covariance(self.n, self.post.numerator, self.pre.numerator, self.sum_post_pre))

    @property
    def mean(self) -> float:
        return self.post.mean - self.theta * self.pre.mean

    @property
    def unadjusted_mean(self) -> float:
        return self.post.mean

    @property
    def variance(self) -> float:
        if self.n <= 1:
            return 0.0
        post_mean, post_variance = _moments(self.post)
        pre_mean, pre_variance = _moments(self.pre)
        _, variance = adjusted_moments(post_mean, post_variance, pre_mean, pre_variance, self.covariance, self.theta)
        return float(variance)

    @property
    def numerator(self) -> float:
        return self.post.numerator

    @property
    def denominator(self) -> float:
        return self.post.denominator

    def empty_like(self) -> RegressionAdjustedStats:
        return RegressionAdjustedStats(empty_like(self.post), empty_like(self.pre), 0.0)

    def with_theta(self, theta: float) -> RegressionAdjustedStats:
        return replace(self, theta=theta)


def pooled_theta(control: RegressionAdjustedStats, treatment: RegressionAdjustedStats) -> float:
    """The one ``theta`` both arms are adjusted with (gbstats ``compute_theta``)."""
    if type(control.post) is not type(treatment.post) or type(control.pre) is not type(treatment.pre):
        raise ValueError("post and pre statistics must be of the same kind in both arms")
    joint = control + treatment
    _, post_variance = _moments(joint.post)
    _, pre_variance = _moments(joint.pre)
    return float(pooled_theta_arrays(post_variance, pre_variance, joint.covariance))


def adjust_pair(
    control: RegressionAdjustedStats, treatment: RegressionAdjustedStats
) -> tuple[BaseStats | RegressionAdjustedStats, BaseStats | RegressionAdjustedStats, float]:
    """Both arms at the pooled ``theta``; with ``theta == 0`` the plain post-period statistics (as gbstats)."""
    theta = pooled_theta(control, treatment)
    if theta == 0:
        return control.post, treatment.post, 0.0
    return control.with_theta(theta), treatment.with_theta(theta), theta

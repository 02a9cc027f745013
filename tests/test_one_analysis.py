"""One analysis per view (issue 23 items 5-8): in every engine and mode, the verdict, the interval and the
statistic shown beside them agree, corrected the same way, including the zero-purchase arm and Holm near p = 1."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as scipy_stats

from experiments.stats import (
    AnalysisSettings,
    PrePeriodAggregates,
    UnitAggregates,
    VariantData,
    adjusted_metrics,
    analyze_experiment,
)
from tests.consistency_support import analysis_problems, excludes_zero

MODES = {
    "frequentist": AnalysisSettings(),
    "sequential": AnalysisSettings(sequential=True),
    "bayesian": AnalysisSettings(engine="bayesian"),
    "bayesian-sequential": AnalysisSettings(engine="bayesian", sequential=True),
}


def _arm(rng: np.random.Generator, n: int, click: float, conversion: float, history: bool = False):
    impressions = rng.poisson(3.0, n) + 1
    clicks = rng.binomial(impressions, click)
    converted = rng.random(n) < conversion
    revenue = np.where(converted, rng.lognormal(3.5, 0.7, n), 0.0)
    post = UnitAggregates.from_units(impressions, clicks, converted, revenue)
    if not history:
        return post
    pre_imp = rng.poisson(impressions)
    pre_clk = rng.binomial(pre_imp, click)
    pre_conv = rng.random(n) < conversion
    pre_rev = np.where(pre_conv, rng.lognormal(3.5, 0.7, n), 0.0)
    pre = PrePeriodAggregates(
        n, float(pre_imp.sum()), float((pre_imp**2).sum()), float((pre_imp * impressions).sum()),
        float(pre_clk.sum()), float((pre_clk**2).sum()), float((pre_clk * clicks).sum()),
        int(pre_conv.sum()), int((pre_conv & converted).sum()),
        float(pre_rev.sum()), float((pre_rev**2).sum()), float((pre_rev * revenue).sum()), int((pre_imp > 0).sum()),
    )  # fmt: skip
    return post, pre


def _scenarios():
    """A/A with 4 arms, a real effect, a zero-purchase arm, each with and without CUPED statistics."""
    for seed in range(6):
        rng = np.random.default_rng(seed)
        for cuped in (False, True):
            arms = {
                "aa4": [_arm(rng, 300, 0.1, 0.05, cuped) for _ in range(4)],
                "effect": [_arm(rng, 400, 0.1, 0.05, cuped), _arm(rng, 400, 0.13, 0.07, cuped)],
                "zero-purchase": [
                    _arm(rng, 220, 0.1, 0.06, cuped),
                    _arm(rng, 220, 0.1, 0.0, cuped),
                    _arm(rng, 220, 0.1, 0.06, cuped),
                ],  # fmt: skip
            }
            for name, data in arms.items():
                variants = []
                for index, arm in enumerate(data):
                    key = "control" if index == 0 else f"t{index}"
                    if cuped:
                        post, pre = arm
                        variants.append(VariantData(key, post.units, adjusted_metrics(post, pre)))
                    else:
                        variants.append(VariantData.from_aggregates(key, arm))
                yield f"{name}-{seed}{'-cuped' if cuped else ''}", variants


@pytest.mark.parametrize("mode", sorted(MODES))
def test_every_row_tells_one_story(mode: str) -> None:
    problems = []
    for name, variants in _scenarios():
        analysis = analyze_experiment(variants, settings=MODES[mode]).to_dict()
        problems += [f"{name}: {p}" for p in analysis_problems(analysis)]
    assert problems == []


def test_sequential_with_several_arms_is_bonferroni_like_its_band() -> None:
    """Item 6: Holm's always-valid p said "better" (0.035) beside a Bonferroni band containing 0."""
    rng = np.random.default_rng(11)
    variants = [VariantData.from_aggregates("control", _arm(rng, 800, 0.10, 0.05))]
    variants += [VariantData.from_aggregates(f"t{i}", _arm(rng, 800, 0.1 + 0.006 * i, 0.05)) for i in (1, 2, 3)]
    analysis = analyze_experiment(variants, settings=AnalysisSettings(sequential=True)).to_dict()
    assert analysis["correction"] == "bonferroni"
    for c in analysis["comparisons"]:
        if c["p_value"] is not None:
            # m times the always-valid p of the same sequence at alpha / m, the band shown beside it
            assert c["p_value_adjusted"] == min(1.0, 3 * c["relative"]["p_value_at_adjusted"])
            assert c["interval"]["correction"] == "bonferroni"


def test_holm_intervals_near_p_one_are_finite_and_sane() -> None:
    """Item 7: no "no interval", no [-100 %, +264 %] from a Holm p near 1."""
    rng = np.random.default_rng(5)
    base = _arm(rng, 500, 0.1, 0.05)
    variants = [VariantData.from_aggregates("control", base)]
    variants += [VariantData.from_aggregates(f"t{i}", _arm(rng, 500, 0.1, 0.05)) for i in (1, 2, 3)]
    analysis = analyze_experiment(variants).to_dict()
    for c in analysis["comparisons"]:
        if c["relative"] is None:
            continue
        interval = c["interval"]
        assert interval is not None, c
        se = c["relative"]["std_error"]
        # never much wider than the Bonferroni interval at alpha / m (the widest Holm step)
        bound = scipy_stats.t.isf(0.05 / 6, 400) * se * 1.25  # conversion: pooled z vs unpooled se
        if np.isfinite(se):
            assert interval["upper"] - interval["lower"] <= 2 * bound, c


def test_bayesian_rows_show_chance_to_win_and_the_matching_credible_interval() -> None:
    """Item 5: the Bayesian verdict sits beside a chance to win and a credible interval, not a p and a CI."""
    rng = np.random.default_rng(2)
    variants = [
        VariantData.from_aggregates("control", _arm(rng, 600, 0.10, 0.05)),
        VariantData.from_aggregates("t1", _arm(rng, 600, 0.12, 0.05)),
    ]
    analysis = analyze_experiment(variants, settings=AnalysisSettings(engine="bayesian")).to_dict()
    assert analysis["correction"] == "none"
    for c in analysis["comparisons"]:
        assert c["statistic"] == "chance_to_win"
        b = c["bayesian"]
        assert c["statistic_value"] == b["chance_to_win"]
        z = scipy_stats.norm.isf(0.05)  # 90 % central: excludes 0 exactly when chance to win leaves [5 %, 95 %]
        assert c["interval"]["kind"] == "credible"
        assert c["interval"]["upper"] == pytest.approx(b["expected"] + z * b["std_error"], rel=1e-12)
        assert c["interval"]["level"] == pytest.approx(0.9)


def test_zero_purchase_arm_is_tested_in_every_view() -> None:
    """Item 8: sequential and Bayesian views test the arm without purchases (pooled variance, as the z-test)."""
    rng = np.random.default_rng(8)
    control = _arm(rng, 300, 0.1, 0.08)
    broken = _arm(rng, 300, 0.1, 0.0)
    for mode, settings in MODES.items():
        variants = [VariantData.from_aggregates("control", control), VariantData.from_aggregates("t1", broken)]
        analysis = analyze_experiment(variants, settings=settings)
        c = analysis.comparison("conversion_rate", "t1")
        assert c.verdict == "worse", (mode, c)
        assert c.interval is not None and excludes_zero(c.interval.__dict__)
        # no revenue at all: the pooled-variance t-test (as the revenue guardrail), not "not enough data"
        revenue = analysis.comparison("revenue_per_unit", "t1")
        assert revenue.verdict != "untestable" and revenue.interval is not None, (mode, revenue)
        if "sequential" not in mode:  # the always-valid band is wider
            assert revenue.verdict == "worse", (mode, revenue)


def test_an_arm_with_one_shopper_is_untestable_in_every_view_not_an_error() -> None:
    """The pooled fallback must not turn "needs 2 units" into an exception (a 500 on the page)."""
    rng = np.random.default_rng(1)
    control = _arm(rng, 40, 0.1, 0.2)
    single = UnitAggregates.from_units([2.0], [0.0], [False], [0.0])
    for mode, settings in MODES.items():
        variants = [VariantData.from_aggregates("control", control), VariantData.from_aggregates("t1", single)]
        analysis = analyze_experiment(variants, settings=settings)
        for c in analysis.comparisons:
            assert c.verdict in ("untestable", "inconclusive"), (mode, c)

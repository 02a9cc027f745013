"""Guardrails that can fail (issue 23 item 2): a guardrail with no valid test says "cannot test", never "ok",
and a control with zero variance gets an exact (Fisher) or pooled (Student) test instead of none."""

from __future__ import annotations

import numpy as np
from scipy import stats as scipy_stats

from experiments.guardrails import guardrail_rows
from experiments.stats import AnalysisSettings, MetricSpec, UnitAggregates, VariantData, analyze_experiment
from experiments.stats.sufficient import RatioStats

SPEC = [MetricSpec("zero_result_rate", "Zero-result rate", False)]


def _ratio(zero_per_unit: list[int], searches_per_unit: list[int]) -> RatioStats:
    x = np.asarray(zero_per_unit, dtype=float)
    y = np.asarray(searches_per_unit, dtype=float)
    return RatioStats(int(x.size), x.sum(), (x * x).sum(), y.sum(), (y * y).sum(), (x * y).sum())


def _quality(control: RatioStats, *treatments: RatioStats) -> dict:
    variants = [VariantData("control", control.n, {"zero_result_rate": control})]
    variants += [VariantData(f"t{i}", t.n, {"zero_result_rate": t}) for i, t in enumerate(treatments, 1)]
    return analyze_experiment(variants, metrics=SPEC, settings=AnalysisSettings()).to_dict()


def _main(revenue_control: list[float], revenue_treatment: list[float]) -> dict:
    def arm(revenue: list[float]) -> UnitAggregates:
        n = len(revenue)
        return UnitAggregates.from_units([1.0] * n, [0.0] * n, [r > 0 for r in revenue], revenue)

    variants = [VariantData.from_aggregates("control", arm(revenue_control))]
    variants.append(VariantData.from_aggregates("t1", arm(revenue_treatment)))
    return analyze_experiment(variants).to_dict()


def test_zero_variance_control_gets_fishers_exact_test_and_can_fail() -> None:
    # control: 0 empty pages in 400 searches; treatment: 4.3 % of its searches empty (the audit's case)
    control = _ratio([0] * 100, [4] * 100)
    treatment = _ratio([1 if i < 17 else 0 for i in range(100)], [4] * 100)
    rows = guardrail_rows(_quality(control, treatment), None, alpha=0.05)
    (row,) = [r for r in rows if r["metric"] == "zero_result_rate"]
    expected = scipy_stats.fisher_exact([[17, 400 - 17], [0, 400]]).pvalue
    assert row["method"] == "fisher_exact"
    assert row["p_value_adjusted"] == expected < 0.05
    assert row["status"] == "worse" and row["flagged"]


def test_no_valid_test_says_cannot_test_never_ok() -> None:
    control = _ratio([0], [3])  # one shopper: nothing can be tested
    treatment = _ratio([1], [3])
    rows = guardrail_rows(_quality(control, treatment), None, alpha=0.05)
    (row,) = rows
    assert row["status"] == "cannot_test" and not row["flagged"] and row["reason"]


def test_treatment_without_revenue_is_tested_with_a_pooled_t_test() -> None:
    rng = np.random.default_rng(3)
    control = list(np.where(rng.random(150) < 0.1, 40.0, 0.0))
    treatment = [0.0] * 150  # no revenue at all: Welch refuses (zero variance), the pooled test does not
    rows = guardrail_rows(None, _main(control, treatment), alpha=0.05)
    (row,) = [r for r in rows if r["metric"] == "revenue_per_unit"]
    c, t = np.asarray(control), np.asarray(treatment)
    expected = scipy_stats.ttest_ind(t, c, equal_var=True).pvalue
    assert row["method"] == "pooled_t"
    assert abs(row["p_value_adjusted"] - expected) < 1e-12
    assert row["status"] == "worse"


def test_holm_across_treatments_includes_the_fallback_tests() -> None:
    control = _ratio([0] * 100, [4] * 100)
    small = _ratio([1 if i < 4 else 0 for i in range(100)], [4] * 100)
    large = _ratio([1 if i < 17 else 0 for i in range(100)], [4] * 100)
    rows = guardrail_rows(_quality(control, small, large), None, alpha=0.05)
    raw = [scipy_stats.fisher_exact([[k, 400 - k], [0, 400]]).pvalue for k in (4, 17)]
    by_variant = {r["variant"]: r for r in rows}
    assert by_variant["t2"]["p_value_adjusted"] == min(1.0, 2 * min(raw))
    assert by_variant["t1"]["p_value_adjusted"] == max(min(1.0, 2 * min(raw)), raw[0])

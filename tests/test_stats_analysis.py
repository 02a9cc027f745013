"""analyze_experiment / per_language: the result the dashboard renders, edge cases, and JSON round trips."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from experiments.stats import (
    STANDARD_METRICS,
    AnalysisSettings,
    MeanStats,
    ProportionStats,
    RatioStats,
    UnitAggregates,
    VariantData,
    analyze_experiment,
    holm_adjust,
    minimum_detectable_effect,
    per_language,
    required_sample_size,
    required_sample_size_proportion,
    sequential_test,
    two_proportion_z_test,
    welch_test,
)
from experiments.stats.power import power_two_sided
from tests.consistency_support import log_ratio_test as _log_ratio_test


def _aggregates(rng: np.random.Generator, n: int, click_rate: float = 0.1, conversion: float = 0.05) -> UnitAggregates:
    impressions = rng.poisson(3.0, n) + 1
    clicks = rng.binomial(impressions, click_rate)
    converted = rng.random(n) < conversion
    revenue = np.where(converted, rng.lognormal(3.5, 0.7, n), 0.0)
    return UnitAggregates.from_units(impressions, clicks, converted, revenue)


@pytest.fixture(scope="module")
def three_arms() -> list[VariantData]:
    rng = np.random.default_rng(3)
    return [
        VariantData.from_aggregates("control", _aggregates(rng, 6000)),
        VariantData.from_aggregates("bge-m3", _aggregates(rng, 6000, click_rate=0.12)),
        VariantData.from_aggregates("bm25", _aggregates(rng, 6000, conversion=0.05)),
    ]


def test_result_lists_every_metric_for_every_treatment(three_arms: list[VariantData]) -> None:
    analysis = analyze_experiment(three_arms)
    assert analysis.control == "control"
    assert [v.key for v in analysis.variants] == ["control", "bge-m3", "bm25"]
    assert [(c.metric, c.variant) for c in analysis.comparisons] == [
        (spec.key, variant) for spec in STANDARD_METRICS for variant in ("bge-m3", "bm25")
    ]
    methods = {c.metric: c.method for c in analysis.comparisons}
    assert methods == {
        "ctr": "welch_t_delta",
        "conversion_rate": "two_proportion_z",
        "revenue_per_unit": "welch_t",
        "clicks_per_unit": "welch_t",
        "impressions_per_unit": "welch_t",
    }
    ctr = analysis.comparison("ctr", "bge-m3")
    assert ctr.significant and ctr.verdict == "better"
    assert ctr.relative is not None and ctr.relative.ci_lower > 0
    assert analysis.comparison("conversion_rate", "bm25").verdict in ("inconclusive", "better", "worse")
    assert not analysis.srm.flagged and analysis.warnings == []


def test_numbers_come_from_the_documented_tests(three_arms: list[VariantData]) -> None:
    analysis = analyze_experiment(three_arms)
    control, treatment = three_arms[0].metrics, three_arms[1].metrics
    for metric in ("ctr", "revenue_per_unit"):
        comparison = analysis.comparison(metric, "bge-m3")
        absolute = welch_test(control[metric], treatment[metric], relative=False)
        relative = welch_test(control[metric], treatment[metric], relative=True)
        # the log-ratio Welch test decides (issue 23: its interval keeps nominal coverage at large lifts)
        assert comparison.p_value == pytest.approx(_log_ratio_test(control[metric], treatment[metric])[0], rel=1e-9)
        assert comparison.absolute is not None
        assert (
            comparison.absolute.p_value == pytest.approx(absolute.p_value, rel=1e-12)
            and comparison.relative is not None
        )
        assert comparison.absolute.ci_lower == pytest.approx(absolute.ci_lower, rel=1e-12)
        assert comparison.relative.estimate == pytest.approx(relative.estimate, rel=1e-12)
    conversion = analysis.comparison("conversion_rate", "bge-m3")
    a, b = control["conversion_rate"], treatment["conversion_rate"]
    assert isinstance(a, ProportionStats) and isinstance(b, ProportionStats)
    assert conversion.p_value == pytest.approx(two_proportion_z_test(a.successes, a.n, b.successes, b.n)[1])


def test_holm_is_applied_across_treatments_and_adjusted_intervals_are_wider(three_arms: list[VariantData]) -> None:
    analysis = analyze_experiment(three_arms)
    assert analysis.correction == "holm" and analysis.comparisons_per_metric == 2
    for spec in STANDARD_METRICS:
        pair = [analysis.comparison(spec.key, v) for v in ("bge-m3", "bm25")]
        assert [c.p_value_adjusted for c in pair] == pytest.approx(holm_adjust([c.p_value for c in pair]))
        for c in pair:
            assert c.significant == (c.p_value_adjusted < 0.05)
            assert c.absolute is not None
            assert (
                c.absolute.ci_lower_adjusted < c.absolute.ci_lower <= c.absolute.ci_upper < c.absolute.ci_upper_adjusted
            )
    uncorrected = analyze_experiment(three_arms, settings=AnalysisSettings(correction="none"))
    assert all(c.p_value_adjusted == c.p_value for c in uncorrected.comparisons)


def test_two_arms_need_no_correction() -> None:
    rng = np.random.default_rng(4)
    arms = [VariantData.from_aggregates(k, _aggregates(rng, 500)) for k in ("a", "b")]
    analysis = analyze_experiment(arms)
    assert analysis.correction == "none"
    for c in analysis.comparisons:
        assert c.p_value_adjusted == c.p_value
        assert c.absolute is not None and c.absolute.ci_lower_adjusted == c.absolute.ci_lower


def test_to_dict_is_json_and_keeps_the_numbers(three_arms: list[VariantData]) -> None:
    analysis = analyze_experiment(three_arms, settings=AnalysisSettings(sequential=True))
    payload = json.loads(json.dumps(analysis.to_dict(), allow_nan=False))
    assert payload["sequential"] is True
    assert payload["srm"]["flagged"] is False
    first = payload["comparisons"][0]
    assert first["method"] == "confidence_sequence"
    assert set(first["relative"]) == {
        "estimate",
        "std_error",
        "ci_lower",
        "ci_upper",
        "p_value",
        "ci_lower_adjusted",
        "ci_upper_adjusted",
        "p_value_at_adjusted",  # the same sequence's p at alpha / m: what Bonferroni multiplies (issue 23)
    }
    assert payload["variants"][0]["metrics"]["ctr"]["denominator"] == three_arms[0].metrics["ctr"].denominator


def test_sequential_mode_uses_confidence_sequences(three_arms: list[VariantData]) -> None:
    analysis = analyze_experiment(three_arms, settings=AnalysisSettings(sequential=True, sequential_tuning=10000))
    comparison = analysis.comparison("ctr", "bge-m3")
    expected = sequential_test(three_arms[0].metrics["ctr"], three_arms[1].metrics["ctr"], relative=True, tuning=10000)
    assert comparison.relative is not None
    assert comparison.relative.ci_lower == pytest.approx(expected.ci_lower, rel=1e-12)
    assert all(c.method == "confidence_sequence" for c in analysis.comparisons)


def test_srm_warning_comes_first_when_the_split_is_off() -> None:
    rng = np.random.default_rng(5)
    arms = [
        VariantData.from_aggregates("control", _aggregates(rng, 10400)),
        VariantData.from_aggregates("treatment", _aggregates(rng, 9600)),
    ]
    analysis = analyze_experiment(arms)
    assert analysis.srm.flagged
    assert "Sample ratio mismatch" in analysis.warnings[0]
    assert not analyze_experiment(arms, weights=[0.52, 0.48]).srm.flagged


def test_untestable_comparisons_say_why_instead_of_guessing() -> None:
    control = VariantData(
        "control",
        50,
        {
            "revenue_per_unit": MeanStats(50, 0.0, 0.0),  # nobody bought anything
            "conversion_rate": ProportionStats(50, 0),
            "ctr": RatioStats(1, 1, 1, 2, 4, 2),
        },
    )
    treatment = VariantData(
        "treatment",
        50,
        {
            "revenue_per_unit": MeanStats(50, 120.0, 9000.0),
            "conversion_rate": ProportionStats(50, 3),
            "ctr": RatioStats(1, 0, 0, 3, 9, 0),
        },
    )
    analysis = analyze_experiment([control, treatment])
    for comparison in analysis.comparisons:
        if comparison.metric == "conversion_rate":
            continue  # issue 15: the pooled z-test needs no variance in each arm, so 0 of 50 is still tested
        assert comparison.verdict == "untestable"
        assert comparison.p_value is None and not comparison.significant
        assert comparison.error
    conversion = analysis.comparison("conversion_rate", "treatment")
    assert conversion.p_value == pytest.approx(two_proportion_z_test(0, 50, 3, 50)[1], rel=1e-12)
    assert conversion.verdict == "inconclusive" and conversion.error and "z-test" in conversion.error
    assert conversion.relative is None  # control converts 0 %: no relative lift
    json.dumps(analysis.to_dict(), allow_nan=False)


def test_zero_control_mean_keeps_absolute_lift_but_drops_relative() -> None:
    control = VariantData("control", 3, {"m": MeanStats(3, 0.0, 2.0)})  # values -1, 0, 1
    treatment = VariantData("treatment", 3, {"m": MeanStats(3, 3.0, 5.0)})  # 0, 1, 2
    comparison = analyze_experiment([control, treatment]).comparison("m", "treatment")
    assert comparison.absolute is not None and comparison.relative is None
    assert comparison.error == "control mean is zero, relative lift undefined"
    assert comparison.p_value is not None


def test_lower_is_better_metrics_flip_the_verdict() -> None:
    from experiments.stats import MetricSpec

    rng = np.random.default_rng(6)
    control = VariantData("control", 4000, {"latency": MeanStats.from_values(rng.normal(100, 10, 4000))})
    treatment = VariantData("treatment", 4000, {"latency": MeanStats.from_values(rng.normal(95, 10, 4000))})
    spec = MetricSpec("latency", "Latency (ms)", higher_is_better=False)
    assert analyze_experiment([control, treatment], metrics=[spec]).comparisons[0].verdict == "better"


def test_per_language_breakdown() -> None:
    rng = np.random.default_rng(7)
    stats = {
        ("de", "control"): _aggregates(rng, 3000),
        ("de", "treatment"): _aggregates(rng, 3000, click_rate=0.13),
        ("ja", "control"): _aggregates(rng, 400),
        ("ja", "treatment"): _aggregates(rng, 400),
        ("fr", "control"): _aggregates(rng, 100),  # no treatment traffic in French yet
    }
    results = per_language(stats, variant_order=["control", "treatment"])
    assert list(results) == ["de", "fr", "ja"]
    assert results["de"].comparison("ctr", "treatment").verdict == "better"
    assert results["fr"].variants[1].units == 0
    assert results["fr"].srm.flagged  # 100 vs 0
    assert all(c.verdict == "untestable" for c in results["fr"].comparisons)
    assert any("not corrected across languages" in w for w in results["ja"].warnings)
    with pytest.raises(ValueError):
        per_language({("de", "mystery"): _aggregates(rng, 10)}, variant_order=["control"])


def test_analysis_rejects_bad_input() -> None:
    one = VariantData("a", 1, {"m": MeanStats(1, 1.0, 1.0)})
    with pytest.raises(ValueError):
        analyze_experiment([one])
    with pytest.raises(ValueError):
        analyze_experiment([one, one])
    with pytest.raises(ValueError):
        analyze_experiment([one, VariantData("b", 1, {})], weights=[1.0])
    with pytest.raises(ValueError):
        AnalysisSettings(alpha=1.5)


def test_unit_aggregates_add_up_like_daily_partitions() -> None:
    rng = np.random.default_rng(8)
    day1, day2 = _aggregates(rng, 100), _aggregates(rng, 150)
    total = day1 + day2
    assert total.units == 250
    assert total.revenue == pytest.approx(day1.revenue + day2.revenue)
    ctr = total.metrics()["ctr"]
    assert ctr.mean == pytest.approx(total.clicks / total.impressions)


# --- sample size / MDE ---------------------------------------------------------------------------------------------


def test_sample_size_gives_the_requested_power() -> None:
    size = required_sample_size(baseline_mean=2.0, baseline_variance=9.0, mde=0.05, relative=True, power=0.8)
    se = math.sqrt(9.0 / size.exact_n_control * 2)
    assert power_two_sided(0.1, se) == pytest.approx(0.8, abs=1e-9)
    assert size.n_total == size.n_control + size.n_treatment
    more_arms = required_sample_size(baseline_mean=2.0, baseline_variance=9.0, mde=0.05, num_comparisons=3)
    assert more_arms.n_control > size.n_control


def test_mde_and_sample_size_are_inverse() -> None:
    size = required_sample_size_proportion(baseline_rate=0.04, mde=0.1)
    assert 35000 < size.n_control < 45000  # the familiar "~40k per arm for +10 % on 4 %"
    mde = minimum_detectable_effect(
        baseline_mean=0.04, baseline_variance=0.04 * 0.96, n_control=size.n_control, n_treatment=size.n_treatment
    )
    assert mde == pytest.approx(0.1, rel=0.03)  # equal-variance MDE vs the exact p(1-p) sizes


def test_power_calculator_rejects_impossible_requests() -> None:
    with pytest.raises(ValueError):
        required_sample_size(baseline_mean=1.0, baseline_variance=1.0, mde=0.0)
    with pytest.raises(ValueError):
        required_sample_size_proportion(baseline_rate=0.9, mde=0.2)
    with pytest.raises(ValueError):
        minimum_detectable_effect(baseline_mean=0.0, baseline_variance=1.0, n_control=10, n_treatment=10)


# issue 22 item 1: any stored weights, however extreme, give an answer, never a ZeroDivisionError
@pytest.mark.parametrize("weights", [(1e308, 1e308), (1e308, 5e-324), (5e-324, 5e-324), (1.0, 1e-300)])
def test_srm_check_survives_extreme_weights(weights):
    from experiments.stats.srm import srm_check

    result = srm_check([20, 20], list(weights))
    assert 0.0 <= result.p_value <= 1.0
    assert all(math.isfinite(e) for e in result.expected)
    assert srm_check([0, 0], list(weights)).p_value == 1.0

"""Issue 15's presentation fixes, checked against statsmodels and gbstats: numbers a merchandiser cannot misread.

One interval per comparison (built from the deciding test, Holm-adjusted with the Holm p-value) everywhere: page,
list headline, per-language rows and CSV; a zero-purchase arm gets its two-proportion z-test; p-values are never
rounded across a threshold; events dated ahead of the server clock never create a future day.
"""

from __future__ import annotations

import csv
import datetime as dt
import io

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportions_ztest

from experiments.report import Report, _up_to, report_csv
from experiments.stats import (
    STANDARD_METRICS,
    MeanStats,
    ProportionStats,
    UnitAggregates,
    VariantData,
    analyze_experiment,
    per_language,
)
from experiments.stats.frequentist import welch_satterthwaite_df
from experiments.stats.intervals import decision_interval
from experiments.store.ingest import parse_events
from tests.consistency_support import log_ratio_test as _log_ratio_test
from webapp.dashboard.views import format_p, p_text

gbstats_tests = pytest.importorskip("gbstats.frequentist.tests")
gbstats_models = pytest.importorskip("gbstats.models.statistics")


def _arm(rng: np.random.Generator, n: int, click_rate: float, conversion: float) -> UnitAggregates:
    impressions = rng.poisson(3.0, n) + 1
    clicks = rng.binomial(impressions, click_rate)
    converted = rng.random(n) < conversion
    revenue = np.where(converted, rng.lognormal(3.5, 0.7, n), 0.0)
    return UnitAggregates.from_units(impressions, clicks, converted, revenue)


def _excludes_zero(interval) -> bool:
    return interval.lower > 0 or interval.upper < 0


def test_zero_purchase_arm_is_tested_like_statsmodels_and_flagged_worse() -> None:
    control = VariantData("control", 177, {"conversion_rate": ProportionStats(177, 11)})
    broken = VariantData("broken", 225, {"conversion_rate": ProportionStats(225, 0)})
    comparison = analyze_experiment([control, broken]).comparison("conversion_rate", "broken")
    _, reference_p = proportions_ztest([0, 11], [225, 177])
    assert comparison.p_value == pytest.approx(reference_p, rel=1e-12)
    assert comparison.verdict == "worse" and comparison.significant  # not "Not enough data"
    assert comparison.relative is not None and comparison.relative.estimate == -1.0
    assert comparison.interval is not None and _excludes_zero(comparison.interval)
    assert comparison.interval.lower == -1.0  # clipped: a rate cannot fall by more than 100 %


def test_decision_interval_is_the_gbstats_welch_interval_when_built_from_its_p_value() -> None:
    rng = np.random.default_rng(15)
    a, b = rng.lognormal(3.0, 0.9, 900), rng.lognormal(3.08, 0.9, 1100)
    sample = gbstats_models.SampleMeanStatistic
    reference = gbstats_tests.TwoSidedTTest(
        sample(n=a.size, sum=float(a.sum()), sum_squares=float((a**2).sum())),
        sample(n=b.size, sum=float(b.sum()), sum_squares=float((b**2).sum())),
        gbstats_tests.FrequentistConfig(difference_type="absolute", alpha=0.05),
    ).compute_result()
    df = welch_satterthwaite_df(a.var(ddof=1), a.size, b.var(ddof=1), b.size)
    ours = decision_interval(reference.expected, reference.p_value, alpha=0.05, df=df, correction="none", floor=None)
    assert ours is not None
    assert ours.lower == pytest.approx(reference.ci[0], rel=1e-9)
    assert ours.upper == pytest.approx(reference.ci[1], rel=1e-9)


def test_three_arms_intervals_are_holm_adjusted_like_statsmodels() -> None:
    rng = np.random.default_rng(7)
    arms = [
        VariantData.from_aggregates("control", _arm(rng, 4000, 0.10, 0.05)),
        VariantData.from_aggregates("b", _arm(rng, 4000, 0.108, 0.05)),
        VariantData.from_aggregates("c", _arm(rng, 4000, 0.112, 0.05)),
    ]
    analysis = analyze_experiment(arms)
    unadjusted = analyze_experiment(arms[:2])
    for spec in STANDARD_METRICS:
        pair = [analysis.comparison(spec.key, v) for v in ("b", "c")]
        raw = [c.p_value for c in pair]
        assert [c.p_value_adjusted for c in pair] == pytest.approx(list(multipletests(raw, method="holm")[1]))
        for c in pair:
            assert c.interval is not None and c.interval.correction == "holm"
            assert _excludes_zero(c.interval) == (c.p_value_adjusted < 0.05) == c.significant
        alone = unadjusted.comparison(spec.key, "b")
        assert alone.interval is not None and alone.interval.correction == "none"
        # the Holm interval of b is at least as wide as b's interval without the third arm
        assert pair[0].interval.upper - pair[0].interval.lower >= alone.interval.upper - alone.interval.lower - 1e-12
    ctr = analysis.comparison("ctr", "c")
    # the log-ratio t-test decides (issue 23: its interval keeps nominal coverage at large lifts)
    assert ctr.p_value == pytest.approx(_log_ratio_test(arms[0].metrics["ctr"], arms[2].metrics["ctr"])[0], rel=1e-9)


def test_language_rows_show_an_interval_that_agrees_with_their_p_value() -> None:
    rng = np.random.default_rng(11)
    stats = {
        (language, variant): _arm(rng, 700, rate, 0.06)
        for language in ("de", "ja", "zh")
        for variant, rate in (("control", 0.10), ("b", 0.115), ("c", 0.10))
    }
    for analysis in per_language(stats, variant_order=["control", "b", "c"]).values():
        for c in analysis.comparisons:
            if c.interval is not None:
                assert _excludes_zero(c.interval) == (c.p_value_adjusted < 0.05), (c.metric, c.variant)


def test_list_headline_and_csv_carry_the_pages_interval() -> None:
    rng = np.random.default_rng(5)
    arms = [VariantData.from_aggregates(k, _arm(rng, 3000, r, 0.05)) for k, r in (("a", 0.1), ("b", 0.12), ("c", 0.1))]
    analysis = analyze_experiment(arms).to_dict()
    report = Report("exp", "ab", "ctr", "USD", dt.datetime.now(dt.UTC), ["a", "b", "c"], analysis=analysis)
    page = {(c["metric"], c["variant"]): c for c in analysis["comparisons"]}
    headline = report.headline()
    shown = page[("ctr", headline["variant"])]["interval"]
    assert headline["ci"] == [shown["lower"], shown["upper"]] and headline["correction"] == "holm"
    rows = list(csv.DictReader(io.StringIO(report_csv(report))))
    for row in rows:
        comparison = page.get((row["metric"], row["variant"]))
        if comparison and comparison["interval"]:
            assert float(row["relative_ci_lower"]) == pytest.approx(comparison["interval"]["lower"], rel=1e-12)
            assert float(row["relative_ci_upper"]) == pytest.approx(comparison["interval"]["upper"], rel=1e-12)
            assert row["interval"] == "95% CI, Holm-adjusted"


def test_p_values_are_never_rounded_across_a_threshold() -> None:
    assert format_p(0.00114) == "0.0011"  # was "0.001": read as below the SRM bar
    assert format_p(0.0496) == "0.0496" and format_p(0.0504) == "0.05"
    assert format_p(0.000012) == "< 0.0001" and format_p(0.5) == "0.5"
    assert p_text(0.00002) == "p < 0.0001" and p_text(0.00114) == "p = 0.0011"  # never "p = < 0.001"
    for value in np.geomspace(1e-4, 1, 2000):
        shown = float(format_p(float(value)))
        for threshold in (0.05, 0.01, 0.001):
            assert (shown < threshold) == (value < threshold), value


def test_ctr_is_named_for_what_it_is() -> None:
    label = {spec.key: spec.label for spec in STANDARD_METRICS}["ctr"]
    assert "results page" in label


def test_events_dated_ahead_are_stored_at_the_server_time_and_never_make_a_future_day() -> None:
    now = dt.datetime(2026, 12, 4, 18, 0, tzinfo=dt.UTC)
    ahead = int((now + dt.timedelta(hours=20)).timestamp() * 1000)
    [event] = parse_events(
        [{"id": "future-0001", "type": "impression", "unit": "u", "query": "q", "ts": ahead}], now=now
    )
    assert event.row["occurred_at"] == now
    today, tomorrow = now.date(), now.date() + dt.timedelta(days=1)
    early, late = UnitAggregates(units=3), UnitAggregates(units=5)
    series = _up_to({today: {"a": early}, tomorrow: {"a": late}}, today)
    assert list(series) == [today] and series[today]["a"] is late  # everything counted, on today


def test_mean_metrics_keep_matching_the_welch_reference() -> None:
    """The log-ratio Welch test decides and its interval is shown; the lifts stay gbstats' (relative TwoSidedTTest)."""
    control, treatment = MeanStats(400, 1200.0, 9000.0), MeanStats(380, 1250.0, 9800.0)
    analysis = analyze_experiment([VariantData("a", 400, {"m": control}), VariantData("b", 380, {"m": treatment})])
    comparison = analysis.comparison("m", "b")
    p, lower, upper = _log_ratio_test(control, treatment)
    assert comparison.p_value == pytest.approx(p, rel=1e-9)
    assert comparison.interval is not None
    assert comparison.interval.lower == pytest.approx(lower, rel=1e-9)
    assert comparison.interval.upper == pytest.approx(upper, rel=1e-9)
    sample = gbstats_models.SampleMeanStatistic
    reference = gbstats_tests.TwoSidedTTest(
        sample(n=400, sum=1200.0, sum_squares=9000.0),
        sample(n=380, sum=1250.0, sum_squares=9800.0),
        gbstats_tests.FrequentistConfig(difference_type="relative", alpha=0.05),
    ).compute_result()
    assert comparison.relative is not None
    assert comparison.relative.estimate == pytest.approx(reference.expected, rel=1e-9)
    assert comparison.relative.ci_lower == pytest.approx(reference.ci[0], rel=1e-9)

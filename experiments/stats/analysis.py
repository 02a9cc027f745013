"""One call from per-variant sufficient statistics to a JSON-ready result the dashboard renders as is.

Per metric and treatment arm the result carries absolute and relative lift with confidence intervals (gbstats
conventions, see :mod:`experiments.stats.frequentist`), the p-value of the metric's test, the Holm-adjusted
p-value when there are several treatment arms, and a verdict. The sample-ratio-mismatch check comes first in the
result because when it fires nothing else can be trusted.

Tests per metric kind (fixed horizon):

==============  ==========================================  ===========================================
metric kind     p-value that decides significance           lifts and intervals
==============  ==========================================  ===========================================
MeanStats       Welch t-test (``welch_t``)                  Welch t, delta-method relative lift
RatioStats      Welch t-test, delta-method variance         same (``welch_t_delta``)
ProportionStats pooled two-proportion z-test                Welch t on p(1-p) (gbstats), so near the
                (``two_proportion_z``)                      0.05 boundary the CI and the p-value may
                                                            disagree in the third decimal
==============  ==========================================  ===========================================

In sequential mode every metric uses the asymptotic confidence sequence and its always-valid p-value
(``confidence_sequence``), valid under any number of looks.

With CUPED statistics (:class:`~experiments.stats.cuped.RegressionAdjustedStats`, built from pre-exposure sums)
the per-unit metrics are compared on regression-adjusted means (``welch_t_cuped``, gbstats' CUPED), and each
comparison reports the share of the lift's variance the adjustment removed.

The Bayesian engine (``AnalysisSettings(engine="bayesian")``, GrowthBook's default) adds chance to win and risk
per comparison (:mod:`experiments.stats.bayesian`) and decides the verdict by chance to win instead of the p-value:
better above ``1 - alpha``, worse below ``alpha``. The frequentist lifts stay in the result for reference.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, is_dataclass
from typing import Any, Literal

import numpy as np
from scipy import stats as scipy_stats

from experiments.stats.bayesian import BayesianResult, GaussianPrior, bayesian_test
from experiments.stats.corrections import holm_adjust
from experiments.stats.cuped import RegressionAdjustedStats, adjust_pair
from experiments.stats.frequentist import (
    LiftEstimate,
    UntestableError,
    two_proportion_z_test,
    welch_satterthwaite_df,
    welch_test,
)
from experiments.stats.intervals import Interval, clipped, decision_interval
from experiments.stats.sequential import DEFAULT_TUNING, sequential_test
from experiments.stats.srm import SRM_P_THRESHOLD, SrmResult, srm_check, weight_shares
from experiments.stats.sufficient import (
    MeanStats,
    MetricStats,
    PooledMeanStats,
    PooledProportionStats,
    ProportionStats,
    RatioStats,
    empty_like,
)

Method = Literal["welch_t", "welch_t_delta", "welch_t_cuped", "two_proportion_z", "pooled_t", "confidence_sequence"]
Engine = Literal["frequentist", "bayesian"]
Verdict = Literal["better", "worse", "inconclusive", "untestable"]


# --- inputs --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricSpec:
    key: str
    label: str
    higher_is_better: bool = True
    description: str = ""


#: shoprank's metrics, in dashboard order (DESIGN.md §5). Keys match :meth:`UnitAggregates.metrics`.
STANDARD_METRICS: tuple[MetricSpec, ...] = (
    # "CTR" here is clicks per results page shown (it can exceed 100 %); the product-level CTR (clicks per
    # product shown) is in the report's search-quality section.
    MetricSpec("ctr", "CTR (clicks per results page)", True, "clicks / results pages shown, unit-level delta method"),
    MetricSpec("conversion_rate", "Conversion rate", True, "units with >= 1 purchase / units"),
    MetricSpec("revenue_per_unit", "Revenue per unit", True, "purchase revenue / units"),
    MetricSpec("clicks_per_unit", "Clicks per unit", True, "clicks / units"),
    MetricSpec("impressions_per_unit", "Impressions per unit", True, "result pages shown / units"),
)


@dataclass(frozen=True)
class UnitAggregates:
    """Per-variant sums over units of per-unit rollups: the one SQL query the event store has to answer.

    Roll events up per exposed unit first (impressions, clicks, purchases, revenue; units with no events count
    with zeros, so join from exposures), then per variant: ``COUNT(*)``, ``SUM(imp)``, ``SUM(imp*imp)``,
    ``SUM(clk)``, ``SUM(clk*clk)``, ``SUM(clk*imp)``, ``SUM(purchases > 0)``, ``SUM(rev)``, ``SUM(rev*rev)``.
    """

    units: int
    impressions: float = 0.0
    impressions_sq: float = 0.0
    clicks: float = 0.0
    clicks_sq: float = 0.0
    clicks_x_impressions: float = 0.0
    converted_units: int = 0
    revenue: float = 0.0
    revenue_sq: float = 0.0

    @classmethod
    def from_units(
        cls,
        impressions: Sequence[float],
        clicks: Sequence[float],
        converted: Sequence[bool],
        revenue: Sequence[float],
    ) -> UnitAggregates:
        """Build from per-unit values (tests and the simulator; production sums in SQL)."""
        imp = np.asarray(impressions, dtype=float)
        clk = np.asarray(clicks, dtype=float)
        conv = np.asarray(converted, dtype=bool)
        rev = np.asarray(revenue, dtype=float)
        if not imp.shape == clk.shape == conv.shape == rev.shape:
            raise ValueError("one value per unit in each sequence")
        return cls(
            units=int(imp.size),
            impressions=float(imp.sum()),
            impressions_sq=float(np.square(imp).sum()),
            clicks=float(clk.sum()),
            clicks_sq=float(np.square(clk).sum()),
            clicks_x_impressions=float((clk * imp).sum()),
            converted_units=int(conv.sum()),
            revenue=float(rev.sum()),
            revenue_sq=float(np.square(rev).sum()),
        )

    def __add__(self, other: UnitAggregates) -> UnitAggregates:
        return UnitAggregates(*(getattr(self, name) + getattr(other, name) for name in self.__dataclass_fields__))

    def metrics(self) -> dict[str, MetricStats]:
        n = self.units
        return {
            "ctr": RatioStats(
                n, self.clicks, self.clicks_sq, self.impressions, self.impressions_sq, self.clicks_x_impressions
            ),
            "conversion_rate": ProportionStats(n, self.converted_units),
            "revenue_per_unit": MeanStats(n, self.revenue, self.revenue_sq),
            "clicks_per_unit": MeanStats(n, self.clicks, self.clicks_sq),
            "impressions_per_unit": MeanStats(n, self.impressions, self.impressions_sq),
        }


@dataclass(frozen=True)
class VariantData:
    """One variant's unit count and metric statistics; the first variant passed to the analysis is control."""

    key: str
    units: int
    metrics: Mapping[str, MetricStats]

    @classmethod
    def from_aggregates(cls, key: str, aggregates: UnitAggregates) -> VariantData:
        return cls(key, aggregates.units, aggregates.metrics())


@dataclass(frozen=True)
class AnalysisSettings:
    alpha: float = 0.05
    sequential: bool = False
    sequential_tuning: float = DEFAULT_TUNING
    correction: Literal["holm", "none"] = "holm"
    srm_threshold: float = SRM_P_THRESHOLD
    engine: Engine = "frequentist"
    prior: GaussianPrior = field(default_factory=GaussianPrior)  # Bayesian engine only; gbstats' default

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")
        if self.engine not in ("frequentist", "bayesian"):
            raise ValueError(f"unknown engine {self.engine!r}")
        if self.correction not in ("holm", "none"):
            raise ValueError(f"unknown correction {self.correction!r}")


# --- outputs -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lift:
    """A lift with its interval at ``alpha`` and, with several arms, at the Bonferroni level ``alpha / m``.

    The adjusted interval is the conservative companion of the Holm p-value: if it excludes 0, Holm rejects too.
    """

    estimate: float
    std_error: float
    ci_lower: float
    ci_upper: float
    p_value: float
    ci_lower_adjusted: float
    ci_upper_adjusted: float
    #: the p-value of the same test run at ``alpha / m`` (equal to ``p_value`` except for confidence sequences,
    #: whose mixture depends on the level): below ``alpha / m`` exactly when the adjusted interval excludes 0
    p_value_at_adjusted: float = math.nan


@dataclass(frozen=True)
class MetricSummary:
    value: float  # mean, rate or ratio
    std_error: float
    numerator: float
    denominator: float
    n: int


@dataclass(frozen=True)
class VariantSummary:
    key: str
    is_control: bool
    units: int
    share: float  # observed share of units
    expected_share: float
    metrics: dict[str, MetricSummary]


@dataclass(frozen=True)
class CupedSummary:
    """What the regression adjustment did to one comparison."""

    theta: float  # 0: no usable pre-period variance, the comparison is unadjusted
    variance_reduction: float  # 1 - Var(adjusted absolute lift) / Var(unadjusted absolute lift)
    unadjusted_relative: float | None  # the relative lift before adjustment, for comparison


@dataclass(frozen=True)
class MetricComparison:
    metric: str
    label: str
    variant: str
    control: str
    method: Method
    p_value: float | None  # the test deciding significance (see the module table)
    p_value_adjusted: float | None  # Holm across this metric's treatment arms (= p_value with one arm)
    significant: bool
    verdict: Verdict
    absolute: Lift | None
    relative: Lift | None  # None when control is zero
    error: str | None = None
    bayesian: BayesianResult | None = None  # Bayesian engine: relative lift's posterior, chance to win, risk
    cuped: CupedSummary | None = None  # CUPED statistics: theta and the variance it removed
    #: The one interval every view shows: relative lift, consistent with the statistic that decides
    #: (:mod:`experiments.stats.intervals`). None when the data do not bound it.
    interval: Interval | None = None
    #: What decides the verdict and is shown beside the interval: the (adjusted) p-value, or in the Bayesian engine
    #: the chance to win. Page, list, ship page and CSV show this pair, so a row never mixes two analyses.
    statistic: Literal["p_value", "chance_to_win"] = "p_value"
    statistic_value: float | None = None


@dataclass(frozen=True)
class ExperimentAnalysis:
    control: str
    alpha: float
    sequential: bool
    correction: str
    comparisons_per_metric: int
    srm: SrmResult
    variants: list[VariantSummary]
    comparisons: list[MetricComparison]
    warnings: list[str] = field(default_factory=list)
    engine: Engine = "frequentist"
    cuped: bool = False  # some metric was compared on regression-adjusted statistics

    def comparison(self, metric: str, variant: str) -> MetricComparison:
        for item in self.comparisons:
            if item.metric == metric and item.variant == variant:
                return item
        raise KeyError((metric, variant))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict; non-finite numbers become ``None`` (JSON has no NaN)."""
        plain: dict[str, Any] = _jsonable(asdict(self))
        return plain


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, enum.Enum):
        return value.value
    if is_dataclass(value) and not isinstance(value, type):
        return _jsonable(asdict(value))
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    return value


# --- analysis ------------------------------------------------------------------------------------------------------


def _method(stats: MetricStats, sequential: bool) -> Method:
    if sequential:
        return "confidence_sequence"
    if isinstance(stats, RegressionAdjustedStats):
        return "welch_t_cuped"
    if isinstance(stats, ProportionStats):
        return "two_proportion_z"
    if isinstance(stats, RatioStats):
        return "welch_t_delta"
    return "welch_t"


def _lift(
    control: MetricStats, treatment: MetricStats, *, relative: bool, alpha: float, m: int, settings: AnalysisSettings
) -> Lift:
    def run(level: float) -> LiftEstimate:
        if settings.sequential:
            return sequential_test(
                control, treatment, relative=relative, alpha=level, tuning=settings.sequential_tuning
            )
        return welch_test(control, treatment, relative=relative, alpha=level)

    plain = run(alpha)
    adjusted = run(alpha / m) if m > 1 else plain
    return Lift(
        plain.estimate,
        plain.std_error,
        plain.ci_lower,
        plain.ci_upper,
        plain.p_value,
        adjusted.ci_lower,
        adjusted.ci_upper,
        adjusted.p_value,
    )


@dataclass
class _Draft:
    metric: MetricSpec
    variant: str
    method: Method
    p_value: float | None
    absolute: Lift | None
    relative: Lift | None
    error: str | None
    df: float | None = None  # degrees of freedom of the deciding test (None: normal reference)
    #: sequential: the always-valid p of the relative lift's sequence at alpha / m (Bonferroni decides on it)
    p_at_adjusted: float | None = None
    #: fixed horizon, means and ratios: ``(log(mb / ma), its delta-method standard error)``
    log_ratio: tuple[float, float] | None = None
    bayesian: BayesianResult | None = None
    cuped: CupedSummary | None = None


def _point_lift(control: MetricStats, treatment: MetricStats, *, relative: bool) -> Lift | None:
    """The estimate alone (no interval): for a test that decides although an interval cannot be computed."""
    if relative and control.mean == 0:
        return None
    estimate = (treatment.mean - control.mean) / control.mean if relative else treatment.mean - control.mean
    nan = math.nan
    return Lift(estimate, nan, nan, nan, nan, nan, nan)


def _pooled(control: MetricStats, treatment: MetricStats) -> tuple[MetricStats, MetricStats] | None:
    """Both arms of a proportion with the pooled variance ``p(1-p)`` (the z-test's null variance), or of a mean with
    the pooled sample variance (Student's t); None when even that is zero."""
    if type(control) is MeanStats and type(treatment) is MeanStats:
        if control.n < 2 or treatment.n < 2 or not control.mean > 0:
            return None  # a zero control mean leaves no relative lift to show beside the verdict
        pooled = ((control.n - 1) * control.variance + (treatment.n - 1) * treatment.variance) / (
            control.n + treatment.n - 2
        )
        if not pooled > 0:
            return None
        return (
            PooledMeanStats(control.n, control.sum, control.sum_squares, pooled),
            PooledMeanStats(treatment.n, treatment.sum, treatment.sum_squares, pooled),
        )
    if not (isinstance(control, ProportionStats) and isinstance(treatment, ProportionStats)):
        return None
    total = control.n + treatment.n
    rate = (control.successes + treatment.successes) / total if total else 0.0
    if not 0 < rate < 1:
        return None
    return PooledProportionStats(control.n, control.successes, rate), PooledProportionStats(
        treatment.n, treatment.successes, rate
    )


def _log_ratio(control: MetricStats, treatment: MetricStats) -> tuple[float, float] | None:
    """``log(mb / ma)`` and its delta-method standard error ``sqrt(vb/(nb mb²) + va/(na ma²))``; None when a mean
    is not positive or a variance is missing (then the delta-method interval of the relative lift is shown)."""
    ma, mb = control.mean, treatment.mean
    if not (ma > 0 and mb > 0 and control.n > 1 and treatment.n > 1):
        return None
    variance = treatment.variance / (treatment.n * mb**2) + control.variance / (control.n * ma**2)
    if not (math.isfinite(variance) and variance > 0):
        return None
    return math.log(mb / ma), math.sqrt(variance)


def _compare(
    spec: MetricSpec,
    control_key: str,
    control: MetricStats,
    variant_key: str,
    treatment: MetricStats,
    m: int,
    settings: AnalysisSettings,
) -> _Draft:
    method = _method(control, settings.sequential)
    if type(control) is not type(treatment):
        return _Draft(spec, variant_key, method, None, None, None, "metric kinds differ between variants")
    unadjusted: tuple[MetricStats, MetricStats] | None = None
    theta = 0.0
    if isinstance(control, RegressionAdjustedStats) and isinstance(treatment, RegressionAdjustedStats):
        unadjusted = (control.post, treatment.post)
        adjusted_control, adjusted_treatment, theta = adjust_pair(control, treatment)
        if theta == 0:
            # No usable pre-period variance: nothing to adjust, so the comparison is the plain one with its own
            # test (the z-test for a conversion rate, which also tests an arm without any purchase).
            draft = _compare(spec, control_key, control.post, variant_key, treatment.post, m, settings)
            plain = draft.relative.estimate if draft.relative is not None else None
            draft.cuped = CupedSummary(0.0, 0.0, plain) if draft.p_value is not None else None
            return draft
        control, treatment = adjusted_control, adjusted_treatment
    z_p_value: float | None = None
    if method == "two_proportion_z":
        assert isinstance(control, ProportionStats) and isinstance(treatment, ProportionStats)
        try:
            _, z_p_value = two_proportion_z_test(control.successes, control.n, treatment.successes, treatment.n)
        except UntestableError as exc:
            return _Draft(spec, variant_key, method, None, None, None, str(exc))
    note: str | None = None
    try:
        absolute = _lift(control, treatment, relative=False, alpha=settings.alpha, m=m, settings=settings)
    except UntestableError as exc:
        # 0 purchases out of 225 against 11 of 177 is exactly what a broken checkout looks like: the Welch
        # interval needs variance in both arms, the pooled z-test does not, so the test still decides.
        # proportions: the fixed-horizon view has its z-test; means get the pooled variance in every view
        pooled = (
            _pooled(control, treatment)
            if (settings.sequential or settings.engine == "bayesian" or isinstance(control, MeanStats))
            else None
        )
        if pooled is None:
            if z_p_value is None:
                return _Draft(spec, variant_key, method, None, None, None, str(exc))
            return _Draft(
                spec,
                variant_key,
                method,
                z_p_value,
                _point_lift(control, treatment, relative=False),
                _point_lift(control, treatment, relative=True),
                f"{exc}: p from the two-proportion z-test",
            )
        # Sequential and Bayesian views test the same arm with the pooled variance, as the z-test does, instead
        # of saying "not enough data" where the default view sees a broken checkout.
        control, treatment = pooled
        if isinstance(control, PooledMeanStats) and not settings.sequential:
            method = "pooled_t"
        note = (
            f"{exc}: pooled variance in both arms (Student's t)"
            if isinstance(control, PooledMeanStats)
            else f"{exc}: pooled variance p(1-p) in both arms, as the two-proportion z-test"
        )
        try:
            absolute = _lift(control, treatment, relative=False, alpha=settings.alpha, m=m, settings=settings)
        except UntestableError as again:  # e.g. fewer than 2 units: pooling does not help
            return _Draft(spec, variant_key, method, None, None, None, str(again))
    relative: Lift | None
    try:
        relative = _lift(control, treatment, relative=True, alpha=settings.alpha, m=m, settings=settings)
    except UntestableError as exc:
        relative, note = None, str(exc)
    if settings.sequential and relative is not None:
        # The shown band is the relative lift's confidence sequence, so its own always-valid p decides: the
        # absolute test's p can disagree with the relative band when the control mean is itself uncertain.
        draft = _Draft(spec, variant_key, method, relative.p_value, absolute, relative, note)
        draft.p_at_adjusted = relative.p_value_at_adjusted
    elif z_p_value is not None and not settings.sequential:
        draft = _Draft(spec, variant_key, method, z_p_value, absolute, relative, note)
    else:
        df = (
            None
            if settings.sequential or isinstance(control, PooledProportionStats)
            else float(welch_satterthwaite_df(control.variance, control.n, treatment.variance, treatment.n))
        )
        # Fixed horizon: the relative lift's own Welch test decides (gbstats' relative engine), so the shown
        # interval is the delta-method interval, whose coverage holds at large lifts where the interval built
        # on the absolute test's p under-covers (bench/interval_coverage.py, docs/experiments.md).
        pooled_t = method == "pooled_t"  # Student's t on the difference decides, as the revenue guardrail
        deciding = relative.p_value if relative is not None and not pooled_t else absolute.p_value
        draft = _Draft(spec, variant_key, method, deciding, absolute, relative, note, df)
        log_ratio = (
            None if settings.sequential or unadjusted is not None or pooled_t else _log_ratio(control, treatment)
        )
        if log_ratio is not None and df is not None:
            # the log-ratio interval covers best at every simulated lift (bench/interval_coverage.py): its own
            # t-test decides, so the interval and p shown side by side stay one analysis
            draft.log_ratio = log_ratio
            draft.p_value = float(2 * scipy_stats.t.sf(abs(log_ratio[0]) / log_ratio[1], df))
    if unadjusted is not None:
        draft.cuped = _cuped_summary(unadjusted, absolute, theta, settings)
    if settings.engine == "bayesian" and relative is not None:
        draft.bayesian = bayesian_test(
            control,
            treatment,
            relative=True,
            prior=settings.prior,
            higher_is_better=spec.higher_is_better,
            alpha=2 * settings.alpha,  # the credible interval that excludes 0 exactly when the verdict is decisive
        )
    return draft


def _cuped_summary(
    unadjusted: tuple[MetricStats, MetricStats], adjusted: Lift, theta: float, settings: AnalysisSettings
) -> CupedSummary:
    """How much variance the adjustment removed: compares the absolute lift's standard error with the plain one."""
    control, treatment = unadjusted
    try:
        plain = welch_test(control, treatment, relative=False, alpha=settings.alpha)
    except UntestableError:
        return CupedSummary(theta, 0.0, None)
    reduction = 1 - (adjusted.std_error / plain.std_error) ** 2 if plain.std_error > 0 else 0.0
    try:
        plain_relative: float | None = welch_test(control, treatment, relative=True).estimate
    except UntestableError:
        plain_relative = None
    return CupedSummary(theta, reduction, plain_relative)


def _bayesian_decision(draft: _Draft, alpha: float) -> bool | None:
    """Bayesian engine: decisive when the chance to win leaves [alpha, 1 - alpha]; None when untestable."""
    if draft.bayesian is None:
        return None
    return not alpha <= draft.bayesian.chance_to_win <= 1 - alpha


def _holm_levels(raw: Sequence[float | None], adjusted: Sequence[float | None], alpha: float) -> list[float]:
    """Per comparison, the level whose interval is compatible with Holm's decision (Strassburger & Bretz 2008,
    simplified): a rejected hypothesis at rank ``k`` (0-based) of ``m`` gets ``alpha / (m - k)``, its own step's
    level; the rest get ``alpha / (m - r)``, the level at which the step-down stopped after ``r`` rejections.

    With the *raw* p-value in the test-based interval, a rejected comparison's interval excludes 0 (its raw p is
    below its step level) and a retained one's contains it (its raw p is at least the stopping level), without the
    huge or missing bounds that building the interval on a Holm p-value near 1 gives.
    """
    present = sorted((p, i) for i, p in enumerate(raw) if p is not None)
    m = len(present)
    rejected = sum(1 for p in adjusted if p is not None and p < alpha)
    levels = [alpha] * len(raw)
    for rank, (_, i) in enumerate(present):
        p_adj = adjusted[i]
        step = m - rank if p_adj is not None and p_adj < alpha else m - rejected
        levels[i] = alpha / max(step, 1)
    return levels


def _interval(draft: _Draft, level: float, m: int, settings: AnalysisSettings) -> Interval | None:
    """The comparison's one shown interval (see :mod:`experiments.stats.intervals`)."""
    relative = draft.relative
    if relative is None or draft.p_value is None:
        return None
    if settings.engine == "bayesian":
        if draft.bayesian is None:
            return None
        b = draft.bayesian  # computed at 1 - 2 alpha: excludes 0 exactly when chance to win leaves [alpha, 1-alpha]
        return clipped(b.ci_lower, b.ci_upper, alpha=2 * settings.alpha, correction="none", estimate=b.expected,
                       kind="credible")  # fmt: skip
    if settings.sequential:
        correction = "bonferroni" if m > 1 else "none"
        return clipped(
            relative.ci_lower_adjusted,
            relative.ci_upper_adjusted,
            alpha=settings.alpha,
            correction=correction,
            estimate=relative.estimate,
            kind="sequence",
        )
    correction = "holm" if m > 1 else "none"
    shown: Interval | None = None
    if draft.method in ("two_proportion_z", "pooled_t"):  # a pooled test decides: the interval is built on its p
        shown = decision_interval(relative.estimate, draft.p_value, alpha=level, df=draft.df, correction=correction)
    elif draft.log_ratio is not None and draft.df is not None:
        center, se = draft.log_ratio
        q = float(scipy_stats.t.isf(level / 2, draft.df))
        shown = Interval(math.expm1(center - q * se), math.expm1(center + q * se), 1 - level, correction)
    if shown is None and math.isfinite(relative.std_error) and relative.std_error > 0:
        # the relative lift's Welch interval at the Holm step's level: excludes 0 exactly when its p is below
        # that level (also the fallback for a z-test p of exactly 0 or 1, or a zero estimate)
        q = float(scipy_stats.t.isf(level / 2, draft.df) if draft.df else scipy_stats.norm.isf(level / 2))
        shown = clipped(relative.estimate - q * relative.std_error, relative.estimate + q * relative.std_error,
                        alpha=level, correction=correction, estimate=relative.estimate)  # fmt: skip
    if shown is None:
        return None
    return Interval(shown.lower, shown.upper, 1 - settings.alpha, correction, shown.kind)


def _verdict(draft: _Draft, significant: bool, settings: AnalysisSettings) -> Verdict:
    if draft.p_value is None or draft.absolute is None:
        return "untestable"
    if settings.engine == "bayesian" and draft.bayesian is None:
        return "untestable"  # no posterior: the Bayesian view does not borrow the frequentist verdict
    if draft.bayesian is not None:
        if not significant:
            return "inconclusive"
        return "better" if draft.bayesian.chance_to_win > 0.5 else "worse"
    if not significant:
        return "inconclusive"
    return "better" if (draft.absolute.estimate > 0) == draft.metric.higher_is_better else "worse"


def _adjust(drafts: Sequence[_Draft], settings: AnalysisSettings) -> list[float | None]:
    """Holm for fixed-horizon p-values; Bonferroni for always-valid ones, whose shown interval is the confidence
    sequence at ``alpha / m`` (Holm's p could say "better" beside a Bonferroni band that contains 0). The
    Bonferroni p is ``m`` times the p of the sequence at ``alpha / m``: below alpha exactly when that band
    excludes 0."""
    raw = [d.p_value for d in drafts]
    if settings.correction != "holm":
        return list(raw)
    if settings.sequential:
        m = len(drafts)
        return [
            None if d.p_value is None else min(1.0, m * (d.p_at_adjusted if d.p_at_adjusted is not None else d.p_value))
            for d in drafts
        ]
    return holm_adjust(raw)


def _correction_name(settings: AnalysisSettings) -> str:
    if settings.engine == "bayesian" or settings.correction == "none":
        return "none"
    return "bonferroni" if settings.sequential else "holm"


def _summary(stats: MetricStats) -> MetricSummary:
    n = stats.n
    std_error = math.sqrt(stats.variance / n) if n > 0 and stats.variance > 0 else 0.0
    return MetricSummary(stats.mean, std_error, float(stats.numerator), float(stats.denominator), n)


def analyze_experiment(
    variants: Sequence[VariantData],
    *,
    weights: Sequence[float] | None = None,
    metrics: Sequence[MetricSpec] | None = None,
    settings: AnalysisSettings | None = None,
) -> ExperimentAnalysis:
    """Analyse an experiment; ``variants[0]`` is control, ``weights`` the configured split (default equal).

    ``metrics`` picks and orders the metrics (default :data:`STANDARD_METRICS` that are present in control; an
    unknown key gets a plain spec). A metric missing from a treatment arm is reported as untestable.
    """
    settings = settings or AnalysisSettings()
    if len(variants) < 2:
        raise ValueError("an analysis needs a control and at least one treatment")
    keys = [v.key for v in variants]
    if len(set(keys)) != len(keys):
        raise ValueError(f"duplicate variant keys: {keys}")
    weights = list(weights) if weights is not None else [1.0] * len(variants)
    if len(weights) != len(variants):
        raise ValueError("one weight per variant")
    control = variants[0]
    if metrics is None:
        known = {spec.key for spec in STANDARD_METRICS}
        metrics = [spec for spec in STANDARD_METRICS if spec.key in control.metrics]
        metrics += [MetricSpec(key, key) for key in control.metrics if key not in known]

    srm = srm_check([v.units for v in variants], weights, settings.srm_threshold)
    m = len(variants) - 1 if settings.correction == "holm" else 1
    total_units = sum(v.units for v in variants)
    shares = weight_shares(weights)
    summaries = [
        VariantSummary(
            key=v.key,
            is_control=index == 0,
            units=v.units,
            share=v.units / total_units if total_units else 0.0,
            expected_share=w,
            metrics={spec.key: _summary(v.metrics[spec.key]) for spec in metrics if spec.key in v.metrics},
        )
        for index, (v, w) in enumerate(zip(variants, shares, strict=True))
    ]

    comparisons: list[MetricComparison] = []
    warnings: list[str] = []
    if srm.flagged:
        warnings.append(
            f"Sample ratio mismatch (chi-square p = {srm.p_value:.2g} < {srm.threshold}): units are not split as "
            "configured, so assignment or logging is broken. Do not act on these results."
        )
    for spec in metrics:
        if spec.key not in control.metrics:
            continue
        drafts = []
        for treatment in variants[1:]:
            if spec.key not in treatment.metrics:
                drafts.append(
                    _Draft(
                        spec,
                        treatment.key,
                        _method(control.metrics[spec.key], settings.sequential),
                        None,
                        None,
                        None,
                        "metric missing for this variant",
                    )
                )
                continue
            drafts.append(
                _compare(
                    spec,
                    control.key,
                    control.metrics[spec.key],
                    treatment.key,
                    treatment.metrics[spec.key],
                    m,
                    settings,
                )
            )
        raw = [d.p_value for d in drafts]
        adjusted = _adjust(drafts, settings)
        levels = (
            _holm_levels(raw, adjusted, settings.alpha)
            if settings.correction == "holm"
            else [settings.alpha] * len(raw)
        )
        for draft, p_adj, level in zip(drafts, adjusted, levels, strict=True):
            significant = p_adj is not None and p_adj < settings.alpha
            statistic: Literal["p_value", "chance_to_win"] = "p_value"
            statistic_value = p_adj
            if settings.engine == "bayesian":
                significant = bool(_bayesian_decision(draft, settings.alpha))
                statistic = "chance_to_win"
                statistic_value = draft.bayesian.chance_to_win if draft.bayesian else None
                if draft.bayesian is None and draft.p_value is not None:
                    draft.error = (draft.error + "; " if draft.error else "") + "no posterior on these data"
            comparisons.append(
                MetricComparison(
                    metric=spec.key,
                    label=spec.label,
                    variant=draft.variant,
                    control=control.key,
                    method=draft.method,
                    p_value=draft.p_value,
                    p_value_adjusted=p_adj,
                    significant=significant,
                    verdict=_verdict(draft, significant, settings),
                    absolute=draft.absolute,
                    relative=draft.relative,
                    error=draft.error,
                    bayesian=draft.bayesian,
                    cuped=draft.cuped,
                    interval=_interval(draft, level, m, settings),
                    statistic=statistic,
                    statistic_value=statistic_value,
                )
            )
    return ExperimentAnalysis(
        control=control.key,
        alpha=settings.alpha,
        sequential=settings.sequential,
        correction=_correction_name(settings) if len(variants) > 2 else "none",
        comparisons_per_metric=len(variants) - 1,
        srm=srm,
        variants=summaries,
        comparisons=comparisons,
        warnings=warnings,
        engine=settings.engine,
        cuped=any(c.cuped is not None for c in comparisons),
    )


def per_language(
    stats: Mapping[tuple[str, str], VariantData | UnitAggregates],
    *,
    variant_order: Sequence[str],
    weights: Sequence[float] | None = None,
    metrics: Sequence[MetricSpec] | None = None,
    settings: AnalysisSettings | None = None,
) -> dict[str, ExperimentAnalysis]:
    """Analyse each shopper language on its own; ``stats`` is keyed by ``(language, variant)``.

    ``variant_order`` fixes control (first) and the arms; a variant without traffic in some language gets zero
    units there (its comparisons come out untestable, and the SRM check sees the gap). Languages are sorted.
    No correction is made across languages: with many languages some will look significant by chance, so the
    breakdown is for spotting where an effect comes from, not for declaring winners.
    """
    if not variant_order:
        raise ValueError("variant_order must name control first")
    languages = sorted({language for language, _ in stats})
    unknown = {variant for _, variant in stats} - set(variant_order)
    if unknown:
        raise ValueError(f"variants not in variant_order: {sorted(unknown)}")
    results: dict[str, ExperimentAnalysis] = {}
    for language in languages:
        present = {
            variant: _as_variant_data(variant, stats[(language, variant)])
            for variant in variant_order
            if (language, variant) in stats
        }
        template = next(iter(present.values()))
        rows = [
            present.get(variant) or VariantData(variant, 0, {k: empty_like(s) for k, s in template.metrics.items()})
            for variant in variant_order
        ]
        analysis = analyze_experiment(rows, weights=weights, metrics=metrics, settings=settings)
        analysis.warnings.append("Per-language results are not corrected across languages; treat them as exploratory.")
        results[language] = analysis
    return results


def _as_variant_data(key: str, value: VariantData | UnitAggregates) -> VariantData:
    if isinstance(value, UnitAggregates):
        return VariantData.from_aggregates(key, value)
    if value.key != key:
        return VariantData(key, value.units, value.metrics)
    return value

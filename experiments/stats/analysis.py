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
from experiments.stats.sufficient import MeanStats, MetricStats, ProportionStats, RatioStats, empty_like

Method = Literal["welch_t", "welch_t_delta", "welch_t_cuped", "two_proportion_z", "confidence_sequence"]
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
    #: The one interval every view shows: relative lift, consistent with ``p_value_adjusted``
    #: (:mod:`experiments.stats.intervals`). None when the data do not bound it.
    interval: Interval | None = None


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
    bayesian: BayesianResult | None = None
    cuped: CupedSummary | None = None


def _point_lift(control: MetricStats, treatment: MetricStats, *, relative: bool) -> Lift | None:
    """The estimate alone (no interval): for a test that decides although an interval cannot be computed."""
    if relative and control.mean == 0:
        return None
    estimate = (treatment.mean - control.mean) / control.mean if relative else treatment.mean - control.mean
    nan = math.nan
    return Lift(estimate, nan, nan, nan, nan, nan, nan)


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
        control, treatment, theta = adjust_pair(control, treatment)
    z_p_value: float | None = None
    if method == "two_proportion_z":
        assert isinstance(control, ProportionStats) and isinstance(treatment, ProportionStats)
        try:
            _, z_p_value = two_proportion_z_test(control.successes, control.n, treatment.successes, treatment.n)
        except UntestableError as exc:
            return _Draft(spec, variant_key, method, None, None, None, str(exc))
    try:
        absolute = _lift(control, treatment, relative=False, alpha=settings.alpha, m=m, settings=settings)
    except UntestableError as exc:
        if z_p_value is None:
            return _Draft(spec, variant_key, method, None, None, None, str(exc))
        # 0 purchases out of 225 against 11 of 177 is exactly what a broken checkout looks like: the Welch
        # interval needs variance in both arms, the pooled z-test does not, so the test still decides.
        return _Draft(
            spec,
            variant_key,
            method,
            z_p_value,
            _point_lift(control, treatment, relative=False),
            _point_lift(control, treatment, relative=True),
            f"{exc}: p from the two-proportion z-test",
        )
    relative: Lift | None
    note: str | None = None
    try:
        relative = _lift(control, treatment, relative=True, alpha=settings.alpha, m=m, settings=settings)
    except UntestableError as exc:
        relative, note = None, str(exc)
    if z_p_value is not None:
        draft = _Draft(spec, variant_key, method, z_p_value, absolute, relative, note)
    else:
        df = (
            None
            if settings.sequential
            else float(welch_satterthwaite_df(control.variance, control.n, treatment.variance, treatment.n))
        )
        draft = _Draft(spec, variant_key, method, absolute.p_value, absolute, relative, note, df)
    if unadjusted is not None:
        draft.cuped = _cuped_summary(unadjusted, absolute, theta, settings)
    if settings.engine == "bayesian" and relative is not None:
        draft.bayesian = bayesian_test(
            control,
            treatment,
            relative=True,
            prior=settings.prior,
            higher_is_better=spec.higher_is_better,
            alpha=settings.alpha,
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


def _interval(draft: _Draft, p_adjusted: float | None, m: int, settings: AnalysisSettings) -> Interval | None:
    """The comparison's one shown interval (see :mod:`experiments.stats.intervals`)."""
    relative = draft.relative
    if relative is None or p_adjusted is None:
        return None
    if settings.sequential:
        correction = "bonferroni" if m > 1 else "none"
        return clipped(
            relative.ci_lower_adjusted, relative.ci_upper_adjusted, alpha=settings.alpha, correction=correction
        )
    correction = "holm" if m > 1 else "none"
    return decision_interval(relative.estimate, p_adjusted, alpha=settings.alpha, df=draft.df, correction=correction)


def _verdict(draft: _Draft, significant: bool) -> Verdict:
    if draft.p_value is None or draft.absolute is None:
        return "untestable"
    if draft.bayesian is not None:
        if not significant:
            return "inconclusive"
        return "better" if draft.bayesian.chance_to_win > 0.5 else "worse"
    if not significant:
        return "inconclusive"
    return "better" if (draft.absolute.estimate > 0) == draft.metric.higher_is_better else "worse"


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
        adjusted = holm_adjust(raw) if settings.correction == "holm" else raw
        for draft, p_adj in zip(drafts, adjusted, strict=True):
            significant = p_adj is not None and p_adj < settings.alpha
            if settings.engine == "bayesian":
                significant = bool(_bayesian_decision(draft, settings.alpha))
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
                    verdict=_verdict(draft, significant),
                    absolute=draft.absolute,
                    relative=draft.relative,
                    error=draft.error,
                    bayesian=draft.bayesian,
                    cuped=draft.cuped,
                    interval=_interval(draft, p_adj, m, settings),
                )
            )
    return ExperimentAnalysis(
        control=control.key,
        alpha=settings.alpha,
        sequential=settings.sequential,
        correction=settings.correction if len(variants) > 2 else "none",
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

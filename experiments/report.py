"""Everything the experiment page shows, computed once: analysis, per-language, time series, sample size, CSV.

Input comes from the SQL rollups in :mod:`experiments.store.aggregate`; statistics from :mod:`experiments.stats`
and :mod:`experiments.interleaving`. The output is plain data (dicts, lists, floats) so the dashboard templates,
the SVG charts, the CSV export and the tests all read the same numbers.

The cumulative time series uses always-valid confidence sequences by default: a chart that is looked at every
day must not show a "significant" band by chance (see ``experiments/README.md``, sequential mode).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from experiments.delivery import Configured, assess_delivery, interleaved_config
from experiments.guardrails import search_quality
from experiments.interleaving import summarize_outcomes
from experiments.stats import (
    STANDARD_METRICS,
    AnalysisSettings,
    PrePeriodAggregates,
    UnitAggregates,
    VariantData,
    adjusted_metrics,
    analyze_experiment,
    per_language,
    required_sample_size,
    required_sample_size_proportion,
)
from experiments.stats.analysis import Engine
from experiments.stats.intervals import CORRECTION_NAMES
from experiments.stats.srm import weight_shares
from experiments.stats.sufficient import empty_like
from experiments.store.aggregate import AbReport, InterleavingReport, Outcomes, ab_report, interleaving_report
from experiments.store.covariates import DEFAULT_WINDOW_DAYS, pre_period_report
from experiments.store.experiment_models import INTERLEAVED_VARIANT, Experiment
from experiments.store.served import delivery_counts

#: The metrics the dashboard tables show (impressions per unit stays in the CSV).
DASHBOARD_METRICS = ("ctr", "conversion_rate", "revenue_per_unit", "clicks_per_unit")
METRIC_LABELS = {spec.key: spec.label for spec in STANDARD_METRICS}
METRIC_FORMATS = {
    "ctr": "percent",
    "conversion_rate": "percent",
    "revenue_per_unit": "money",
    "clicks_per_unit": "number",
    "impressions_per_unit": "number",
}


@dataclass
class SampleSizeProgress:
    metric: str
    required_per_variant: int | None  # None: not enough data in control to estimate the variance yet
    smallest_variant_units: int
    fraction: float | None
    target_mde: float
    note: str = ""


@dataclass
class Report:
    experiment_key: str
    kind: str
    primary_metric: str
    currency: str
    generated_at: dt.datetime
    variants: list[str]
    analysis: dict[str, Any] | None = None  # ExperimentAnalysis.to_dict() for A/B
    languages: dict[str, dict[str, Any]] = field(default_factory=dict)  # language → analysis dict
    series: list[dict[str, Any]] = field(default_factory=list)  # per day: cumulative lift of the primary metric
    sample_size: SampleSizeProgress | None = None
    unpriced_purchases: int = 0
    interleaving: dict[str, Any] | None = None
    sequential: bool = False
    warnings: list[str] = field(default_factory=list)
    engine: str = "frequentist"  # or "bayesian": comparisons carry chance to win and risk
    #: CUPED on: {"window_days": int, "variants": {variant: {"units": int, "active_units": int}}}
    cuped: dict[str, Any] | None = None
    #: per variant: what its searches really served against its config (:mod:`experiments.delivery`)
    delivery: list[dict[str, Any]] = field(default_factory=list)
    #: latency percentiles, product CTR and guardrail flags (:mod:`experiments.guardrails`)
    quality: dict[str, Any] | None = None

    @property
    def delivery_problems(self) -> list[dict[str, Any]]:
        return [d for d in self.delivery if d["flagged"]]

    @property
    def guardrail_flags(self) -> list[dict[str, Any]]:
        return [g for g in (self.quality or {}).get("guardrails", []) if g["flagged"]]

    @property
    def guardrails_untestable(self) -> list[dict[str, Any]]:
        """Guardrails no test can decide yet: shown in amber as "cannot test", never as "ok"."""
        return [g for g in (self.quality or {}).get("guardrails", []) if g.get("status") == "cannot_test"]

    @property
    def total_units(self) -> int:
        if self.analysis:
            return sum(v["units"] for v in self.analysis["variants"])
        if self.interleaving:
            return int(self.interleaving["exposed_units"])
        return 0

    def headline(self) -> dict[str, Any]:
        """The best treatment on the primary metric: what the experiment list shows."""
        if self.interleaving is not None:
            total = self.interleaving["total"]
            return {
                "srm": False,
                "delivery": [d["variant"] for d in self.delivery_problems],
                "guardrails": [],
                "guardrails_untestable": [],
                "metric": "preference",
                "variant": self.variants[1],
                "estimate": total["b_win_share"],
                "ci": total["b_win_share_ci"],
                "p_value": total["p_value"],
                "verdict": (
                    "inconclusive" if not total["significant"] else ("better" if total["winner"] == "B" else "worse")
                ),
                "kind": "interleaving",
            }
        comparisons = [c for c in (self.analysis or {}).get("comparisons", []) if c["metric"] == self.primary_metric]
        srm = bool((self.analysis or {}).get("srm", {}).get("flagged"))
        checks = {
            "srm": srm,
            "delivery": [d["variant"] for d in self.delivery_problems],
            "guardrails": [f"{g['label']} · {g['variant']}" for g in self.guardrail_flags],
            "guardrails_untestable": [f"{g['label']} · {g['variant']}" for g in self.guardrails_untestable],
        }
        if not comparisons:
            return {"metric": self.primary_metric, "verdict": "untestable", "kind": "ab", **checks}
        ranked = sorted(
            comparisons,
            key=lambda c: c["relative"].get("estimate") if c["relative"] else -math.inf,
            reverse=True,
        )
        best = ranked[0]
        relative = best["relative"] or {}
        interval = best.get("interval")
        return {
            "metric": self.primary_metric,
            "variant": best["variant"],
            "estimate": relative.get("estimate"),
            # the same interval as the experiment page (one interval per comparison, everywhere)
            "ci": [interval["lower"], interval["upper"]] if interval else None,
            "correction": interval["correction"] if interval else None,
            "p_value": best["p_value_adjusted"],
            "verdict": best["verdict"],
            "kind": "ab",
            **checks,
        }


def _variant_data(order: list[str], totals: Mapping[str, UnitAggregates]) -> list[VariantData]:
    template = next(iter(totals.values()), UnitAggregates(units=0))
    empty = {key: empty_like(stats) for key, stats in template.metrics().items()}
    return [
        VariantData.from_aggregates(key, totals[key]) if key in totals else VariantData(key, 0, empty) for key in order
    ]


def _cuped_inputs(
    order: list[str],
    by_language: Mapping[tuple[str, str], UnitAggregates],
    pre: Mapping[tuple[str, str], PrePeriodAggregates],
) -> tuple[list[VariantData], dict[tuple[str, str], VariantData]]:
    """Overall and per-language variant data with CUPED statistics (same units as the plain report)."""
    languages: dict[tuple[str, str], VariantData] = {}
    totals: dict[str, tuple[UnitAggregates, PrePeriodAggregates]] = {}
    for (language, variant), post in by_language.items():
        history = pre.get((language, variant)) or PrePeriodAggregates(units=post.units)
        languages[(language, variant)] = VariantData(variant, post.units, adjusted_metrics(post, history))
        if variant in totals:
            totals[variant] = (totals[variant][0] + post, totals[variant][1] + history)
        else:
            totals[variant] = (post, history)
    empty = (UnitAggregates(units=0), PrePeriodAggregates(units=0))
    variants = [
        VariantData(key, totals.get(key, empty)[0].units, adjusted_metrics(*totals.get(key, empty))) for key in order
    ]
    return variants, languages


def _sample_size(experiment: Experiment, totals: Mapping[str, UnitAggregates], order: list[str]) -> SampleSizeProgress:
    metric = experiment.primary_metric
    units = [totals[key].units if key in totals else 0 for key in order]
    smallest = min(units) if units else 0
    control = totals.get(order[0])
    progress = SampleSizeProgress(metric, None, smallest, None, experiment.target_mde)
    if control is None or control.units < 30:
        progress.note = "needs at least 30 control units to estimate the baseline"
        return progress
    stats = control.metrics()[metric]
    comparisons = max(1, len(order) - 1)
    try:
        shares = weight_shares([v.weight for v in experiment.variants])
    except ValueError:
        shares = [1.0] * len(experiment.variants)
    # any stored weights (``1e308`` beside ``5e-324``): a share of 0 would divide by zero in the power formula
    ratio = min(shares[1:]) / shares[0] if len(shares) > 1 and shares[0] > 0 and min(shares[1:]) > 0 else 1.0
    try:
        if metric == "conversion_rate":
            size = required_sample_size_proportion(
                baseline_rate=stats.mean,
                mde=experiment.target_mde,
                treatment_ratio=ratio,
                num_comparisons=comparisons,
            )
        else:
            size = required_sample_size(
                baseline_mean=stats.mean,
                baseline_variance=stats.variance,
                mde=experiment.target_mde,
                treatment_ratio=ratio,
                num_comparisons=comparisons,
            )
    except (ValueError, ArithmeticError) as exc:  # ArithmeticError: extreme stored weights overflow the formula
        progress.note = f"cannot estimate yet: {exc}"
        return progress
    required = max(size.n_control, size.n_treatment)
    progress.required_per_variant = required
    progress.fraction = smallest / required if required else None
    return progress


def _series(
    cumulative: Mapping[dt.date, Mapping[str, UnitAggregates]],
    order: list[str],
    weights: list[float],
    metric: str,
    settings: AnalysisSettings,
) -> list[dict[str, Any]]:
    out = []
    for day in sorted(cumulative):
        variants = _variant_data(order, cumulative[day])
        analysis = analyze_experiment(variants, weights=weights, settings=settings)
        point: dict[str, Any] = {"day": day.isoformat(), "units": sum(v.units for v in variants), "lifts": {}}
        for comparison in analysis.comparisons:
            if comparison.metric != metric:
                continue
            relative, interval = comparison.relative, comparison.interval
            point["lifts"][comparison.variant] = (
                None
                if relative is None
                else {
                    "estimate": relative.estimate,
                    "ci_lower": interval.lower if interval else None,
                    "ci_upper": interval.upper if interval else None,
                }
            )
        out.append(point)
    return out


def _no_purchase_warnings(order: list[str], totals: Mapping[str, UnitAggregates]) -> list[str]:
    """An arm where nobody bought while others did is what a broken checkout or purchase beacon looks like."""
    bought = {key: totals[key].converted_units for key in order if key in totals and totals[key].units}
    if not any(bought.values()):
        return []
    control = order[0]
    return [
        f"No purchases at all in {key}: 0 of {totals[key].units:,} shoppers, against "
        f"{totals[control].converted_units:,} of {totals[control].units:,} in {control}. Check that its checkout "
        "and purchase tracking work before reading its revenue or conversion."
        for key, count in bought.items()
        if count == 0 and key != control and control in bought
    ]


def _up_to(
    cumulative: Mapping[dt.date, Mapping[str, UnitAggregates]], today: dt.date
) -> dict[dt.date, Mapping[str, UnitAggregates]]:
    """No day after ``today`` (UTC): events dated ahead by a client clock count on today, not on a future day."""
    days = sorted(cumulative)
    kept = {day: cumulative[day] for day in days if day <= today}
    if days and days[-1] > today:
        kept[today] = cumulative[days[-1]]  # cumulative: the last day holds everything
    return kept


def _summary_dict(outcomes: Outcomes, alpha: float) -> dict[str, Any]:
    summary = summarize_outcomes(outcomes.wins_a, outcomes.wins_b, outcomes.ties, alpha=alpha)
    return {
        "impressions": summary.impressions,
        "wins_a": summary.wins_a,
        "wins_b": summary.wins_b,
        "ties": summary.ties,
        "preference_b": summary.preference_b,
        "b_win_share": summary.b_win_share,
        "b_win_share_ci": list(summary.b_win_share_ci) if summary.b_win_share_ci else None,
        "p_value": summary.p_value,
        "significant": summary.significant,
        "winner": summary.winner.value if summary.winner else None,
    }


def _interleaving(report: InterleavingReport, alpha: float) -> dict[str, Any]:
    return {
        "exposed_units": report.exposed_units,
        "total": _summary_dict(report.total(), alpha),
        "unit_level": _summary_dict(report.unit_total(), alpha),
        "languages": {lang: _summary_dict(o, alpha) for lang, o in report.by_language().items()},
        "series": [{"day": day.isoformat(), **_summary_dict(o, alpha)} for day, o in report.cumulative().items()],
    }


def build_report(
    session: Session,
    experiment: Experiment,
    *,
    rates: Mapping[str, float],
    currency: str = "USD",
    sequential: bool = False,
    alpha: float = 0.05,
    engine: Engine = "frequentist",
    cuped: bool = False,
    cuped_window_days: int = DEFAULT_WINDOW_DAYS,
) -> Report:
    """Run the SQL rollups for ``experiment`` and every statistic the page shows.

    ``engine="bayesian"`` adds chance to win and risk; ``cuped=True`` runs one more query (each unit's activity
    in the ``cuped_window_days`` before exposure) and compares the per-unit metrics regression-adjusted.
    """
    order = [v.key for v in experiment.variants]
    weights = [v.weight for v in experiment.variants]
    report = Report(
        experiment_key=experiment.key,
        kind=experiment.kind,
        primary_metric=experiment.primary_metric,
        currency=currency,
        generated_at=dt.datetime.now(dt.UTC),
        variants=order,
        sequential=sequential,
        engine=engine,
    )
    configs = [
        Configured(v.key, v.rerank, v.model, v.first_stage_top_k, v.rerank_max_depth) for v in experiment.variants
    ]
    if experiment.kind == "interleaving":
        report.interleaving = _interleaving(interleaving_report(session, experiment.key), alpha)
        # Every interleaved page is attributed to one pseudo-variant; its delivery is checked against the teams.
        page = interleaved_config(configs, INTERLEAVED_VARIANT)
        report.delivery = [d.to_dict() for d in assess_delivery([page], delivery_counts(session, experiment.key))]
        return report

    data: AbReport = ab_report(session, experiment.key, rates)
    totals = data.totals()
    settings = AnalysisSettings(alpha=alpha, sequential=sequential, engine=engine)
    observed = {key: stats for key, stats in data.by_language.items() if key[1] in order}
    by_language: Mapping[tuple[str, str], UnitAggregates | VariantData] = observed
    if cuped:
        pre = pre_period_report(session, experiment.key, rates, window_days=cuped_window_days)
        variants, by_language = _cuped_inputs(order, observed, pre)
        report.cuped = {
            "window_days": cuped_window_days,
            "variants": {
                variant: {
                    "units": sum(p.units for (_, v), p in pre.items() if v == variant),
                    "active_units": sum(p.active_units for (_, v), p in pre.items() if v == variant),
                }
                for variant in order
            },
        }
    else:
        variants = _variant_data(order, totals)
    analysis = analyze_experiment(variants, weights=weights, settings=settings)
    report.analysis = analysis.to_dict()
    report.warnings = list(analysis.warnings)
    if by_language:
        breakdown = per_language(by_language, variant_order=order, weights=weights, settings=settings)
        report.languages = {lang: result.to_dict() for lang, result in breakdown.items()}
    # The time series is always sequential: it is the view people check every day.
    report.series = _series(
        _up_to(data.cumulative, report.generated_at.date()),
        order,
        weights,
        experiment.primary_metric,
        AnalysisSettings(alpha=alpha, sequential=True),
    )
    report.sample_size = _sample_size(experiment, totals, order)
    report.unpriced_purchases = data.unpriced_purchases
    served = delivery_counts(session, experiment.key)
    report.delivery = [d.to_dict() for d in assess_delivery(configs, served)]
    report.quality = search_quality(
        session,
        experiment.key,
        order,
        weights,
        report.analysis["comparisons"],
        served,
        alpha=alpha,
        main_variants=report.analysis["variants"],
    )
    report.warnings.extend(_no_purchase_warnings(order, totals))
    if data.unpriced_purchases:
        report.warnings.append(
            f"{data.unpriced_purchases} purchase(s) in currencies without an exchange rate count as conversions "
            f"but not as revenue (set SHOPRANK_FX_RATES)."
        )
    return report


# --- CSV export ----------------------------------------------------------------------------------------------------

CSV_COLUMNS = (
    "experiment",
    "segment",
    "variant",
    "units",
    "metric",
    "value",
    "std_error",
    "absolute_lift",
    "relative_lift",
    "relative_ci_lower",
    "relative_ci_upper",
    "interval",
    "p_value",
    "p_value_adjusted",
    "method",
    "verdict",
    # the view, and every number it shows beside the columns above (issue 23: "the CSV of a view carries every
    # number of that view"); rows of the checks (SRM, delivery, guardrails, ...) use the same columns
    "view",
    "statistic",
    "statistic_value",
    "chance_to_win",
    "risk_ship",
    "risk_keep",
    "posterior_lift",
    "cuped_theta",
    "variance_removed",
    "unadjusted_relative_lift",
    "note",
)


def view_name(report: Report) -> str:
    """``bayesian+sequential+cuped``: which analysis a page, list or CSV shows."""
    parts = [report.engine]
    if report.sequential:
        parts.append("sequential")
    if report.cuped is not None:
        parts.append("cuped")
    return "+".join(parts)


def interval_label(interval: Mapping[str, Any]) -> str:
    """``95% CI, Holm-adjusted``: the level and the correction of a comparison's interval, named."""
    return f"{interval['level']:.0%} CI, {CORRECTION_NAMES[interval['correction']]}"


def _csv_rows(key: str, segment: str, analysis: Mapping[str, Any], view: str) -> list[list[Any]]:
    rows = []
    comparisons = {(c["metric"], c["variant"]): c for c in analysis["comparisons"]}
    for variant in analysis["variants"]:
        for metric, summary in variant["metrics"].items():
            comparison = comparisons.get((metric, variant["key"])) or {}
            relative = comparison.get("relative") or {}
            absolute = comparison.get("absolute") or {}
            interval = comparison.get("interval") or {}
            bayes = comparison.get("bayesian") or {}
            cuped = comparison.get("cuped") or {}
            rows.append(
                [
                    key,
                    segment,
                    variant["key"],
                    variant["units"],
                    metric,
                    summary["value"],
                    summary["std_error"],
                    absolute.get("estimate"),
                    relative.get("estimate"),
                    interval.get("lower"),
                    interval.get("upper"),
                    interval_label(interval) if interval else "",
                    comparison.get("p_value"),
                    comparison.get("p_value_adjusted"),
                    comparison.get("method"),
                    comparison.get("verdict", "control" if variant["is_control"] else ""),
                    view,
                    comparison.get("statistic", ""),
                    comparison.get("statistic_value"),
                    bayes.get("chance_to_win"),
                    bayes.get("risk_treatment"),
                    bayes.get("risk_control"),
                    bayes.get("expected"),
                    cuped.get("theta"),
                    cuped.get("variance_reduction"),
                    cuped.get("unadjusted_relative"),
                    comparison.get("error") or "",
                ]
            )
    return rows


def _check_row(key: str, segment: str, view: str, **values: Any) -> list[Any]:
    """A row of the checks (SRM, sample size, CUPED history, delivery, quality, guardrails, warnings)."""
    row = dict.fromkeys(CSV_COLUMNS)
    row.update(experiment=key, segment=segment, view=view, **values)
    return [row[column] for column in CSV_COLUMNS]


def _check_rows(report: Report, view: str) -> list[list[Any]]:
    key, rows = report.experiment_key, []
    analysis = report.analysis or {}
    srm = analysis.get("srm")
    if srm:
        for variant, observed, expected in zip(report.variants, srm["observed"], srm["expected"], strict=False):
            rows.append(_check_row(key, "srm", view, variant=variant, units=observed, metric="expected_units",
                                   value=expected))  # fmt: skip
        rows.append(_check_row(key, "srm", view, metric="chi_square", value=srm["chi_square"], p_value=srm["p_value"],
                               verdict="flagged" if srm["flagged"] else "ok", method="chi_square"))  # fmt: skip
    size = report.sample_size
    if size is not None:
        rows.append(_check_row(key, "sample_size", view, metric=size.metric, units=size.smallest_variant_units,
                               value=size.fraction, note=f"required per variant {size.required_per_variant}; "
                               f"target MDE {size.target_mde}; {size.note}".strip("; ")))  # fmt: skip
    for variant, info in ((report.cuped or {}).get("variants") or {}).items():
        rows.append(_check_row(key, "cuped_history", view, variant=variant, units=info["units"],
                               metric="shoppers_with_history", value=info["active_units"],
                               note=f"window {report.cuped['window_days']} days before exposure (server time)"))  # type: ignore[index]  # fmt: skip
    for d in report.delivery:
        rows.append(_check_row(key, "delivery", view, variant=d["variant"], units=d["searches"],
                               metric="as_configured_share", value=d["as_configured_share"],
                               verdict="flagged" if d["flagged"] else "ok",
                               note=" ".join(d["problems"]) or f"not reported {d['not_reported']}"))  # fmt: skip
    quality = report.quality or {}
    for variant, latency in (quality.get("latency") or {}).items():
        for name in ("p50", "p95"):
            rows.append(_check_row(key, "quality", view, variant=variant, metric=f"latency_{name}_ms",
                                   value=latency[name]))  # fmt: skip
    for variant in (quality.get("analysis") or {}).get("variants", []):
        for metric, summary in variant["metrics"].items():
            rows.append(_check_row(key, "quality", view, variant=variant["key"], units=variant["units"],
                                   metric=metric, value=summary["value"], std_error=summary["std_error"]))  # fmt: skip
    for g in quality.get("guardrails", []):
        rows.append(_check_row(key, "guardrail", view, variant=g["variant"], metric=g["metric"],
                               relative_lift=g["relative"], p_value=g["p_value"],
                               p_value_adjusted=g["p_value_adjusted"], method=g["method"], verdict=g["status"],
                               note=g.get("reason") or ""))  # fmt: skip
    for warning in report.warnings:
        rows.append(_check_row(key, "warning", view, note=warning))
    return rows


def report_csv(report: Report) -> str:
    """One row per (segment, variant, metric): 'all' first, then each language, then the checks the page shows
    (SRM, sample size, CUPED history, delivery, search quality, guardrails, warnings), all of the report's view."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if report.interleaving is not None:
        writer.writerow(
            [
                "experiment",
                "segment",
                "impressions",
                "wins_a",
                "wins_b",
                "ties",
                "b_win_share",
                "ci_lower",
                "ci_upper",
                "p_value",
                "note",
            ]
        )
        segments = {"all": report.interleaving["total"], "all (unit level)": report.interleaving["unit_level"]}
        segments.update(report.interleaving["languages"])
        for segment, s in segments.items():
            ci = s["b_win_share_ci"] or [None, None]
            writer.writerow(
                [
                    report.experiment_key,
                    segment,
                    s["impressions"],
                    s["wins_a"],
                    s["wins_b"],
                    s["ties"],
                    s["b_win_share"],
                    ci[0],
                    ci[1],
                    s["p_value"],
                    "",
                ]
            )
        for d in report.delivery:  # the page's delivery check: searches, as configured, and what went wrong
            share = d["as_configured_share"]
            writer.writerow(
                [report.experiment_key, f"delivery:{d['variant']}", d["searches"], "", "", "", share, "", "", "",
                 ("flagged: " + " ".join(d["problems"])) if d["flagged"] else "delivered as configured"]
            )  # fmt: skip
        return buffer.getvalue()
    view = view_name(report)
    writer.writerow(CSV_COLUMNS)
    if report.analysis:
        writer.writerows(_csv_rows(report.experiment_key, "all", report.analysis, view))
    for language, analysis in report.languages.items():
        writer.writerows(_csv_rows(report.experiment_key, f"language:{language}", analysis, view))
    writer.writerows(_check_rows(report, view))
    return buffer.getvalue()

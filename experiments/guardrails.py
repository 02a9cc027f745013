"""Guardrails: what a treatment must not break, flagged when significantly worse than control.

- **zero-result rate**: searches that showed no product ÷ searches (a ranking that drops candidates, a broken
  filter);
- **p95 search latency**: reported per variant; tested as the share of a variant's searches slower than
  control's p95 (under "no difference" that share is the same in every arm, so a significantly larger share
  means a slower tail); a reranker that is too slow for its deadline shows here first;
- **revenue per shopper**: the report's own Welch test on revenue per unit.

The two search-level metrics are ratio metrics with the shopper as the analysis unit (delta method, Welch t),
Holm-corrected across treatments like every other metric; the same analysis also yields the product-level CTR
(clicks ÷ products shown), which the report shows beside the results-page CTR.

A guardrail must be able to fail. Welch needs variance in both arms, and a healthy control often has none (no
empty page at all, or an arm without revenue), which made the old chip say "ok" for a treatment that emptied
4 % of its pages. So when Welch cannot decide, a fallback does: Fisher's exact test on the searches for the
search-level rates (every search counted once; it ignores that one shopper's searches are correlated, which
is the price of a test that exists when one arm never had an event), and Student's pooled-variance t-test for
revenue per shopper. A guardrail that no test can decide (fewer than two shoppers, no variance even pooled)
says ``cannot_test``, shown in amber, never "ok". Holm runs across the treatments over the p-values that decide.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats as scipy_stats
from sqlalchemy.orm import Session

from experiments.stats import AnalysisSettings, MetricSpec, VariantData, analyze_experiment
from experiments.stats.corrections import holm_adjust
from experiments.stats.sufficient import empty_like
from experiments.store.served import QUALITY_RATIOS, DeliveryCount, latency_histogram, percentile, quality_sums

GUARDRAIL_METRICS = ("zero_result_rate", "slow_search_share", "revenue_per_unit")
#: lower is better for these; revenue per shopper is higher-is-better
_LOWER_IS_BETTER = {"zero_result_rate", "slow_search_share"}


def _specs(slow_ms: float | None) -> list[MetricSpec]:
    slower = f"{slow_ms:,.0f} ms" if slow_ms is not None else "control's p95"
    return [
        MetricSpec("product_ctr", "Product CTR (clicks per product shown)", True, "clicks / products shown"),
        MetricSpec("zero_result_rate", "Zero-result rate", False, "searches with no result / searches"),
        MetricSpec(
            "slow_search_share", f"Searches slower than control's p95 ({slower})", False, "slow / timed searches"
        ),
    ]


def search_quality(
    session: Session,
    experiment: str,
    order: Sequence[str],
    weights: Sequence[float],
    main_comparisons: Sequence[Mapping[str, Any]],
    counts: Sequence[DeliveryCount],
    *,
    alpha: float = 0.05,
    main_variants: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """Per-variant latency percentiles, the search-quality analysis and the guardrail flags, JSON-ready.

    ``counts`` are the experiment's :func:`experiments.store.served.delivery_counts` (they hold the latencies).
    """
    histograms = latency_histogram(counts)
    latency = {
        variant: {
            "p50": percentile(histograms.get(variant, {}), 0.5),
            "p95": percentile(histograms.get(variant, {}), 0.95),
        }
        for variant in order
    }
    slow_ms = latency[order[0]]["p95"]
    sums = quality_sums(session, experiment, slow_ms)
    out: dict[str, Any] = {"latency": latency, "slow_ms": slow_ms, "analysis": None, "guardrails": []}
    if not sums:
        out["guardrails"] = guardrail_rows(
            None, {"comparisons": main_comparisons, "variants": main_variants}, alpha=alpha
        )
        return out
    template = next(iter(sums.values()))
    variants = [
        VariantData(key, sums[key]["zero_result_rate"].n, sums[key])
        if key in sums
        else VariantData(key, 0, {m: empty_like(s) for m, s in template.items()})
        for key in order
    ]
    analysis = analyze_experiment(
        variants, weights=weights, metrics=_specs(slow_ms), settings=AnalysisSettings(alpha=alpha)
    ).to_dict()
    out["analysis"] = analysis
    out["guardrails"] = guardrail_rows(
        analysis, {"comparisons": main_comparisons, "variants": main_variants}, alpha=alpha
    )
    return out


def _fallback(metric: str, control: Mapping[str, Any], treatment: Mapping[str, Any]) -> tuple[str, float] | None:
    """(method, two-sided p) of the test that exists when Welch does not; None when none does."""
    if metric in QUALITY_RATIOS:
        xc, yc = round(control["numerator"]), round(control["denominator"])
        xt, yt = round(treatment["numerator"]), round(treatment["denominator"])
        if yc < 1 or yt < 1 or int(control["n"]) < 2 or int(treatment["n"]) < 2:
            return None  # a rate of one shopper's searches says nothing about shoppers
        table = np.array([[xt, yt - xt], [xc, yc - xc]], dtype=np.int64)
        p = float(scipy_stats.fisher_exact(table).pvalue)
        return "fisher_exact", min(1.0, p)
    nc, nt = int(control["n"]), int(treatment["n"])
    if nc < 2 or nt < 2:
        return None
    sc = float(control["std_error"]) * math.sqrt(nc)  # the summary's std_error is sqrt(var / n)
    st = float(treatment["std_error"]) * math.sqrt(nt)
    if sc == 0 and st == 0:
        return None
    result = scipy_stats.ttest_ind_from_stats(
        float(treatment["value"]), st, nt, float(control["value"]), sc, nc, equal_var=True
    )
    p = float(result.pvalue)
    return ("pooled_t", p) if math.isfinite(p) else None


def guardrail_rows(
    quality: Mapping[str, Any] | None, main: Mapping[str, Any] | None, *, alpha: float
) -> list[dict[str, Any]]:
    """One row per (guardrail, treatment): ``status`` is ``worse`` (flagged), ``ok`` or ``cannot_test``.

    ``quality`` is the search-quality analysis (``to_dict``), ``main`` the report's analysis; either may be None.
    Welch decides where it can (the analysis' own comparison); otherwise the fallback test of the module doc.
    The p-values that decide are Holm-adjusted across treatments per guardrail.
    """
    sources = []
    if quality:
        sources.append((quality, [m for m in QUALITY_RATIOS if m != "product_ctr"]))
    if main:
        sources.append((main, ["revenue_per_unit"]))
    rows: list[dict[str, Any]] = []
    for analysis, metrics in sources:
        summaries = {v["key"]: v["metrics"] for v in analysis.get("variants", [])}
        control_key = next((v["key"] for v in analysis.get("variants", []) if v["is_control"]), None)
        for metric in metrics:
            family = [c for c in analysis["comparisons"] if c["metric"] == metric]
            drafts: list[dict[str, Any]] = []
            for c in family:
                row: dict[str, Any] = {
                    "metric": metric,
                    "label": c["label"],
                    "variant": c["variant"],
                    "relative": (c.get("relative") or {}).get("estimate"),
                    "method": c.get("method"),
                    "p_value": c.get("p_value"),
                    "reason": None,
                }
                if c.get("p_value") is None or c.get("verdict") == "untestable":
                    control = (summaries.get(control_key or "") or {}).get(metric)
                    treatment = (summaries.get(c["variant"]) or {}).get(metric)
                    found = _fallback(metric, control, treatment) if control and treatment else None
                    if found is None:
                        row["p_value"] = None
                        row["reason"] = c.get("error") or "no test possible on these data"
                    else:
                        row["method"], row["p_value"] = found
                    if control and treatment and control.get("value") is not None:
                        diff = (treatment.get("value") or 0.0) - control["value"]
                        row["relative"] = diff / control["value"] if control["value"] else None
                        row["difference"] = diff
                if "difference" not in row:
                    row["difference"] = (c.get("absolute") or {}).get("estimate")
                drafts.append(row)
            adjusted = holm_adjust([d["p_value"] for d in drafts])
            for row, p_adj in zip(drafts, adjusted, strict=True):
                row["p_value_adjusted"] = p_adj
                diff = row.pop("difference")
                harmful = diff is not None and (diff > 0 if metric in _LOWER_IS_BETTER else diff < 0)
                if p_adj is None:
                    row["status"] = "cannot_test"
                elif p_adj < alpha and harmful:
                    row["status"] = "worse"
                else:
                    row["status"] = "ok"
                row["verdict"] = row["status"]
                row["flagged"] = row["status"] == "worse"
                rows.append(row)
    return rows

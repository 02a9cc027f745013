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
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.orm import Session

from experiments.stats import AnalysisSettings, MetricSpec, VariantData, analyze_experiment
from experiments.stats.sufficient import empty_like
from experiments.store.served import QUALITY_RATIOS, DeliveryCount, latency_histogram, percentile, quality_sums

GUARDRAIL_METRICS = ("zero_result_rate", "slow_search_share", "revenue_per_unit")


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
    comparisons = [c for c in analysis["comparisons"] if c["metric"] in QUALITY_RATIOS and c["metric"] != "product_ctr"]
    comparisons += [c for c in main_comparisons if c["metric"] == "revenue_per_unit"]
    out["guardrails"] = [
        {
            "metric": c["metric"],
            "label": c["label"],
            "variant": c["variant"],
            "relative": (c.get("relative") or {}).get("estimate"),
            "interval": c.get("interval"),
            "p_value_adjusted": c.get("p_value_adjusted"),
            "verdict": c["verdict"],
            "flagged": c["verdict"] == "worse",
        }
        for c in comparisons
    ]
    return out

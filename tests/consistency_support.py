"""One rule for every view (issue 23): the verdict, the interval and the statistic shown side by side come from
the same analysis. Used by the analysis tests and by the walker over the demo's experiments."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy import stats as scipy_stats

from experiments.stats.frequentist import welch_satterthwaite_df


def excludes_zero(interval: Mapping[str, Any]) -> bool:
    return interval["lower"] > 0 or interval["upper"] < 0


def comparison_problems(c: Mapping[str, Any], alpha: float, higher_is_better: bool = True) -> list[str]:
    """Every contradiction within one comparison row (empty when it tells one story)."""
    where = f"{c['metric']}/{c['variant']}"
    problems: list[str] = []
    verdict, interval, value = c["verdict"], c.get("interval"), c.get("statistic_value")
    if verdict == "untestable":
        if interval is not None:
            problems.append(f"{where}: untestable with an interval")
        return problems
    if value is None:
        problems.append(f"{where}: a verdict ({verdict}) without its statistic")
        return problems
    decisive = value < alpha if c["statistic"] == "p_value" else not alpha <= value <= 1 - alpha
    if decisive != (verdict in ("better", "worse")):
        problems.append(f"{where}: {c['statistic']} {value} but verdict {verdict}")
    if interval is None:
        problems.append(f"{where}: testable ({verdict}) but no interval")
        return problems
    if excludes_zero(interval) != decisive:
        problems.append(f"{where}: interval [{interval['lower']}, {interval['upper']}] vs verdict {verdict}")
    if c["statistic"] == "chance_to_win":
        estimate = (c.get("bayesian") or {}).get("expected")
    else:
        estimate = (c.get("relative") or {}).get("estimate")
    if estimate is not None and not interval["lower"] <= estimate <= interval["upper"]:
        problems.append(f"{where}: estimate {estimate} outside its interval [{interval['lower']}, {interval['upper']}]")
    if verdict in ("better", "worse") and estimate is not None:
        up = estimate > 0
        if (verdict == "better") != (up == higher_is_better):
            problems.append(f"{where}: {verdict} with an estimate of {estimate}")
    if interval["upper"] - interval["lower"] > 50:
        problems.append(f"{where}: an interval {interval} wider than 5,000 points")
    return problems


def analysis_problems(analysis: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    for c in analysis["comparisons"]:
        problems += comparison_problems(c, analysis["alpha"])
    return problems


def log_ratio_test(control: Any, treatment: Any, alpha: float = 0.05) -> tuple[float, float, float]:
    """``(p, lower, upper)`` of the log-ratio Welch test of the relative lift, written out by hand."""
    ma, mb, va, vb = control.mean, treatment.mean, control.variance, treatment.variance
    se = np.sqrt(vb / (treatment.n * mb**2) + va / (control.n * ma**2))
    df = welch_satterthwaite_df(va, control.n, vb, treatment.n)
    center = np.log(mb / ma)
    p = 2 * scipy_stats.t.sf(abs(center) / se, df)
    q = scipy_stats.t.isf(alpha / 2, df)
    return float(p), float(np.expm1(center - q * se)), float(np.expm1(center + q * se))

"""One rule for every view (issue 23): the verdict, the interval and the statistic shown side by side come from
the same analysis. Used by the analysis tests and by the walker over the demo's experiments."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


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
    if c["statistic"] == "p_value":
        decisive = value < alpha
    else:
        decisive = not alpha <= value <= 1 - alpha
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

"""Coverage of the relative-lift interval: which construction the report shows (issue 23 item 12).

    python bench/interval_coverage.py [--runs 4000] [--units 1000] [--seed 23]

Simulates revenue-like per-shopper data (5 % of shoppers buy; order values log-normal, sigma 0.7; treatment
values scaled by 1 + lift, so the true relative lift is exactly ``lift``) at lifts 0, +10 %, +25 %, +50 % and
+100 %, with ``--units`` shoppers per arm, and counts how often each 95 % interval of the relative lift covers the
truth:

- ``test_based``: ``estimate ± |estimate| t(alpha/2) / t(p/2)`` with ``p`` the *absolute* Welch test's p-value (the
  interval the report showed before issue 23);
- ``delta`` (gbstats 0.8.0's ``TwoSidedTTest`` with ``relative=True``): Welch t with the delta-method variance of
  the relative lift; checked against gbstats itself on the first run of every lift;
- ``log_ratio``: the delta method on ``log(mb/ma)``, exponentiated (asymmetric).

Prints JSON, then one summary line. Nominal coverage is 0.95; with 4,000 runs the Monte Carlo standard error of a
coverage near 0.95 is about 0.0034.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from scipy import stats as scipy_stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from experiments.stats.frequentist import lift_and_variance, welch_satterthwaite_df  # noqa: E402

LIFTS = (0.0, 0.10, 0.25, 0.50, 1.00)
ALPHA = 0.05


def _arms(rng: np.random.Generator, runs: int, units: int, lift: float) -> tuple[np.ndarray, np.ndarray]:
    def revenue(scale: float) -> np.ndarray:
        bought = rng.random((runs, units)) < 0.05
        return np.where(bought, rng.lognormal(3.5, 0.7, (runs, units)) * scale, 0.0)

    return revenue(1.0), revenue(1.0 + lift)


def coverage(rng: np.random.Generator, runs: int, units: int, lift: float) -> dict[str, float]:
    a, b = _arms(rng, runs, units, lift)
    ma, mb = a.mean(axis=1), b.mean(axis=1)
    va, vb = a.var(axis=1, ddof=1), b.var(axis=1, ddof=1)
    n = float(units)
    ok = (ma > 0) & (mb > 0) & (va > 0) & (vb > 0)
    df = welch_satterthwaite_df(va, n, vb, n)
    q = scipy_stats.t.isf(ALPHA / 2, df)
    rel, rel_var = lift_and_variance(ma, va, n, mb, vb, n, True)
    diff, diff_var = lift_and_variance(ma, va, n, mb, vb, n, False)
    # delta (gbstats)
    half = q * np.sqrt(rel_var)
    delta = (rel - half <= lift) & (lift <= rel + half)
    # test-based from the absolute test's p-value
    p_abs = 2 * scipy_stats.t.sf(np.abs(diff) / np.sqrt(diff_var), df)
    with np.errstate(divide="ignore", invalid="ignore"):
        half_tb = np.abs(rel) * q / scipy_stats.t.isf(p_abs / 2, df)
    test_based = (rel - half_tb <= lift) & (lift <= rel + half_tb)
    # log ratio
    log_se = np.sqrt(vb / (n * mb**2) + va / (n * ma**2))
    log_rr = np.log(mb / ma)
    lower, upper = np.expm1(log_rr - q * log_se), np.expm1(log_rr + q * log_se)
    log_ratio = (lower <= lift) & (lift <= upper)
    out = {name: float(hits[ok].mean()) for name, hits in
           (("test_based", test_based), ("delta", delta), ("log_ratio", log_ratio))}  # fmt: skip
    out["gbstats_gap"] = _gbstats_gap(a[0], b[0], float(rel[0] - half[0]), float(rel[0] + half[0]))
    return out


def _gbstats_gap(a: np.ndarray, b: np.ndarray, lower: float, upper: float) -> float | None:
    """Largest difference between our ``delta`` bounds and gbstats' relative CI on one run (None: no gbstats)."""
    try:
        from gbstats.frequentist.tests import FrequentistConfig, TwoSidedTTest
        from gbstats.models.statistics import SampleMeanStatistic
    except ImportError:  # pragma: no cover - gbstats is a dev dependency
        return None
    stat_a = SampleMeanStatistic(n=a.size, sum=float(a.sum()), sum_squares=float((a * a).sum()))
    stat_b = SampleMeanStatistic(n=b.size, sum=float(b.sum()), sum_squares=float((b * b).sum()))
    result = TwoSidedTTest(stat_a, stat_b, FrequentistConfig(difference_type="relative")).compute_result()
    return float(max(abs(result.ci[0] - lower), abs(result.ci[1] - upper)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=4000)
    parser.add_argument("--units", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=23)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    table = {f"{lift:+.0%}": coverage(rng, args.runs, args.units, lift) for lift in LIFTS}
    print(json.dumps({"runs": args.runs, "units_per_arm": args.units, "alpha": ALPHA, "coverage": table}, indent=2))
    line = "; ".join(
        f"{lift} test-based {c['test_based']:.3f} delta {c['delta']:.3f} log-ratio {c['log_ratio']:.3f}"
        for lift, c in table.items()
    )
    print(f"95% relative-lift interval coverage over {args.runs} runs x {args.units} shoppers/arm: {line}")


if __name__ == "__main__":
    main()

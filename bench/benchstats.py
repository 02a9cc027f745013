"""Statistics the benchmark scripts share (imported as ``benchstats``: each script runs with ``bench/`` on sys.path)."""

from __future__ import annotations


def percentile(values: list[float], q: float) -> float:
    """Percentile by rounding the fractional rank to the nearest sample, so every benchmark reports alike."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]

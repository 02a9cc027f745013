"""SVG charts for the ops page, in the style of ``charts``: server-side, script-free, no inline styles.

``latency_bars``: p50/p95/p99 per search stage as grouped horizontal bars on one millisecond axis.
``latency_series``: total search latency per minute (p50 and p95 lines) over the ops window.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from typing import Any

from markupsafe import Markup, escape

from webapp.dashboard.charts import _nice_step, _num, x_grid, y_grid

STAGE_LABELS = {"retrieval": "Retrieval (first stage)", "rerank": "Rerank (dispatch + queue)", "total": "Total search"}
PERCENTILE_KEYS = ("p50", "p95", "p99")


def format_ms(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    if value >= 1000:
        return f"{value / 1000:.2f} s"
    return f"{value:.0f} ms" if value >= 100 else f"{value:.1f} ms"


def _ms_label(tick: float) -> str:
    return format_ms(tick) if tick else "0"


def _ms_axis(high: float) -> tuple[float, list[float]]:
    high = max(high, 1.0)
    step = _nice_step(high * 1.08, 5)
    end = math.ceil(high * 1.08 / step) * step
    return end, [i * step for i in range(int(round(end / step)) + 1)]


def latency_bars(
    latency: Mapping[str, Mapping[str, Any]], *, width: int = 640, title: str = "Search latency by stage"
) -> Markup:
    """One group per stage, one bar per percentile; each bar carries its value in ``data-ms`` and a title."""
    label_w, right_pad, top, bottom, bar_h, gap = 170, 70, 48, 28, 12, 16
    stages = [stage for stage in STAGE_LABELS if stage in latency]
    group_h = bar_h * len(PERCENTILE_KEYS) + gap
    height = top + bottom + group_h * max(1, len(stages))
    values = [v for s in stages for k in PERCENTILE_KEYS if (v := latency[s].get(k)) is not None]
    end, ticks = _ms_axis(max(values, default=1.0))
    plot_w = width - label_w - right_pad

    def x(value: float) -> float:
        return label_w + value / end * plot_w

    parts = [
        f'<svg class="chart latency-bars" viewBox="0 0 {width} {height}" width="100%" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f'<text class="chart-title" x="0" y="16">{escape(title)}</text>',
    ]
    for index, key in enumerate(PERCENTILE_KEYS):  # legend
        lx = label_w + index * 78
        parts.append(f'<rect class="bar {key}" x="{lx}" y="26" width="12" height="10" rx="2"/>')
        parts.append(f'<text class="tick" x="{lx + 17}" y="35">{key}</text>')
    parts += x_grid(ticks, x, y_top=top - 4, y_bottom=height - bottom, label_gap=16, label=_ms_label)
    if not values:
        parts.append(
            f'<text class="empty" x="{label_w + plot_w / 2}" y="{top + 20}" text-anchor="middle">'
            "No searches in the window yet.</text>"
        )
    for row, stage in enumerate(stages):
        y0 = top + row * group_h
        parts.append(
            f'<text class="row-label" x="{label_w - 10}" y="{_num(y0 + bar_h * 1.5 + 4)}" text-anchor="end">'
            f"{escape(STAGE_LABELS[stage])}</text>"
        )
        for index, key in enumerate(PERCENTILE_KEYS):
            value = latency[stage].get(key)
            if value is None:
                continue
            by = y0 + index * bar_h
            w = max(1.0, x(value) - label_w)
            parts.append(
                f'<g class="latency {escape(stage)}" data-stage="{escape(stage)}" data-percentile="{key}" '
                f'data-ms="{value:.2f}"><rect class="bar {key}" x="{label_w}" y="{_num(by + 1)}" width="{_num(w)}" '
                f'height="{bar_h - 2}" rx="2"/><title>{escape(STAGE_LABELS[stage])} {key}: '
                f"{escape(format_ms(value))}</title></g>"
            )
            parts.append(
                f'<text class="bar-value" x="{_num(label_w + w + 5)}" y="{_num(by + bar_h - 2)}">'
                f"{escape(format_ms(value))}</text>"
            )
    parts.append("</svg>")
    return Markup("".join(parts))  # nosec B704 - text is escape()d; keys are constants, the rest numbers


def latency_series(
    series: Sequence[Mapping[str, Any]],
    *,
    width: int = 640,
    height: int = 240,
    title: str = "Total search latency per minute",
) -> Markup:
    """p50 and p95 of total latency per minute, with the number of searches in each minute on hover."""
    left, right, top, bottom = 62, 16, 40, 28
    points = [p for p in series if p.get("p50") is not None]
    parts = [
        f'<svg class="chart latency-series" viewBox="0 0 {width} {height}" width="100%" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f'<text class="chart-title" x="0" y="16">{escape(title)}</text>',
    ]
    for index, key in enumerate(("p50", "p95")):
        lx = left + index * 70
        parts.append(f'<line class="line {key}" x1="{lx}" x2="{lx + 16}" y1="30" y2="30"/>')
        parts.append(f'<text class="tick" x="{lx + 21}" y="34">{key}</text>')
    if not points:
        parts.append(
            f'<text class="empty" x="{width / 2}" y="{height / 2}" text-anchor="middle">'
            "No searches in the window yet.</text></svg>"
        )
        return Markup("".join(parts))  # nosec B704 - text is escape()d; keys are constants, the rest numbers
    end, ticks = _ms_axis(max(p["p95"] for p in points))
    first, last = points[0]["minute"], points[-1]["minute"]
    span = max(last - first, 60)
    plot_w, plot_h = width - left - right, height - top - bottom

    def x(minute: float) -> float:
        return left + (minute - first) / span * plot_w if len(points) > 1 else left + plot_w / 2

    def y(value: float) -> float:
        return top + (1 - min(value, end) / end) * plot_h

    parts += y_grid(ticks, y, left=left, right=width - right, label=_ms_label)
    for key in ("p95", "p50"):
        line = " ".join(f"{_num(x(p['minute']))},{_num(y(p[key]))}" for p in points)
        parts.append(f'<polyline class="line {key}" points="{line}"/>')
    for p in points:
        stamp = dt.datetime.fromtimestamp(p["minute"], dt.UTC).strftime("%H:%M")
        tip = (
            f"<title>{stamp} UTC: p50 {escape(format_ms(p['p50']))}, p95 {escape(format_ms(p['p95']))}, "
            f"{p['n']} searches</title>"
        )
        for key in ("p50", "p95"):  # dots too, so a single minute is visible before there is a line
            parts.append(
                f'<circle class="dot {key}" cx="{_num(x(p["minute"]))}" cy="{_num(y(p[key]))}" r="3">{tip}</circle>'
            )
    label_every = max(1, math.ceil(len(points) / 8))
    for index, p in enumerate(points):
        if index % label_every == 0 or index == len(points) - 1:
            stamp = dt.datetime.fromtimestamp(p["minute"], dt.UTC).strftime("%H:%M")
            parts.append(
                f'<text class="tick" x="{_num(x(p["minute"]))}" y="{height - 8}" text-anchor="middle">{stamp}</text>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))  # nosec B704 - text is escape()d; keys are constants, the rest numbers

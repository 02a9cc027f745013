"""Server-side SVG charts: a lift chart with CI whiskers, a cumulative series with a CI band, progress bars.

Dependency-free and script-free (the page works under a strict Content-Security-Policy and without JavaScript),
and testable: each function returns markup whose numbers can be asserted. Every dynamic text is escaped.
Colours and fonts come from classes styled in ``dashboard.css``; no inline ``style`` attributes.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

VERDICT_CLASS = {"better": "good", "worse": "bad", "inconclusive": "flat", "untestable": "na"}


def _num(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".") if math.isfinite(value) else "0"


def format_percent(value: float | None, digits: int = 1, signed: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    text = f"{value * 100:+.{digits}f} %" if signed else f"{value * 100:.{digits}f} %"
    return text.replace("-", "−")


def _nice_step(span: float, target_ticks: int = 5) -> float:
    if span <= 0 or not math.isfinite(span):
        return 0.01
    raw = span / target_ticks
    magnitude: float = 10 ** math.floor(math.log10(raw))  # stays an int for spans >= 1 (not 10.0 **): same labels
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * magnitude:
            return factor * magnitude
    return 10 * magnitude


def _axis(low: float, high: float, include: float = 0.0) -> tuple[float, float, list[float]]:
    low, high = min(low, include), max(high, include)
    if high - low < 1e-9:
        low, high = low - 0.01, high + 0.01
    pad = (high - low) * 0.08
    step = _nice_step(high - low + 2 * pad)
    start = math.floor((low - pad) / step) * step
    end = math.ceil((high + pad) / step) * step
    ticks = [start + i * step for i in range(int(round((end - start) / step)) + 1)]
    return start, end, ticks


@dataclass(frozen=True)
class LiftRow:
    label: str  # e.g. "CTR · bge-m3"
    estimate: float | None
    ci_lower: float | None
    ci_upper: float | None
    verdict: str


def x_grid(
    ticks: Sequence[float],
    x: Callable[[float], float],
    *,
    y_top: float,
    y_bottom: float,
    label_gap: float,
    label: Callable[[float], str],
) -> list[str]:
    """Vertical grid lines with their tick labels under the plot (shared by every chart with a value x axis)."""
    parts: list[str] = []
    for tick in ticks:
        tx = _num(x(tick))
        parts.append(f'<line class="grid" x1="{tx}" x2="{tx}" y1="{y_top}" y2="{y_bottom}"/>')
        parts.append(
            f'<text class="tick" x="{tx}" y="{y_bottom + label_gap}" text-anchor="middle">{escape(label(tick))}</text>'
        )
    return parts


def y_grid(
    ticks: Sequence[float], y: Callable[[float], float], *, left: float, right: float, label: Callable[[float], str]
) -> list[str]:
    """Horizontal grid lines with their tick labels left of the plot (every chart with a value y axis)."""
    parts: list[str] = []
    for tick in ticks:
        ty = y(tick)
        parts.append(f'<line class="grid" x1="{left}" x2="{right}" y1="{_num(ty)}" y2="{_num(ty)}"/>')
        parts.append(
            f'<text class="tick" x="{left - 6}" y="{_num(ty + 4)}" text-anchor="end">{escape(label(tick))}</text>'
        )
    return parts


def lift_chart(rows: Sequence[LiftRow], *, width: int = 640, title: str = "Relative lift vs control") -> Markup:
    """A forest plot: one row per metric and treatment, point = relative lift, whisker = its CI, line at 0."""
    label_w, right_pad, row_h, top, bottom = 190, 24, 34, 30, 34
    height = top + bottom + row_h * max(1, len(rows))
    values = [v for r in rows for v in (r.estimate, r.ci_lower, r.ci_upper) if v is not None and math.isfinite(v)]
    low, high, ticks = _axis(min(values, default=-0.05), max(values, default=0.05))
    plot_w = width - label_w - right_pad

    def x(value: float) -> float:
        return label_w + (value - low) / (high - low) * plot_w

    parts = [
        f'<svg class="chart lift-chart" viewBox="0 0 {width} {height}" width="100%" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f'<text class="chart-title" x="0" y="16">{escape(title)}</text>',
    ]
    parts += x_grid(
        ticks,
        x,
        y_top=top,
        y_bottom=height - bottom,
        label_gap=18,
        label=lambda tick: format_percent(tick, 0 if abs(tick * 100 - round(tick * 100)) < 1e-9 else 1, True),
    )
    zero = x(0.0)
    parts.append(f'<line class="zero" x1="{_num(zero)}" x2="{_num(zero)}" y1="{top - 4}" y2="{height - bottom}"/>')
    for index, row in enumerate(rows):
        cy = top + row_h * index + row_h / 2
        parts.append(
            f'<text class="row-label" x="{label_w - 10}" y="{_num(cy + 4)}" text-anchor="end">'
            f"{escape(row.label)}</text>"
        )
        css = VERDICT_CLASS.get(row.verdict, "na")
        if row.estimate is None or row.ci_lower is None or row.ci_upper is None:
            parts.append(f'<text class="tick" x="{_num(zero + 6)}" y="{_num(cy + 4)}">not testable yet</text>')
            continue
        x1, x2, xe = x(row.ci_lower), x(row.ci_upper), x(row.estimate)
        parts.append(
            f'<g class="lift {css}" data-estimate="{row.estimate:.6g}" data-ci-lower="{row.ci_lower:.6g}" '
            f'data-ci-upper="{row.ci_upper:.6g}">'
            f'<line class="whisker" x1="{_num(x1)}" x2="{_num(x2)}" y1="{_num(cy)}" y2="{_num(cy)}"/>'
            f'<line class="cap" x1="{_num(x1)}" x2="{_num(x1)}" y1="{_num(cy - 6)}" y2="{_num(cy + 6)}"/>'
            f'<line class="cap" x1="{_num(x2)}" x2="{_num(x2)}" y1="{_num(cy - 6)}" y2="{_num(cy + 6)}"/>'
            f'<circle class="point" cx="{_num(xe)}" cy="{_num(cy)}" r="5"/>'
            f"<title>{escape(row.label)}: {escape(format_percent(row.estimate, 2, True))} "
            f"[{escape(format_percent(row.ci_lower, 2, True))}, {escape(format_percent(row.ci_upper, 2, True))}]"
            "</title></g>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # nosec B704 - every interpolated text went through escape()


@dataclass(frozen=True)
class SeriesPoint:
    day: dt.date
    estimate: float | None
    ci_lower: float | None
    ci_upper: float | None


@dataclass(frozen=True)
class _Plotted:
    """A :class:`SeriesPoint` with all three numbers: the only kind the chart draws."""

    day: dt.date
    estimate: float
    ci_lower: float
    ci_upper: float


def series_chart(
    points: Sequence[SeriesPoint],
    *,
    width: int = 640,
    height: int = 260,
    title: str = "Cumulative relative lift",
    baseline: float = 0.0,
    percent_of_baseline: bool = True,
    limits: tuple[float, float] | None = None,
) -> Markup:
    """Cumulative estimate over days (line) inside its confidence band (area), with the no-effect line.

    ``limits`` bounds the axis where values cannot go beyond (a share: 0 to 100 %)."""
    left, right, top, bottom = 56, 16, 28, 30
    usable = [
        _Plotted(p.day, p.estimate, p.ci_lower, p.ci_upper)
        for p in points
        if p.estimate is not None and p.ci_lower is not None and p.ci_upper is not None
    ]
    parts = [
        f'<svg class="chart series-chart" viewBox="0 0 {width} {height}" width="100%" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f'<text class="chart-title" x="0" y="16">{escape(title)}</text>',
    ]
    if not usable:
        parts.append(
            f'<text class="empty" x="{width / 2}" y="{height / 2}" text-anchor="middle">'
            "Not enough data yet: the series starts once both arms can be tested.</text></svg>"
        )
        return Markup("".join(parts))  # nosec B704 - every interpolated text went through escape()
    # The first days' intervals are very wide; scale the axis to the estimates and the latest interval (x3) so
    # the converged part stays readable; wider bands are clipped at the plot edge.
    latest = usable[-1]
    reach = 3 * max(abs(latest.ci_upper - latest.estimate), abs(latest.estimate - latest.ci_lower), 1e-6)
    estimates = [p.estimate for p in usable if math.isfinite(p.estimate)]
    bounds = [
        min(max(v, latest.estimate - reach), latest.estimate + reach)
        for p in usable
        for v in (p.ci_lower, p.ci_upper)
        if v is not None and math.isfinite(v)
    ]
    low, high, ticks = _axis(min(estimates + bounds), max(estimates + bounds), include=baseline)
    if limits is not None:
        low, high = max(low, limits[0]), min(high, limits[1])
        ticks = [tick for tick in ticks if low - 1e-12 <= tick <= high + 1e-12]
    first, last = usable[0].day, usable[-1].day
    span_days = max((last - first).days, 1)
    plot_w, plot_h = width - left - right, height - top - bottom

    def x(day: dt.date) -> float:
        return left + ((day - first).days / span_days) * plot_w if len(usable) > 1 else left + plot_w / 2

    def y(value: float) -> float:
        value = min(max(value, low), high)
        return top + (1 - (value - low) / (high - low)) * plot_h

    def label(value: float) -> str:
        if percent_of_baseline:
            return format_percent(value, 0 if abs(value * 100 - round(value * 100)) < 1e-9 else 1, True)
        return format_percent(value, 0)

    parts += y_grid(ticks, y, left=left, right=width - right, label=label)
    upper = " ".join(f"{_num(x(p.day))},{_num(y(p.ci_upper))}" for p in usable)
    lower = " ".join(f"{_num(x(p.day))},{_num(y(p.ci_lower))}" for p in reversed(usable))
    line = " ".join(f"{_num(x(p.day))},{_num(y(p.estimate))}" for p in usable)
    parts.append(f'<polygon class="band" points="{upper} {lower}"/>')
    by = y(baseline)
    parts.append(f'<line class="zero" x1="{left}" x2="{width - right}" y1="{_num(by)}" y2="{_num(by)}"/>')
    parts.append(f'<polyline class="line" points="{line}"/>')
    for p in usable:
        parts.append(
            f'<circle class="dot" cx="{_num(x(p.day))}" cy="{_num(y(p.estimate))}" r="2.6">'
            f"<title>{p.day.isoformat()}: {escape(label(p.estimate))} "
            f"[{escape(label(p.ci_lower))}, {escape(label(p.ci_upper))}]</title></circle>"
        )
    label_every = max(1, math.ceil(len(usable) / 7))
    for index, p in enumerate(usable):
        is_last = index == len(usable) - 1
        if is_last or (index % label_every == 0 and len(usable) - 1 - index > label_every / 2):
            anchor = "end" if is_last and len(usable) > 1 else "start" if index == 0 else "middle"
            parts.append(
                f'<text class="tick" x="{_num(x(p.day))}" y="{height - 8}" text-anchor="{anchor}">'
                f"{p.day.strftime('%b %d')}</text>"
            )
    parts.append("</svg>")
    return Markup("".join(parts))  # nosec B704 - every interpolated text went through escape()


def progress_bar(fraction: float | None, *, width: int = 260, height: int = 10) -> Markup:
    """A rounded bar filled to ``fraction`` (capped at 100 %); an empty track when unknown."""
    filled = 0.0 if fraction is None or not math.isfinite(fraction) else min(max(fraction, 0.0), 1.0)
    css = "done" if filled >= 1 else "partial"
    return Markup(  # nosec B704 - numbers and escape()d text only
        f'<svg class="progress {css}" viewBox="0 0 {width} {height}" width="100%" height="{height}" '
        f'preserveAspectRatio="none" role="img" aria-label="{escape(format_percent(filled, 0))}" '
        'xmlns="http://www.w3.org/2000/svg">'
        f'<rect class="track" x="0" y="0" width="{width}" height="{height}" rx="{height / 2}"/>'
        f'<rect class="fill" x="0" y="0" width="{_num(width * filled)}" height="{height}" rx="{height / 2}"/></svg>'
    )


def outcome_bar(wins_a: int, ties: int, wins_b: int, *, width: int = 1240, height: int = 34) -> Markup:
    """Interleaving outcomes as one stacked bar: A wins | ties | B wins."""
    total = wins_a + ties + wins_b
    parts = [
        f'<svg class="chart outcome-bar" viewBox="0 0 {width} {height}" width="100%" role="img" '
        f'aria-label="A wins {wins_a}, ties {ties}, B wins {wins_b}" xmlns="http://www.w3.org/2000/svg">'
    ]
    offset = 0.0
    for css, count, name in (("team-a", wins_a, "A wins"), ("tie", ties, "ties"), ("team-b", wins_b, "B wins")):
        w = width * count / total if total else width / 3
        parts.append(
            f'<rect class="{css}" x="{_num(offset)}" y="0" width="{_num(w)}" height="{height}">'
            f"<title>{name}: {count}</title></rect>"
        )
        if w > 90:
            parts.append(
                f'<text class="bar-label" x="{_num(offset + w / 2)}" y="{height / 2 + 4}" text-anchor="middle">'
                f"{name} {count:,}</text>"
            )
        offset += w
    parts.append("</svg>")
    return Markup("".join(parts))  # nosec B704 - every interpolated text went through escape()

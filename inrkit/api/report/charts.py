"""Static SVG line charts for the HTML report (no plotting library: a few hundred bytes of SVG per curve).

A chart maps data ``(x, y)`` into a ``width × height`` box with margins: ``px = left + (x − x0)/(x1 − x0)·w``,
``py = top + (1 − (y − y0)/(y1 − y0))·h``; with ``log_y`` (or ``log_x``) the mapping is applied to ``log10``.
Axis ticks are "nice" numbers (1, 2, 5 × 10^k) covering the data range.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f",
           "#bcbd22", "#393b79", "#ad494a")
MARGIN = {"left": 58, "right": 12, "top": 26, "bottom": 40}


@dataclass
class Series:
    """One curve: points ``(x, y)``, a legend label, and whether it is drawn as markers only (published points)."""

    label: str
    points: list[tuple[float, float]]
    markers_only: bool = False
    dashed: bool = False
    color: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About ``count`` round tick values (steps of 1, 2 or 5 × 10^k) within ``[low, high]``."""
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        return [low]
    raw = (high - low) / max(count, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(low / step) * step
    ticks, value = [], first
    while value <= high + 1e-9 * step:
        ticks.append(round(value, 12))
        value += step
    return ticks


def _label(value: float) -> str:
    if float(value).is_integer() and abs(value) < 1e6:
        return f"{int(value)}"
    if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
        return f"{value:.1e}"
    return f"{value:.3g}"


def _axis_range(values: list[float], margin: float) -> tuple[float, float]:
    """``(low, high)`` of an axis over ``values``, widened by ``margin`` of the span on each side.

    A single value ``v`` gets ``v ± 5 %`` (``± 0.5`` at 0), so its ticks stay distinct once rounded for display.
    """
    low, high = min(values), max(values)
    if high == low:
        half = 0.05 * abs(low) or 0.5
        return low - half, high + half
    pad = margin * (high - low)
    return low - pad, high + pad


def line_chart(series: list[Series], title: str, x_label: str, y_label: str, *, width: int = 400, height: int = 260,
               log_x: bool = False, log_y: bool = False) -> str:
    """An SVG ``<svg>`` element with axes, ticks, one polyline (or marker set) per series and, right of the plot
    (``width`` wide), a legend.

    Points whose coordinates are not finite (or not positive on a log axis) are left out.
    """
    def keep(x: float, y: float) -> bool:
        return (math.isfinite(x) and math.isfinite(y) and (not log_x or x > 0) and (not log_y or y > 0))

    def fx(x: float) -> float:
        return math.log10(x) if log_x else x

    def fy(y: float) -> float:
        return math.log10(y) if log_y else y

    drawn = [(s, [(fx(x), fy(y)) for x, y in s.points if keep(x, y)]) for s in series]
    values = [p for _, points in drawn for p in points]
    legend = min(130, 22 + 6 * max((len(s.label) for s in series), default=0))  # the legend sits right of the plot
    width += legend
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
             f'<text x="{width / 2}" y="16" text-anchor="middle" class="chart-title">{escape(title)}</text>']
    if not values:
        parts.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle">no data</text></svg>')
        return "".join(parts)
    x0, x1 = _axis_range([p[0] for p in values], margin=0.0)
    y0, y1 = _axis_range([p[1] for p in values], margin=0.05)
    left, top = MARGIN["left"], MARGIN["top"]
    w, h = width - left - MARGIN["right"] - legend, height - top - MARGIN["bottom"]

    def px(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * w

    def py(y: float) -> float:
        return top + (1 - (y - y0) / (y1 - y0)) * h

    parts.append(f'<rect x="{left}" y="{top}" width="{w}" height="{h}" class="plot-area"/>')
    for tick in nice_ticks(x0, x1):
        shown = 10 ** tick if log_x else tick
        parts.append(f'<line x1="{px(tick):.1f}" y1="{top}" x2="{px(tick):.1f}" y2="{top + h}" class="grid"/>'
                     f'<text x="{px(tick):.1f}" y="{top + h + 14}" text-anchor="middle">{_label(shown)}</text>')
    for tick in nice_ticks(y0, y1):
        shown = 10 ** tick if log_y else tick
        parts.append(f'<line x1="{left}" y1="{py(tick):.1f}" x2="{left + w}" y2="{py(tick):.1f}" class="grid"/>'
                     f'<text x="{left - 4}" y="{py(tick) + 4:.1f}" text-anchor="end">{_label(shown)}</text>')
    parts.append(f'<text x="{left + w / 2}" y="{height - 6}" text-anchor="middle">{escape(x_label)}</text>'
                 f'<text x="12" y="{top + h / 2}" text-anchor="middle" transform="rotate(-90 12 {top + h / 2})">'
                 f'{escape(y_label)}</text>')
    for index, (s, points) in enumerate(drawn):
        color = s.color or PALETTE[index % len(PALETTE)]
        if not points:
            continue
        if not s.markers_only and len(points) > 1:
            path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in points)
            dash = ' stroke-dasharray="5 3"' if s.dashed else ""
            parts.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="1.6"{dash}>'
                         f'<title>{escape(s.label)}</title></polyline>')
        if s.markers_only or len(points) <= 24:
            radius = 3.5 if s.markers_only else 2.2
            parts += [f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="{radius}" fill="{color}"><title>{escape(s.label)}'
                      f'</title></circle>' for x, y in points]
        lx, ly = left + w + 10, top + 8 + index * 13
        parts.append(f'<rect x="{lx}" y="{ly - 7}" width="10" height="3" fill="{color}"/>'
                     f'<text x="{lx + 14}" y="{ly}" class="legend">{escape(s.label)}</text>')
    parts.append("</svg>")
    return "".join(parts)

"""SVG charts: the one chart module, for the operator dashboard and the simulator's reports.

No JavaScript, no external files. Each function returns an ``<svg>`` element as
:class:`~markupsafe.Markup` (safe to place in a Jinja2 template; :func:`svg_file`
makes it a standalone ``.svg`` document), sized by a ``viewBox`` so it scales with
the page. Values are escaped; a ``<title>`` on every mark gives a hover tooltip with
the exact number.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape
from typing import Protocol

from markupsafe import Markup

from integrations.percentile import percentile

PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563")
OUTCOME_COLOURS = {
    "resolved": "#16a34a",
    "escalated": "#d97706",
    "abandoned": "#6b7280",
    "failed": "#dc2626",
}
_FONT = 'font-family="system-ui, sans-serif" font-size="11"'


def _nice_max(value: float) -> float:
    """A round axis maximum at or above ``value``."""
    if value <= 0:
        return 1.0
    exponent = math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        top = step * 10**exponent
        if top >= value:
            return float(top)
    return float(10 ** (exponent + 1))


def _fmt(value: float) -> str:
    if abs(value) >= 100 or value == int(value):
        return f"{value:,.0f}"
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def _y_axis(top: float, x0: float, y0: float, height: float, width: float, unit: str) -> str:
    parts = []
    for i in range(5):
        value = top * i / 4
        y = y0 + height - height * i / 4
        parts.append(
            f'<line x1="{x0}" y1="{y:.1f}" x2="{x0 + width}" y2="{y:.1f}" stroke="#e5e7eb"/>'
            f'<text x="{x0 - 4}" y="{y + 4:.1f}" text-anchor="end" {_FONT} fill="#6b7280">'
            f"{escape(_fmt(value))}{escape(unit)}</text>"
        )
    return "".join(parts)


def _x_labels(labels: Sequence[str], x0: float, step: float, y: float) -> str:
    if not labels:
        return ""
    every = max(1, math.ceil(len(labels) / 10))
    parts = []
    for i, label in enumerate(labels):
        if i % every and i != len(labels) - 1:
            continue
        x = x0 + step * (i + 0.5)
        parts.append(
            f'<text x="{x:.1f}" y="{y}" text-anchor="middle" {_FONT} fill="#6b7280">'
            f"{escape(label)}</text>"
        )
    return "".join(parts)


def _legend(names: Sequence[str], colours: Sequence[str], x: float, y: float) -> str:
    parts = []
    for name, colour in zip(names, colours, strict=False):
        parts.append(
            f'<rect x="{x:.1f}" y="{y - 9}" width="10" height="10" fill="{colour}"/>'
            f'<text x="{x + 14:.1f}" y="{y}" {_FONT} fill="#374151">{escape(name)}</text>'
        )
        x += 22 + 7 * len(name)
    return "".join(parts)


def _svg(width: int, height: int, body: str, label: str) -> Markup:
    return Markup(
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(label)}" preserveAspectRatio="xMidYMid meet">'
        f"<title>{escape(label)}</title>{body}</svg>"
    )


def svg_file(chart: str) -> str:
    """A chart as a standalone ``.svg`` document (inline SVG in HTML needs no namespace)."""
    text = str.__str__(chart)  # plain text: Markup's operators would escape what they join
    namespaced = text.replace("<svg ", '<svg xmlns="http://www.w3.org/2000/svg" ', 1)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + namespaced


def empty_chart(label: str, width: int = 640, height: int = 120) -> Markup:
    """A placeholder saying there is nothing to plot."""
    body = (
        f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" {_FONT} '
        f'fill="#9ca3af">No data in this window</text>'
    )
    return _svg(width, height, body, label)


def stacked_bars(
    labels: Sequence[str],
    series: dict[str, Sequence[float]],
    *,
    label: str,
    colours: dict[str, str] | None = None,
    unit: str = "",
    width: int = 640,
    height: int = 220,
) -> Markup:
    """Vertical bars, one per label, each stacked from the series (e.g. outcomes per day)."""
    if not labels or not any(any(v for v in values) for values in series.values()):
        return empty_chart(label, width)
    names = list(series)
    colour_of = {n: (colours or {}).get(n, PALETTE[i % len(PALETTE)]) for i, n in enumerate(names)}
    x0, y0, plot_w, plot_h = 48.0, 22.0, width - 58.0, height - 50.0
    totals = [sum(series[n][i] or 0 for n in names) for i in range(len(labels))]
    top = _nice_max(max(totals))
    step = plot_w / len(labels)
    bar_w = max(step * 0.75, 1.0)
    parts = [_y_axis(top, x0, y0, plot_h, plot_w, unit)]
    for i, day in enumerate(labels):
        y = y0 + plot_h
        x = x0 + step * i + (step - bar_w) / 2
        for name in names:
            value = series[name][i] or 0
            if not value:
                continue
            h = plot_h * value / top
            y -= h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                f'fill="{colour_of[name]}"><title>{escape(day)} {escape(name)}: '
                f"{escape(_fmt(value))}</title></rect>"
            )
    parts.append(_x_labels(labels, x0, step, height - 12))
    parts.append(_legend(names, [colour_of[n] for n in names], x0, 12))
    return _svg(width, height, "".join(parts), label)


def line_chart(
    labels: Sequence[str],
    series: dict[str, Sequence[float | None]],
    *,
    label: str,
    unit: str = "",
    top: float | None = None,
    colours: dict[str, str] | None = None,
    width: int = 640,
    height: int = 200,
    heading: str = "",
    x_label: str = "",
    limit: float | None = None,
) -> Markup:
    """Lines over labelled points (None leaves a gap), with a dot per point.

    Args:
        labels: The x-axis labels, one per point.
        series: Each line's values, one per label.
        label: The accessible name (and tooltip) of the chart.
        unit: Appended to the y-axis numbers and tooltips.
        top: The y-axis maximum (default: a round number above the largest value).
        colours: Colour per series name (default: the palette in order).
        width: The ``viewBox`` width.
        height: The ``viewBox`` height.
        heading: A title printed above the plot (for a chart saved as its own file).
        x_label: A caption under the x-axis labels.
        limit: A value to mark with a dashed red line (e.g. a latency budget).
    """
    values = [v for s in series.values() for v in s if v is not None]
    if not labels or not values:
        return empty_chart(label, width)
    names = list(series)
    colour_of = {n: (colours or {}).get(n, PALETTE[i % len(PALETTE)]) for i, n in enumerate(names)}
    lift = 18 if heading else 0
    drop = 14 if x_label else 0
    x0, y0, plot_w, plot_h = 52.0, 22.0 + lift, width - 62.0, height - 50.0 - lift - drop
    if top is None:
        top = _nice_max(max([*values, limit or 0.0]))
    step = plot_w / len(labels)
    parts = [_y_axis(top, x0, y0, plot_h, plot_w, unit)]
    if heading:
        parts.append(
            f'<text x="{x0}" y="14" {_FONT} font-weight="600" fill="#111827">'
            f"{escape(heading)}</text>"
        )
    if limit is not None:
        y = y0 + plot_h - plot_h * min(limit, top) / top
        parts.append(
            f'<line x1="{x0}" y1="{y:.1f}" x2="{x0 + plot_w}" y2="{y:.1f}" stroke="#dc2626" '
            f'stroke-dasharray="5 4"/><text x="{x0 + plot_w - 4}" y="{y - 4:.1f}" '
            f'text-anchor="end" {_FONT} fill="#dc2626">{escape(_fmt(limit))}{escape(unit)}</text>'
        )
    for name in names:
        points: list[list[tuple[float, float, float, str]]] = [[]]
        for i, value in enumerate(series[name]):
            if value is None:
                points.append([])
                continue
            x = x0 + step * (i + 0.5)
            y = y0 + plot_h - plot_h * min(value, top) / top
            points[-1].append((x, y, value, labels[i]))
        for run in points:
            if len(run) > 1:
                path = " ".join(f"{x:.1f},{y:.1f}" for x, y, _, _ in run)
                parts.append(
                    f'<polyline points="{path}" fill="none" stroke="{colour_of[name]}" '
                    'stroke-width="1.8"/>'
                )
            for x, y, value, day in run:
                parts.append(
                    f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.4" fill="{colour_of[name]}">'
                    f"<title>{escape(day)} {escape(name)}: {escape(_fmt(value))}{escape(unit)}"
                    "</title></circle>"
                )
    parts.append(_x_labels(labels, x0, step, height - 12 - drop))
    if x_label:
        parts.append(
            f'<text x="{x0 + plot_w / 2:.1f}" y="{height - 6}" text-anchor="middle" {_FONT} '
            f'fill="#374151">{escape(x_label)}</text>'
        )
    parts.append(_legend(names, [colour_of[n] for n in names], x0, 12 + lift))
    return _svg(width, height, "".join(parts), label)


def horizontal_bars(
    items: Sequence[tuple[str, float]],
    *,
    label: str,
    colour: str = PALETTE[0],
    width: int = 640,
    bar_height: int = 18,
) -> Markup:
    """One horizontal bar per item (e.g. intents or escalation reasons), largest first."""
    if not items:
        return empty_chart(label, width)
    label_w = min(220.0, 12 + 6.6 * max(len(name) for name, _ in items))
    x0, plot_w = label_w, width - label_w - 60
    height = 10 + len(items) * (bar_height + 6)
    top = max(v for _, v in items) or 1
    parts = []
    for i, (name, value) in enumerate(items):
        y = 6 + i * (bar_height + 6)
        w = max(plot_w * value / top, 1.0)
        parts.append(
            f'<text x="{x0 - 6:.1f}" y="{y + bar_height - 5}" text-anchor="end" {_FONT} '
            f'fill="#374151">{escape(name[:34])}</text>'
            f'<rect x="{x0:.1f}" y="{y}" width="{w:.1f}" height="{bar_height}" fill="{colour}">'
            f"<title>{escape(name)}: {escape(_fmt(value))}</title></rect>"
            f'<text x="{x0 + w + 4:.1f}" y="{y + bar_height - 5}" {_FONT} fill="#374151">'
            f"{escape(_fmt(value))}</text>"
        )
    return _svg(width, height, "".join(parts), label)


def stage_bar(stages: dict[str, float | None], *, width: int = 240, height: int = 14) -> Markup:
    """One turn's latency as a single bar split by stage (for call pages)."""
    known = [(i, name, v) for i, (name, v) in enumerate(stages.items()) if v and v > 0]
    total = sum(v for _, _, v in known)
    if not total:
        return Markup("")
    x = 0.0
    parts = []
    for i, name, value in known:
        w = width * value / total
        parts.append(
            f'<rect x="{x:.1f}" y="0" width="{w:.1f}" height="{height}" '
            f'fill="{PALETTE[i % len(PALETTE)]}"><title>{escape(name)}: '
            f"{escape(_fmt(value))} ms</title></rect>"
        )
        x += w
    return _svg(width, height, "".join(parts), "latency by stage")


def histogram(
    values: Sequence[float],
    *,
    label: str,
    unit: str = "ms",
    bins: int = 20,
    width: int = 640,
    height: int = 220,
) -> Markup:
    """A histogram with p50 and p95 marked, titled ``label (n=...)``."""
    if not values:
        return empty_chart(label, width)
    lo, hi = 0.0, max(values)
    step = _nice_max(hi / bins) if hi > 0 else 1.0
    n = max(1, math.ceil(hi / step + 1e-9))
    counts = [0] * n
    for v in values:
        counts[min(n - 1, int(v // step))] += 1
    top = max(counts)
    left, bottom, right, header = 40, 30, 10, 24
    plot_w, plot_h = width - left - right, height - bottom - header
    bar_w = plot_w / n
    parts = [
        f'<text x="{left}" y="14" {_FONT} font-weight="600" fill="#111827">'
        f"{escape(label)} (n={len(values)})</text>"
    ]
    for i, count in enumerate(counts):
        h = plot_h * count / top
        x = left + i * bar_w
        y = header + plot_h - h
        bar = f"{lo + i * step:.0f}-{lo + (i + 1) * step:.0f} {unit}: {count}"
        parts.append(
            f'<rect x="{x + 1:.1f}" y="{y:.1f}" width="{max(bar_w - 2, 1):.1f}" '
            f'height="{h:.1f}" fill="{PALETTE[0]}"><title>{escape(bar)}</title></rect>'
        )
    every = max(1, math.ceil(n / 8))
    for i in range(0, n + 1, every):
        x = left + i * bar_w
        parts.append(
            f'<text x="{x:.1f}" y="{height - 12}" text-anchor="middle" {_FONT} fill="#6b7280">'
            f"{lo + i * step:.0f}</text>"
        )
    parts.append(
        f'<text x="{width - right}" y="{height - 1}" text-anchor="end" {_FONT} fill="#6b7280">'
        f"{escape(unit)}</text>"
    )
    for q, colour in ((50, "#16a34a"), (95, "#dc2626")):
        v = percentile(values, q)
        x = left + plot_w * v / (n * step)
        parts.append(
            f'<line x1="{x:.1f}" y1="{header}" x2="{x:.1f}" y2="{header + plot_h}" '
            f'stroke="{colour}" stroke-dasharray="4 3"/>'
            f'<text x="{x + 3:.1f}" y="{header + 10}" {_FONT} fill="{colour}">p{q} {v:.0f}</text>'
        )
    parts.append(
        f'<line x1="{left}" y1="{header + plot_h}" x2="{width - right}" '
        f'y2="{header + plot_h}" stroke="#9ca3af"/>'
        f'<text x="{left - 4}" y="{header + 8}" text-anchor="end" {_FONT} fill="#6b7280">'
        f"{top}</text>"
    )
    return _svg(width, height, "".join(parts), label)


class ReliabilityBin(Protocol):
    """What :func:`reliability_diagram` reads of a confidence bin."""

    @property
    def low(self) -> float:
        """The bin's lowest confidence."""
        ...

    @property
    def high(self) -> float:
        """The bin's upper bound (exclusive)."""
        ...

    @property
    def count(self) -> int:
        """Predictions in the bin."""
        ...

    @property
    def accuracy(self) -> float:
        """Share of the bin's predictions that were right."""
        ...


def reliability_diagram(
    bins: Sequence[ReliabilityBin],
    *,
    label: str,
    act: float | None = None,
    clarify: float | None = None,
    size: int = 480,
) -> Markup:
    """Confidence against accuracy: a bar per bin, the diagonal, the thresholds.

    Args:
        bins: The confidence bins (empty ones are skipped).
        label: Printed above the plot.
        act: The act threshold to mark (green), if any.
        clarify: The clarify threshold to mark (orange), if any.
        size: The ``viewBox`` width and height.
    """
    margin = 56
    side = size - 2 * margin

    def xy(x: float, y: float) -> tuple[float, float]:
        return margin + x * side, size - margin - y * side

    parts = [
        f'<rect width="{size}" height="{size}" fill="white"/>'
        f'<rect x="{margin}" y="{margin}" width="{side}" height="{side}" fill="none" '
        'stroke="#111827"/>'
    ]
    for tick in range(0, 11, 2):
        v = tick / 10
        x, y = xy(v, v)
        parts.append(
            f'<text x="{x:.1f}" y="{size - margin + 16}" text-anchor="middle" {_FONT}>'
            f"{v:.1f}</text>"
            f'<text x="{margin - 6}" y="{y + 4:.1f}" text-anchor="end" {_FONT}>{v:.1f}</text>'
        )
    total = sum(b.count for b in bins) or 1
    for b in bins:
        if b.count == 0:
            continue
        (x1, y1), (x2, y2) = xy(b.low + 0.005, b.accuracy), xy(b.high - 0.005, 0)
        share = f"{100 * b.count / total:.0f}%"
        parts.append(
            f'<rect x="{x1:.1f}" y="{y1:.1f}" width="{x2 - x1:.1f}" height="{y2 - y1:.1f}" '
            f'fill="#5a82c8" stroke="#28468c"><title>{b.low:.2f}-{b.high:.2f}: accuracy '
            f"{b.accuracy:.2f}, {share} of items</title></rect>"
            f'<text x="{x1 + 4:.1f}" y="{y1 - 4:.1f}" {_FONT}>{share}</text>'
        )
    (x1, y1), (x2, y2) = xy(0, 0), xy(1, 1)
    parts.append(
        f'<line x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}" stroke="#c83c3c" stroke-width="2"/>'
    )
    for value, colour in ((act, "#1e963c"), (clarify, "#e68c14")):
        if value is not None:
            (x1, y1), (x2, y2) = xy(value, 0), xy(value, 1)
            parts.append(
                f'<line x1="{x1:.1f}" y1="{y1}" x2="{x2:.1f}" y2="{y2}" stroke="{colour}" '
                'stroke-width="2"/>'
            )
    legend = (
        ("bars: accuracy per bin (share of items)", "#111827"),
        ("red: perfect calibration", "#c83c3c"),
        ("green: act threshold", "#1e963c"),
        ("orange: clarify threshold", "#e68c14"),
    )
    for i, (text, colour) in enumerate(legend):
        parts.append(
            f'<text x="{margin + 4}" y="{margin + 14 + 14 * i}" {_FONT} fill="{colour}">'
            f"{text}</text>"
        )
    parts.append(
        f'<text x="{margin}" y="24" {_FONT} font-weight="600">{escape(label)}</text>'
        f'<text x="{size / 2}" y="{size - 16}" text-anchor="middle" {_FONT}>'
        "confidence (top intent)</text>"
    )
    return _svg(size, size, "".join(parts), label)

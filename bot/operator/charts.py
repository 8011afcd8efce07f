"""Inline SVG charts for the operator dashboard: no JavaScript, no external files.

Each function returns an ``<svg>`` element as a string, sized by a ``viewBox`` so
it scales with the page. Values are escaped; a ``<title>`` on every mark gives a
hover tooltip with the exact number.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

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


def _svg(width: int, height: int, body: str, label: str) -> str:
    return (
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(label)}" preserveAspectRatio="xMidYMid meet">'
        f"<title>{escape(label)}</title>{body}</svg>"
    )


def empty_chart(label: str, width: int = 640, height: int = 120) -> str:
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
) -> str:
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
) -> str:
    """Lines over labelled points (None leaves a gap), with a dot per point."""
    values = [v for s in series.values() for v in s if v is not None]
    if not labels or not values:
        return empty_chart(label, width)
    names = list(series)
    colour_of = {n: (colours or {}).get(n, PALETTE[i % len(PALETTE)]) for i, n in enumerate(names)}
    x0, y0, plot_w, plot_h = 52.0, 22.0, width - 62.0, height - 50.0
    top = top if top is not None else _nice_max(max(values))
    step = plot_w / len(labels)
    parts = [_y_axis(top, x0, y0, plot_h, plot_w, unit)]
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
    parts.append(_x_labels(labels, x0, step, height - 12))
    parts.append(_legend(names, [colour_of[n] for n in names], x0, 12))
    return _svg(width, height, "".join(parts), label)


def horizontal_bars(
    items: Sequence[tuple[str, float]],
    *,
    label: str,
    colour: str = PALETTE[0],
    width: int = 640,
    bar_height: int = 18,
) -> str:
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


def stage_bar(stages: dict[str, float | None], *, width: int = 240, height: int = 14) -> str:
    """One turn's latency as a single bar split by stage (for call pages)."""
    known = [(i, name, v) for i, (name, v) in enumerate(stages.items()) if v and v > 0]
    total = sum(v for _, _, v in known)
    if not total:
        return ""
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

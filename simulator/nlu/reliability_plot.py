"""Writes a reliability diagram (confidence against accuracy) as an SVG file."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from bot.operator import charts
from simulator.nlu.calibration import ReliabilityBin


def write_reliability_svg(
    bins: Sequence[ReliabilityBin],
    path: Path,
    *,
    title: str = "Reliability",
    act: float | None = None,
    clarify: float | None = None,
) -> Path:
    """Write the diagram: bars of accuracy per confidence bin, the diagonal, thresholds.

    Args:
        bins: The reliability bins.
        path: Where to write the SVG.
        title: Printed above the plot.
        act: The act threshold to mark (green), if any.
        clarify: The clarify threshold to mark (orange), if any.
    """
    chart = charts.reliability_diagram(bins, label=title, act=act, clarify=clarify)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(charts.svg_file(chart), encoding="utf-8")
    return path

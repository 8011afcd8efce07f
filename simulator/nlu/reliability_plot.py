"""Draws a reliability diagram (confidence against accuracy) as a PNG with Pillow."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw

from simulator.nlu.calibration import ReliabilityBin

SIZE = 480
MARGIN = 56


def write_reliability_png(
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
        path: Where to write the PNG.
        title: Printed above the plot.
        act: The act threshold to mark (green), if any.
        clarify: The clarify threshold to mark (orange), if any.
    """
    image = Image.new("RGB", (SIZE, SIZE), "white")
    draw = ImageDraw.Draw(image)
    side = SIZE - 2 * MARGIN

    def xy(x: float, y: float) -> tuple[float, float]:
        return MARGIN + x * side, SIZE - MARGIN - y * side

    draw.rectangle([xy(0, 1), xy(1, 0)], outline="black")
    for tick in range(0, 11, 2):
        v = tick / 10
        draw.text((xy(v, 0)[0] - 8, SIZE - MARGIN + 6), f"{v:.1f}", fill="black")
        draw.text((8, xy(0, v)[1] - 6), f"{v:.1f}", fill="black")
    total = sum(b.count for b in bins) or 1
    for b in bins:
        if b.count == 0:
            continue
        draw.rectangle(
            [xy(b.low + 0.005, b.accuracy), xy(b.high - 0.005, 0)],
            fill=(90, 130, 200),
            outline=(40, 70, 140),
        )
        share = f"{100 * b.count / total:.0f}%"
        draw.text((xy(b.low, 0)[0] + 4, xy(0, b.accuracy)[1] - 14), share, fill="black")
    draw.line([xy(0, 0), xy(1, 1)], fill=(200, 60, 60), width=2)
    for value, colour in ((act, (30, 150, 60)), (clarify, (230, 140, 20))):
        if value is not None:
            draw.line([xy(value, 0), xy(value, 1)], fill=colour, width=2)
    draw.text((MARGIN, 16), title, fill="black")
    draw.text((SIZE // 2 - 60, SIZE - 24), "confidence (top intent)", fill="black")
    draw.text((MARGIN + 4, MARGIN + 4), "bars: accuracy per bin (share of items)", fill="black")
    draw.text((MARGIN + 4, MARGIN + 18), "red: perfect calibration", fill=(200, 60, 60))
    draw.text((MARGIN + 4, MARGIN + 32), "green: act threshold", fill=(30, 150, 60))
    draw.text((MARGIN + 4, MARGIN + 46), "orange: clarify threshold", fill=(230, 140, 20))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG")
    return path

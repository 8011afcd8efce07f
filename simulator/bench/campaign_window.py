"""What both campaign benches share: the calling window, the two time zones, the peak in flight."""

from __future__ import annotations

from datetime import datetime

from integrations.outbound.store import Attempt

WINDOWS = {"mon-sun": ["08:00-20:00"]}
OPEN_HOUR, CLOSED_HOUR = 13, 1
"""Local hours (now) of the contacts' two zones: inside the window, and outside it."""


def zone_at(local_hour: int, now: datetime) -> str:
    """A fixed-offset zone whose local hour is ``local_hour`` at ``now`` (aware UTC)."""
    offset = (local_hour - now.hour + 12) % 24 - 12  # -12..+11
    if offset == 0:
        return "UTC"
    return f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}"  # POSIX signs are reversed


def most_in_flight(attempts: list[Attempt]) -> int:
    """The most attempts claimed and not yet ended at one moment."""
    edges: list[tuple[datetime, int]] = []
    for a in attempts:
        if a.created_at is not None and a.ended_at is not None:
            edges += [(a.created_at, 1), (a.ended_at, -1)]
    level = peak = 0
    for _when, step in sorted(edges, key=lambda e: (e[0], e[1])):
        level += step
        peak = max(peak, level)
    return peak

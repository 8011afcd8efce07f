"""Cached per-day aggregates of past days (see :mod:`integrations.storage.stats`).

A whole day in the past no longer changes, so its partial is kept here, invalidated by
the writer when a late record touches that day and expiring after an hour in any case.
The cache is per process on purpose: another process's late write is seen at the latest
when the entry expires.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import Any

CACHE_TTL_SECS = 3600.0
CACHE_MAX_ENTRIES = 20_000

DayPartial = dict[str, Any]
"""One day's mergeable aggregates (see :func:`integrations.storage.stats._empty_partial`)."""


class StatsCache:
    """Aggregates of whole past days, by filter and day (thread-safe, bounded, expiring)."""

    def __init__(self, ttl_secs: float = CACHE_TTL_SECS, max_entries: int = CACHE_MAX_ENTRIES):
        """Keep entries for ``ttl_secs``; at most ``max_entries`` (oldest dropped first)."""
        self._ttl = ttl_secs
        self._max = max_entries
        self._entries: dict[tuple[str, str], tuple[float, DayPartial]] = {}
        self._lock = threading.Lock()

    def get(self, key: str, day: str) -> DayPartial | None:
        """A cached day, if fresh."""
        with self._lock:
            entry = self._entries.get((key, day))
        if entry is None or time.monotonic() - entry[0] > self._ttl:
            return None
        return entry[1]

    def put(self, key: str, day: str, partial: DayPartial) -> None:
        """Cache a whole past day."""
        with self._lock:
            if len(self._entries) >= self._max:
                for old in sorted(self._entries, key=lambda k: self._entries[k][0])[
                    : self._max // 10
                ]:
                    del self._entries[old]
            self._entries[(key, day)] = (time.monotonic(), partial)

    def invalidate(self, days: Iterable[str]) -> None:
        """Forget the given days (every filter)."""
        days = set(days)
        if not days:
            return
        with self._lock:
            for k in [k for k in self._entries if k[1] in days]:
                del self._entries[k]

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._entries.clear()

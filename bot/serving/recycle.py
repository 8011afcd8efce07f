"""When a worker process should be replaced: after N calls, or past M MB of memory.

``CALLAGENT_RECYCLE_AFTER_CALLS`` / ``CALLAGENT_RECYCLE_AFTER_MB`` (0 = off). A worker
checks once a second (:class:`bot.serving.server.DrainingServer`); past a limit it asks the
supervisor for a replacement once, and keeps taking calls until the replacement has loaded
its models and accepts; then the supervisor tells it to retire (drain and exit).
"""

from __future__ import annotations

import os
import resource
import sys
from collections.abc import Callable
from dataclasses import dataclass


def resident_mb() -> float:
    """This process's resident memory now, in MB (peak resident where /proc is missing)."""
    try:
        with open("/proc/self/statm") as statm:
            pages = int(statm.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 1e6
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB (bytes on macOS)
        return peak / 1e6 if sys.platform == "darwin" else peak * 1024 / 1e6


@dataclass(frozen=True)
class RecyclePolicy:
    """The limits past which a worker asks to be replaced (0 = that limit is off).

    Parameters:
        after_calls: Calls taken (started) by the process.
        after_mb: Resident memory in MB.
    """

    after_calls: int = 0
    after_mb: int = 0

    @property
    def enabled(self) -> bool:
        """Whether any limit is set."""
        return self.after_calls > 0 or self.after_mb > 0

    def reason(self, calls_started: int, memory_mb: Callable[[], float] = resident_mb) -> str:
        """Why the process should be replaced now ('' = it should not)."""
        if self.after_calls > 0 and calls_started >= self.after_calls:
            return f"took {calls_started} calls (CALLAGENT_RECYCLE_AFTER_CALLS={self.after_calls})"
        if self.after_mb > 0:
            mb = memory_mb()
            if mb >= self.after_mb:
                return f"uses {mb:.0f} MB (CALLAGENT_RECYCLE_AFTER_MB={self.after_mb})"
        return ""

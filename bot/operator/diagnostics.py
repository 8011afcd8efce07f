"""Process diagnostics for operators and benchmarks: memory, descriptors, tasks, CPU.

``GET /api/diagnostics`` (operator token) returns :func:`process_stats` plus the live
call count and the call admission figures; ``callagent bench soak`` reads it between calls
to spot leaks.
"""

from __future__ import annotations

import asyncio
import gc
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends

from bot.operator.auth import OperatorAuth


def rss_bytes(pid: int | str = "self") -> int:
    """Resident memory of a process (Linux ``/proc``; 0 where unavailable)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def open_fds(pid: int | str = "self") -> int:
    """Open file descriptors of a process (-1 where unavailable)."""
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def cpu_seconds(pid: int | str = "self") -> float:
    """User + system CPU time of a process so far (its threads included)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        if pid == "self":
            t = os.times()
            return t.user + t.system
        return 0.0


def process_stats() -> dict[str, Any]:
    """This process's memory, descriptors, threads, asyncio tasks and CPU time."""
    try:
        tasks = len(asyncio.all_tasks())
    except RuntimeError:
        tasks = -1
    return {
        "pid": os.getpid(),
        "rss_bytes": rss_bytes(),
        "open_fds": open_fds(),
        "threads": threading.active_count(),
        "asyncio_tasks": tasks,
        "cpu_seconds": round(cpu_seconds(), 3),
    }


def create_diagnostics_router(
    active_calls: Callable[[], int],
    auth: OperatorAuth,
    *,
    admission: Callable[[], dict[str, Any]] | None = None,
) -> APIRouter:
    """``GET /api/diagnostics`` (operator token).

    ``admission`` adds the call cap's figures (slots in use, refusals by route and reason)
    under ``"admission"``.
    """
    router = APIRouter(dependencies=[Depends(auth.require)])

    @router.get("/api/diagnostics")
    async def diagnostics(collect: bool = False) -> dict[str, Any]:
        """Process stats; ``collect=true`` runs the garbage collector first (and counts objects)."""
        extra: dict[str, Any] = {}
        if collect:
            gc.collect()
            extra["gc_objects"] = len(gc.get_objects())
        if admission is not None:
            extra["admission"] = admission()
        return {**process_stats(), **extra, "active_calls": active_calls()}

    return router

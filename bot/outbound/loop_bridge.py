"""Run the dialler's coroutines from the job queue's worker threads on one event loop.

huey runs tasks in plain threads; the dialler is async. In the server the coroutines run on
the server's own loop (a browser call lives there); in a worker process on a loop thread
of its own. Either way one loop, so clients bound to it (HTTP sessions) keep working.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
PLACE_TIMEOUT_S = 60.0


class LoopBridge:
    """Submits coroutines to ``loop`` from other threads and waits for their result.

    Args:
        loop: A running event loop (in another thread than the callers').
        timeout_s: How long a caller waits for one coroutine.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, *, timeout_s: float = PLACE_TIMEOUT_S):
        self.loop = loop
        self.timeout_s = timeout_s
        self._thread: threading.Thread | None = None

    @classmethod
    def own(cls, *, timeout_s: float = PLACE_TIMEOUT_S) -> LoopBridge:
        """A bridge to a new event loop running in a daemon thread of its own."""
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="outbound-loop", daemon=True)
        thread.start()
        bridge = cls(loop, timeout_s=timeout_s)
        bridge._thread = thread
        return bridge

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the loop and return its result (or raise its error)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(self.timeout_s)

    def close(self) -> None:
        """Stop the loop if this bridge started it."""
        if self._thread is None:
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        self._thread = None
        if not self.loop.is_running():
            self.loop.close()

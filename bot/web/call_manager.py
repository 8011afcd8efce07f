"""The server's running calls: started in the background, counted, stopped at shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from loguru import logger

from bot.call.pipeline import CallSpec
from bot.web.admission import CallSlot
from integrations.shared_state.calls import CallOwners
from transports import webrtc

CallStarter = Callable[[Coroutine[Any, Any, None], CallSpec, CallSlot | None], "asyncio.Task[None]"]
"""The server's :meth:`CallManager.start`: runs a call holding its slot."""


class CallManager:
    """Tracks running calls so they can be counted and stopped at shutdown.

    A call started with its admission slot holds it until the call ends; with ``owners``,
    this process owns the call (by its id and the provider's) while it runs.
    """

    def __init__(self, owners: CallOwners | None = None) -> None:
        self._tasks: set[asyncio.Task[None]] = set()
        self._owners = owners

    @property
    def active(self) -> int:
        """Calls in progress."""
        return len(self._tasks)

    def start(
        self,
        call: Coroutine[Any, Any, None],
        spec: CallSpec,
        slot: webrtc.Admitted | None = None,
    ) -> asyncio.Task[None]:
        """Run a call in the background.

        ``slot`` (its place under the call cap) is released when the call ends.
        """
        task = asyncio.create_task(self._guard(call, spec), name=f"call-{spec.call_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if slot is not None:
            task.add_done_callback(lambda _task: slot.release())
        return task

    async def _guard(self, call: Coroutine[Any, Any, None], spec: CallSpec) -> None:
        try:
            if self._owners is None:
                await call
                return
            async with self._owners.claim(spec.call_id, spec.provider_call_id):
                await call
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.bind(call_id=spec.call_id).exception("call failed")

    async def stop_all(self) -> None:
        """Cancel every running call and wait for them to finish."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

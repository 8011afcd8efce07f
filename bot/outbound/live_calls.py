"""The outbound calls running in this process, by attempt id: frames from the provider reach them.

Twilio's asynchronous ``AnsweredBy`` arrives on its own HTTP callback while the call's
pipeline runs; the callback hands a frame to the call found here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from pipecat.frames.frames import Frame

FrameQueue = Callable[[Frame], Awaitable[None]]
"""Queues a frame into a running call's pipeline (``PipelineWorker.queue_frame``)."""


class LiveCalls:
    """Running outbound calls by attempt id."""

    def __init__(self) -> None:
        self._calls: dict[str, FrameQueue] = {}

    def register(self, attempt_id: str, queue: FrameQueue) -> None:
        """The call of ``attempt_id`` runs and takes frames through ``queue``."""
        self._calls[attempt_id] = queue

    def unregister(self, attempt_id: str) -> None:
        """The call of ``attempt_id`` ended."""
        self._calls.pop(attempt_id, None)

    def __contains__(self, attempt_id: object) -> bool:
        return attempt_id in self._calls

    async def deliver(self, attempt_id: str, frame: Frame) -> bool:
        """Queue ``frame`` into the call of ``attempt_id``; False when it is not running here."""
        queue = self._calls.get(attempt_id)
        if queue is None:
            return False
        await queue(frame)
        return True

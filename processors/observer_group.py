"""Several first-push observers behind one: one queue hop per frame event instead of one each.

Pipecat's worker hands every frame event to every observer through a queue and a task of
its own: each processor's processing of each frame, and each first push. A call's caller
audio alone is 50 frames a second, so with the latency observer, the call recorder and the
event stream each on their own queue the observers cost a quarter of an idle call's CPU
(eight silent calls: 92 % of a core with them, 69 % without). Grouped, the events cross
one queue, and the caller's audio frames, which none of them reads, stop there.
"""

from __future__ import annotations

from collections.abc import Sequence

from pipecat.frames.frames import InputAudioRawFrame
from pipecat.observers.base_observer import BaseObserver, FramePushed, ProcessorSetUp
from pipecat.utils.asyncio.task_manager import BaseTaskManager


class ObserverGroup(BaseObserver):
    """Forwards first pushes (but the caller's audio) to observers that only want first pushes."""

    def __init__(self, observers: Sequence[BaseObserver]):
        """Group ``observers`` (each created with ``observe_every_push=False``).

        Raises:
            ValueError: An observer wants every push of a frame (it would miss them here).
        """
        super().__init__(observe_every_push=False)
        every = [type(o).__name__ for o in observers if o.observe_every_push]
        if every:
            raise ValueError(f"observers that watch every push cannot be grouped: {every}")
        self._observers = list(observers)

    async def setup(self, task_manager: BaseTaskManager) -> None:
        """Set up the group and its observers."""
        await super().setup(task_manager)
        for observer in self._observers:
            await observer.setup(task_manager)

    async def cleanup(self) -> None:
        """Clean up the observers, then the group."""
        for observer in self._observers:
            await observer.cleanup()
        await super().cleanup()

    async def on_pipeline_started(self) -> None:
        """Tell every observer."""
        for observer in self._observers:
            await observer.on_pipeline_started()

    async def on_processor_setup(self, data: ProcessorSetUp) -> None:
        """Tell every observer."""
        for observer in self._observers:
            await observer.on_processor_setup(data)

    async def on_push_frame(self, data: FramePushed) -> None:
        """Tell every observer, unless the frame is the caller's audio."""
        if isinstance(data.frame, InputAudioRawFrame):
            return
        for observer in self._observers:
            await observer.on_push_frame(data)

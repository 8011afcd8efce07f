"""Several first-push observers behind one: one queue hop per frame event instead of one each.

Pipecat's worker hands every frame event to every observer through a queue and a task of
its own: each processor's processing of each frame, and each first push. A call's caller
audio alone is 50 frames a second, so with the latency observer, the call recorder and the
event stream each on their own queue the observers cost a quarter of an idle call's CPU
(eight silent calls: 92 % of a core with them, 69 % without). Grouped, the events cross
one queue, and the caller's audio frames, which none of them reads, stop there.

The worker's own hub still paid for every event before the group saw it: a record of each
processor's processing of each frame (which none of these observers reads), a weak
reference per pushed frame to tell first pushes, a queue hop for the idle monitor. With
twenty calls the loop thread was 96 % busy and these were a tenth of it.
:class:`AudioBlindWorkerObserver` is the hub for such observers: it drops processing
events and audio pushes before any of that work.
"""

from __future__ import annotations

from collections.abc import Sequence

from pipecat.frames.frames import InputAudioRawFrame, OutputAudioRawFrame, TTSAudioRawFrame
from pipecat.observers.base_observer import (
    BaseObserver,
    FrameProcessed,
    FramePushed,
    ProcessorSetUp,
)
from pipecat.pipeline.worker_observer import WorkerObserver
from pipecat.transports.base_output import BaseOutputTransport
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


def _reads_processing(observer: BaseObserver) -> bool:
    return type(observer).on_process_frame is not BaseObserver.on_process_frame


def _is_audio_nobody_reads(data: FramePushed) -> bool:
    """Caller audio, and bot audio but the TTS's own pushes (the latency observer's first audio)."""
    frame = data.frame
    if isinstance(frame, InputAudioRawFrame):
        return True
    if isinstance(frame, OutputAudioRawFrame):
        return not isinstance(frame, TTSAudioRawFrame) or isinstance(
            data.source, BaseOutputTransport
        )
    return False


class AudioBlindWorkerObserver(WorkerObserver):
    """A worker's observer hub for observers that read no audio and no processing events.

    Pipecat's hub queues a record of every processor's processing of every frame and of
    every push for every observer. This one drops, before any queueing:

    - processing events (no observer it carries implements ``on_process_frame``);
    - pushes of audio frames: the caller's, and the bot's once the TTS has pushed them
      (the output transport re-chunks and pushes them again every 40 ms).

    Everything else is handed on as by Pipecat's hub (first pushes to first-push
    observers, every push to the others).
    """

    def __init__(self, *, observers: list[BaseObserver]):
        """Carry ``observers``.

        Raises:
            ValueError: An observer reads processing events (it would miss them here).
        """
        readers = [type(o).__name__ for o in observers if _reads_processing(o)]
        if readers:
            raise ValueError(f"observers that read processing events need every event: {readers}")
        super().__init__(observers=observers)

    async def on_process_frame(self, data: FrameProcessed) -> None:
        """Nobody here reads these."""

    async def on_push_frame(self, data: FramePushed) -> None:
        """Hand on a push, unless it is audio."""
        if _is_audio_nobody_reads(data):
            return
        await super().on_push_frame(data)

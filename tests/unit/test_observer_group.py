"""Grouped observers see what they would alone, but the caller's audio; bad groups are refused."""

import pytest
from pipecat.frames.frames import (
    InputAudioRawFrame,
    OutputAudioRawFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
)
from pipecat.observers.base_observer import BaseObserver, FrameProcessed, FramePushed
from pipecat.processors.filters.identity_filter import IdentityFilter
from pipecat.tests.utils import run_test

from processors.observer_group import AudioBlindWorkerObserver, ObserverGroup
from tests.support.frames import audio, transcript


class Seen(BaseObserver):
    def __init__(self) -> None:
        super().__init__(observe_every_push=False)
        self.frames: list[str] = []
        self.started = False

    async def on_pipeline_started(self) -> None:
        self.started = True

    async def on_push_frame(self, data: FramePushed) -> None:
        self.frames.append(type(data.frame).__name__)


async def test_group_forwards_first_pushes_but_not_caller_audio() -> None:
    first, second = Seen(), Seen()
    await run_test(
        IdentityFilter(),
        frames_to_send=[
            audio(InputAudioRawFrame),
            transcript(),
            audio(TTSAudioRawFrame),
        ],
        expected_down_frames=[InputAudioRawFrame, TranscriptionFrame, TTSAudioRawFrame],
        observers=[ObserverGroup([first, second])],
    )
    for seen in (first, second):
        assert seen.started
        assert "InputAudioRawFrame" not in seen.frames
        assert seen.frames.count("TranscriptionFrame") == 1  # first push only
        assert seen.frames.count("TTSAudioRawFrame") == 1


def test_observers_of_every_push_are_refused() -> None:
    with pytest.raises(ValueError, match="every push"):
        ObserverGroup([BaseObserver()])


class ReadsProcessing(Seen):
    async def on_process_frame(self, data: FrameProcessed) -> None:
        pass


async def test_audio_blind_worker_observer_hands_on_all_but_audio() -> None:
    seen = Seen()
    hub = AudioBlindWorkerObserver(observers=[ObserverGroup([seen])])
    await run_test(
        IdentityFilter(),
        frames_to_send=[
            audio(InputAudioRawFrame),
            transcript(),
            audio(TTSAudioRawFrame),
            audio(OutputAudioRawFrame),
        ],
        expected_down_frames=[
            InputAudioRawFrame,
            TranscriptionFrame,
            TTSAudioRawFrame,
            OutputAudioRawFrame,
        ],
        observers=[hub],
    )
    assert seen.started
    assert "InputAudioRawFrame" not in seen.frames
    assert "OutputAudioRawFrame" not in seen.frames
    assert seen.frames.count("TranscriptionFrame") == 1
    assert (
        seen.frames.count("TTSAudioRawFrame") == 1
    )  # the first bot audio, for the latency observer


def test_observers_of_processing_events_are_refused_by_the_audio_blind_hub() -> None:
    with pytest.raises(ValueError, match="processing events"):
        AudioBlindWorkerObserver(observers=[ReadsProcessing()])

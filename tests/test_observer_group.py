"""Grouped observers see what they would alone, but the caller's audio; bad groups are refused."""

import pytest
from pipecat.frames.frames import (
    InputAudioRawFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
)
from pipecat.observers.base_observer import BaseObserver, FramePushed
from pipecat.processors.filters.identity_filter import IdentityFilter
from pipecat.tests.utils import run_test

from processors.observer_group import ObserverGroup

SILENCE_20MS = b"\x00\x00" * 160


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
            InputAudioRawFrame(audio=SILENCE_20MS, sample_rate=8000, num_channels=1),
            TranscriptionFrame(text="hello", user_id="caller", timestamp="now"),
            TTSAudioRawFrame(audio=SILENCE_20MS, sample_rate=8000, num_channels=1),
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

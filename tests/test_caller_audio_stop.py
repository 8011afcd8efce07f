"""The caller's audio stops after the user aggregator; every other frame goes on."""

from pipecat.frames.frames import (
    InputAudioRawFrame,
    OutputAudioRawFrame,
    TranscriptionFrame,
    VADUserStartedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection
from pipecat.tests.utils import run_test

from processors.caller_audio_stop import CallerAudioStop

SILENCE_20MS = b"\x00\x00" * 160


async def test_caller_audio_is_dropped_and_the_rest_passes() -> None:
    await run_test(
        CallerAudioStop(),
        frames_to_send=[
            InputAudioRawFrame(audio=SILENCE_20MS, sample_rate=8000, num_channels=1),
            VADUserStartedSpeakingFrame(),
            TranscriptionFrame(text="hello", user_id="caller", timestamp="now"),
            OutputAudioRawFrame(audio=SILENCE_20MS, sample_rate=8000, num_channels=1),
            InputAudioRawFrame(audio=SILENCE_20MS, sample_rate=8000, num_channels=1),
        ],
        expected_down_frames=[
            VADUserStartedSpeakingFrame,
            TranscriptionFrame,
            OutputAudioRawFrame,
        ],
    )


async def test_frames_going_upstream_pass() -> None:
    await run_test(
        CallerAudioStop(),
        frames_to_send=[InputAudioRawFrame(audio=SILENCE_20MS, sample_rate=8000, num_channels=1)],
        frames_to_send_direction=FrameDirection.UPSTREAM,
        expected_down_frames=[],
        expected_up_frames=[InputAudioRawFrame],
    )

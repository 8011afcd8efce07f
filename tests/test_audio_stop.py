"""Caller audio stops after the user aggregator, bot audio after the output; the rest goes on."""

from pipecat.frames.frames import (
    InputAudioRawFrame,
    OutputAudioRawFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
    TTSTextFrame,
    VADUserStartedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection
from pipecat.tests.utils import run_test

from processors.audio_stop import BotAudioStop, CallerAudioStop

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


async def test_bot_audio_is_dropped_and_the_rest_passes() -> None:
    await run_test(
        BotAudioStop(),
        frames_to_send=[
            TTSAudioRawFrame(audio=SILENCE_20MS, sample_rate=8000, num_channels=1),
            OutputAudioRawFrame(audio=SILENCE_20MS, sample_rate=8000, num_channels=1),
            TTSTextFrame(text="Hello", aggregated_by="sentence"),
            TranscriptionFrame(text="hello", user_id="caller", timestamp="now"),
        ],
        expected_down_frames=[TTSTextFrame, TranscriptionFrame],
    )

"""Audio and speaking heartbeats stop after their last reader; every other frame goes on."""

from pipecat.frames.frames import (
    BotSpeakingFrame,
    BotStartedSpeakingFrame,
    InputAudioRawFrame,
    OutputAudioRawFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
    TTSTextFrame,
    UserSpeakingFrame,
    VADUserStartedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection
from pipecat.tests.utils import run_test

from processors.audio_stop import BotAudioStop, BotSpeakingStop, CallerAudioStop
from tests.support.frames import audio, transcript


async def test_caller_audio_is_dropped_and_the_rest_passes() -> None:
    await run_test(
        CallerAudioStop(),
        frames_to_send=[
            audio(InputAudioRawFrame),
            VADUserStartedSpeakingFrame(),
            UserSpeakingFrame(),
            transcript(),
            audio(OutputAudioRawFrame),
            audio(InputAudioRawFrame),
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
        frames_to_send=[audio(InputAudioRawFrame)],
        frames_to_send_direction=FrameDirection.UPSTREAM,
        expected_down_frames=[],
        expected_up_frames=[InputAudioRawFrame],
    )


async def test_bot_audio_is_dropped_and_the_rest_passes() -> None:
    await run_test(
        BotAudioStop(),
        frames_to_send=[
            audio(TTSAudioRawFrame),
            audio(OutputAudioRawFrame),
            BotSpeakingFrame(),
            TTSTextFrame(text="Hello", aggregated_by="sentence"),
            transcript(),
        ],
        expected_down_frames=[TTSTextFrame, TranscriptionFrame],
    )


async def test_the_bots_speaking_heartbeat_goes_no_further_upstream() -> None:
    await run_test(
        BotSpeakingStop(),
        frames_to_send=[BotSpeakingFrame(), BotStartedSpeakingFrame()],
        frames_to_send_direction=FrameDirection.UPSTREAM,
        expected_down_frames=[],
        expected_up_frames=[BotStartedSpeakingFrame],
    )
    await run_test(  # downstream it passes (the output transport and the rest below)
        BotSpeakingStop(),
        frames_to_send=[BotSpeakingFrame()],
        expected_down_frames=[BotSpeakingFrame],
    )

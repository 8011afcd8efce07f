"""The Cartesia fake speaks the wire protocol Pipecat's own Cartesia services use."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from pipecat.frames.frames import (
    InputAudioRawFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
    TTSSpeakFrame,
    TTSStoppedFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.pipeline.worker import PipelineParams
from pipecat.services.cartesia.stt import CartesiaSTTService
from pipecat.services.cartesia.tts import CartesiaTTSService
from pipecat.tests.utils import SleepFrame, run_test

from simulator.fake_cartesia import FakeCartesia, buzz

RATE = 16000


@pytest.fixture
async def cartesia() -> AsyncIterator[FakeCartesia]:
    async with FakeCartesia() as fake:
        fake.expect({"What are your opening hours?": 1.0, "Do you see children?": 2.0})
        yield fake


async def test_tts_streams_audio_for_the_text_then_stops(cartesia: FakeCartesia) -> None:
    tts = CartesiaTTSService(api_key="k", url=f"{cartesia.ws_origin}/tts/websocket")
    down, _ = await asyncio.wait_for(
        run_test(
            tts,
            frames_to_send=[TTSSpeakFrame("Thanks for calling, how can I help?"), SleepFrame(2)],
            pipeline_params=PipelineParams(audio_out_sample_rate=RATE),
        ),
        timeout=20,
    )
    audio = [f for f in down if isinstance(f, TTSAudioRawFrame)]
    seconds = sum(len(f.audio) for f in audio) / 2 / RATE
    assert audio and {f.sample_rate for f in audio} == {RATE}
    assert 1.5 < seconds < 3.5  # about as long as the text takes to say
    assert any(isinstance(f, TTSStoppedFrame) for f in down)
    assert cartesia.syntheses == 1


async def test_stt_answers_the_phrase_as_long_as_the_speech(cartesia: FakeCartesia) -> None:
    stt = CartesiaSTTService(api_key="k", base_url=cartesia.ws_origin, sample_rate=RATE)
    speech = buzz(2.0, RATE)
    chunk = RATE // 50 * 2  # 20 ms
    frames = [VADUserStartedSpeakingFrame()] + [
        InputAudioRawFrame(audio=speech[i : i + chunk], sample_rate=RATE, num_channels=1)
        for i in range(0, len(speech), chunk)
    ]
    down, _ = await asyncio.wait_for(
        run_test(
            stt,
            frames_to_send=[SleepFrame(0.5), *frames, VADUserStoppedSpeakingFrame(), SleepFrame(1)],
            pipeline_params=PipelineParams(audio_in_sample_rate=RATE),
        ),
        timeout=20,
    )
    texts = [f.text for f in down if isinstance(f, TranscriptionFrame)]
    assert texts == ["Do you see children?"]
    assert cartesia.transcripts == 1


async def test_a_request_without_an_api_key_is_refused(cartesia: FakeCartesia) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(f"{cartesia.ws_origin}/tts/websocket")
    assert refused.value.status == 401

"""The SIP transport's processors over a fake call (transports/sip/transport.py).

The caller's audio and keys reach the pipeline as frames; the bot's audio reaches the
media, with the speaking events following what the caller has heard; barge-in flushes
the media; End hangs up after the audio, Cancel at once; the peer's BYE ends the
pipeline; hold sends and piles up nothing; odd input is dropped and logged by size.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator

import pytest
from loguru import logger
from pipecat.audio.dtmf.types import KeypadEntry
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    CancelFrame,
    CancelWorkerFrame,
    ClientConnectedFrame,
    EndWorkerFrame,
    Frame,
    InputAudioRawFrame,
    InputDTMFFrame,
    InterruptionFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.tests.utils import SleepFrame, run_test

from tests.fakes.sip_call import FakeSipCall
from transports.sip.transport import SipTransport, SipTransportParams

LEAD_S = SipTransportParams().playback_lead_s


def tone(seconds: float) -> bytes:
    """Non-silent 8 kHz PCM16 (a square wave)."""
    samples = int(8000 * seconds)
    return b"".join(
        (4000 if (i // 10) % 2 else -4000).to_bytes(2, "little", signed=True)
        for i in range(samples)
    )


def tts(seconds: float) -> list[Frame]:
    """One TTS utterance: started, audio, stopped."""
    return [
        TTSStartedFrame(context_id="c1"),
        TTSAudioRawFrame(tone(seconds), 8000, 1, context_id="c1"),
        TTSStoppedFrame(context_id="c1"),
    ]


async def until(condition: Callable[[], bool], timeout_s: float = 2.0) -> None:
    """Wait for ``condition`` (the transport attaching to the media, ...)."""
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.005)


@pytest.fixture
def log_lines() -> Iterator[list[str]]:
    """Every log message written during the test."""
    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(str(message)), level="DEBUG")
    yield lines
    logger.remove(sink)


class SpeechProbe(FrameProcessor):
    """After the output: notes how much the caller had heard when the bot 'stopped speaking'."""

    def __init__(self, call: FakeSipCall):
        super().__init__()
        self._call = call
        self.heard_at_stop: list[float] = []

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, BotStoppedSpeakingFrame):
            self.heard_at_stop.append(self._call.media.sent_s)
        await self.push_frame(frame, direction)


async def test_caller_audio_and_keys_become_frames() -> None:
    call = FakeSipCall()
    transport = SipTransport(call)
    connected: list[object] = []

    @transport.event_handler("on_client_connected")
    async def on_connected(_transport: SipTransport, client: object) -> None:
        connected.append(client)

    async def caller() -> None:
        await until(lambda: call.media.on_audio is not None)
        for i in range(3):
            call.media.caller_says(bytes([i + 1]) * 320)
        call.media.caller_presses("5")
        call.media.caller_presses("#")

    peer = asyncio.create_task(caller())
    down, _up = await run_test(transport.input(), frames_to_send=[SleepFrame(0.3)])
    await peer

    assert connected == [call]
    assert any(isinstance(f, ClientConnectedFrame) for f in down)
    audio = [f for f in down if isinstance(f, InputAudioRawFrame)]
    assert [f.audio for f in audio] == [bytes([i + 1]) * 320 for i in range(3)]
    assert all(f.sample_rate == 8000 and f.num_channels == 1 for f in audio)
    keys = [f.button for f in down if isinstance(f, InputDTMFFrame)]
    assert keys == [KeypadEntry.FIVE, KeypadEntry.POUND]
    assert call.media.on_audio is None  # detached when the pipeline ended


async def test_what_the_caller_does_while_the_pipeline_starts_is_kept() -> None:
    call = FakeSipCall()
    transport = SipTransport(call, SipTransportParams(input_queue_chunks=3))
    call.media.caller_presses("9")  # answered, the pipeline not yet running
    for i in range(5):
        call.media.caller_says(bytes([i + 1]) * 320)

    down, _ = await run_test(transport.input(), frames_to_send=[SleepFrame(0.2)])

    assert [f.button for f in down if isinstance(f, InputDTMFFrame)] == [KeypadEntry.NINE]
    # The backlog keeps the latest audio (3 chunks here), never the key.
    audio = [f.audio for f in down if isinstance(f, InputAudioRawFrame)]
    assert audio == [bytes([i + 1]) * 320 for i in range(2, 5)]


async def test_caller_audio_from_another_thread_still_arrives() -> None:
    call = FakeSipCall()
    transport = SipTransport(call)

    async def caller() -> None:
        await until(lambda: call.media.on_audio is not None)
        thread = threading.Thread(target=call.media.caller_says, args=(b"\x01\x02" * 160,))
        thread.start()
        thread.join()

    peer = asyncio.create_task(caller())
    down, _ = await run_test(transport.input(), frames_to_send=[SleepFrame(0.3)])
    await peer
    assert [f.audio for f in down if isinstance(f, InputAudioRawFrame)] == [b"\x01\x02" * 160]


async def test_odd_input_is_dropped_and_logged_by_size_only(log_lines: list[str]) -> None:
    call = FakeSipCall()
    transport = SipTransport(call)

    async def caller() -> None:
        await until(lambda: call.media.on_audio is not None)
        media = call.media
        media.caller_says(b"")
        media.caller_says(b"\x00" * 321)
        media.caller_says(b"\x00" * 20000)
        media.caller_says("not audio")  # pyright: ignore[reportArgumentType]
        media.caller_presses("A")  # RFC 4733 has A-D; Pipecat's keypad does not
        media.caller_presses("7x")
        media.caller_says(b"\x05" * 320)

    peer = asyncio.create_task(caller())
    down, _ = await run_test(transport.input(), frames_to_send=[SleepFrame(0.3)])
    await peer

    assert [f.audio for f in down if isinstance(f, InputAudioRawFrame)] == [b"\x05" * 320]
    assert not [f for f in down if isinstance(f, InputDTMFFrame)]
    drops = [line for line in log_lines if "dropped input" in line]
    assert len(drops) == 6
    assert any("321 bytes" in line for line in drops)
    assert any("20000 bytes" in line for line in drops)
    assert all(call.call_id in line or "dropped input" in line for line in drops)
    assert not any("7x" in line for line in log_lines)  # no digits in the log


async def test_bot_stops_speaking_once_the_caller_has_heard_it_then_end_hangs_up() -> None:
    call = FakeSipCall()
    transport = SipTransport(call)
    probe = SpeechProbe(call)

    _down, up = await run_test(
        Pipeline([transport.output(), probe]),
        frames_to_send=[*tts(1.0), SleepFrame(1.4), *tts(0.3)],
    )

    ups = [type(f) for f in up if isinstance(f, BotStartedSpeakingFrame | BotStoppedSpeakingFrame)]
    assert ups == [BotStartedSpeakingFrame, BotStoppedSpeakingFrame] * 2
    # When the bot "stopped speaking", the caller had heard all but the playback lead.
    assert probe.heard_at_stop[0] >= 1.0 - LEAD_S - 0.04
    # EndFrame: every bit of audio went out before the BYE.
    assert call.hang_ups == 1
    assert call.end_reason == "local_bye"
    assert call.queued_at_hang_up == 0
    assert call.media.sent_s >= 1.3


async def test_barge_in_flushes_the_media_at_once() -> None:
    call = FakeSipCall()
    transport = SipTransport(call)

    _down, up = await run_test(
        transport.output(),
        frames_to_send=[*tts(3.0), SleepFrame(0.5), InterruptionFrame(), SleepFrame(0.5)],
    )

    media = call.media
    assert media.flushes, "the interruption did not flush the media"
    # Nothing the caller hears after the flush (one 20 ms chunk may slip in, then goes too).
    # (seconds summed in 20 ms floats: 0.52 - 0.48 is 0.04000000000000004)
    assert media.sent_s - media.sent_at_flush[0] <= 0.04 + 1e-9
    assert media.sent_s < 2.5  # of 3 s queued (a slow machine sends more before the flush)
    ups = [type(f) for f in up if isinstance(f, BotStartedSpeakingFrame | BotStoppedSpeakingFrame)]
    assert ups == [BotStartedSpeakingFrame, BotStoppedSpeakingFrame]


async def test_cancel_hangs_up_at_once() -> None:
    call = FakeSipCall()
    transport = SipTransport(call)

    await asyncio.wait_for(
        run_test(
            Pipeline([transport.input(), transport.output()]),
            frames_to_send=[*tts(3.0), SleepFrame(0.3), CancelFrame()],
            send_end_frame=False,
        ),
        timeout=5,
    )
    assert call.hang_ups == 1
    assert call.end_reason == "local_bye"
    assert call.media.sent_s < 2.5  # of 3 s queued


async def test_the_peer_hanging_up_ends_the_pipeline_without_a_bye() -> None:
    call = FakeSipCall()
    transport = SipTransport(call)
    disconnected: list[object] = []

    @transport.event_handler("on_client_disconnected")
    async def on_disconnected(_transport: SipTransport, client: object) -> None:
        disconnected.append(client)

    async def peer() -> None:
        await until(lambda: call.media.on_audio is not None)
        call.peer_hangs_up()

    task = asyncio.create_task(peer())
    _down, up = await asyncio.wait_for(
        run_test(
            Pipeline([transport.input(), transport.output()]),
            frames_to_send=[SleepFrame(0.1)],
            send_end_frame=False,  # the pipeline must end by itself
        ),
        timeout=5,
    )
    await task
    assert disconnected == [call]
    assert any(isinstance(f, CancelWorkerFrame) for f in up)
    assert call.hang_ups == 0  # the dialog is over: no BYE of ours


async def test_a_call_over_before_the_pipeline_starts_ends_it_at_once() -> None:
    call = FakeSipCall()
    call.peer_hangs_up()
    transport = SipTransport(call)
    _down, up = await asyncio.wait_for(
        run_test(
            Pipeline([transport.input(), transport.output()]),
            frames_to_send=[],
            send_end_frame=False,
        ),
        timeout=5,
    )
    assert any(isinstance(f, CancelWorkerFrame) for f in up)
    assert call.hang_ups == 0


async def test_a_call_past_its_time_limit_is_ended_and_hung_up() -> None:
    call = FakeSipCall()
    transport = SipTransport(call, SipTransportParams(session_timeout_s=0.2))
    timed_out: list[object] = []

    @transport.event_handler("on_session_timeout")
    async def on_timeout(_transport: SipTransport, client: object) -> None:
        timed_out.append(client)

    _down, up = await asyncio.wait_for(
        run_test(
            Pipeline([transport.input(), transport.output()]),
            frames_to_send=[],
            send_end_frame=False,  # the limit must end it
        ),
        timeout=5,
    )
    assert timed_out == [call]
    assert any(isinstance(f, EndWorkerFrame) for f in up)
    assert call.hang_ups == 1 and call.end_reason == "local_bye"


async def test_on_hold_nothing_is_written_and_the_pipeline_goes_on() -> None:
    call = FakeSipCall()
    call.media.held_flag = True
    transport = SipTransport(call)

    async def peer() -> None:
        media = call.media
        while media.found_held == 0:  # the first utterance reached the held line
            await asyncio.sleep(0.01)
        seen = -1
        while media.found_held != seen:  # ... and was dropped to its end (paced)
            seen = media.found_held
            await asyncio.sleep(0.6)
        media.held_flag = False  # the re-INVITE taking the call off hold

    # The unhold falls between the two utterances however slowly the pipeline runs (it
    # was a fixed 1.5 s, which a loaded CI machine overran once).
    task = asyncio.create_task(peer())
    _down, up = await run_test(
        transport.output(),
        frames_to_send=[*tts(0.5), SleepFrame(2.5), *tts(0.3)],
    )
    await task

    media = call.media
    assert media.writes_while_held == 0
    ups = [type(f) for f in up if isinstance(f, BotStartedSpeakingFrame | BotStoppedSpeakingFrame)]
    assert ups == [BotStartedSpeakingFrame, BotStoppedSpeakingFrame] * 2
    # Only what was said after the hold was sent (0.3 s, padded to a whole chunk).
    assert 0.28 <= media.sent_s <= 0.35
    assert call.hang_ups == 1


async def test_a_line_on_hold_is_not_a_silent_caller() -> None:
    """The caller-silent prompts wait while the far end holds the call (bot.call.pipeline)."""
    from bot.call.pipeline import line_on_hold

    call = FakeSipCall()
    transport = SipTransport(call)
    assert not line_on_hold(transport)
    call.media.held_flag = True
    assert line_on_hold(transport)
    call.media.held_flag = False
    assert not line_on_hold(transport)

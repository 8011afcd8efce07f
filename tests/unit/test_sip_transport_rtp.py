"""The SIP transport over real UDP: an aiosipua/aiortp caller calls a real SipEndpoint.

The endpoint's handler runs a tiny pipeline with :class:`SipTransport` (a "tone bot": it
keeps what it hears, speaks a 3 s tone on key 1, is interrupted on key 2, ends the call
on key #). The caller, a real SIP UA with G.711 RTP and RFC 4733 keys, checks that its
audio reaches the pipeline, the bot's tone reaches it, the keys arrive, barge-in stops
the bot's audio at once, and BYE either way ends both sides.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import numpy as np
import pytest
from aiortp import RTPSession
from aiosipua import SipUAC, SipUAS, UdpSipTransport
from aiosipua.sdp_negotiate import build_sdp
from pipecat.frames.frames import (
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
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.workers.runner import WorkerRunner

from integrations.speech.audio import pcm16_to_float
from transports.sip.contracts import InviteInfo, Refusal, SipCall
from transports.sip.transport import SipTransport

endpoint_module = pytest.importorskip(
    "transports.sip.endpoint", reason="needs sip-core's SipEndpoint (git merge sip-core)"
)
config_module = pytest.importorskip(
    "transports.sip.config", reason="needs sip-core's SipEndpointConfig (git merge sip-core)"
)

TONE_S = 3.0
LOUD_RMS = 0.015  # of full scale; the tone is 0.12, G.711 silence far below


def rms(pcm: bytes) -> float:
    """The level of 16-bit PCM (0 to 1)."""
    samples = pcm16_to_float(pcm)
    return float(np.sqrt(np.mean(samples**2))) if len(samples) else 0.0


def tone(seconds: float, period: int = 10) -> bytes:
    """A non-silent 8 kHz PCM16 square wave."""
    high = (4000).to_bytes(2, "little", signed=True)
    low = (-4000).to_bytes(2, "little", signed=True)
    return b"".join(high if (i // period) % 2 else low for i in range(int(8000 * seconds)))


def free_udp_ports(count: int) -> int:
    """The first of ``count`` consecutive free UDP ports (even, for RTP)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            base = probe.getsockname()[1] & ~1
        sockets: list[socket.socket] = []
        try:
            for port in range(base, base + count):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sockets.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise RuntimeError("no free UDP port range")


class ToneBot(FrameProcessor):
    """Hears the caller, speaks a tone on 1, barges in on 2, ends the call on #."""

    def __init__(self) -> None:
        super().__init__()
        self.heard = bytearray()
        self.keys: list[str] = []

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame):
            self.heard.extend(frame.audio)
            return
        if isinstance(frame, InputDTMFFrame):
            key = frame.button.value
            self.keys.append(key)
            if key == "1":
                await self.push_frame(TTSStartedFrame(context_id="t"))
                await self.push_frame(TTSAudioRawFrame(tone(TONE_S), 8000, 1, context_id="t"))
                await self.push_frame(TTSStoppedFrame(context_id="t"))
            elif key == "2":
                await self.push_frame(InterruptionFrame())
            elif key == "#":
                await self.push_frame(
                    EndWorkerFrame(reason="caller pressed #"), FrameDirection.UPSTREAM
                )
            return
        await self.push_frame(frame, direction)


@dataclass
class BotSide:
    """What the endpoint's handler saw."""

    bots: list[ToneBot] = field(default_factory=list)
    disconnected: list[str] = field(default_factory=list)
    finished: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, call: SipCall) -> None:
        transport = SipTransport(call)
        bot = ToneBot()
        self.bots.append(bot)

        @transport.event_handler("on_client_disconnected")
        async def on_disconnected(_t: SipTransport, client: SipCall) -> None:
            self.disconnected.append(client.call_id)

        worker = PipelineWorker(
            Pipeline([transport.input(), bot, transport.output()]),
            params=PipelineParams(audio_in_sample_rate=8000, audio_out_sample_rate=8000),
            cancel_on_idle_timeout=False,
        )
        runner = WorkerRunner(handle_sigint=False, check_dangling_tasks=False)
        await runner.add_workers(worker)
        try:
            await runner.run()
        finally:
            self.finished.set()


def admit_all(_invite: InviteInfo) -> Refusal | None:
    return None


class Caller:
    """A SIP UA placing one G.711 call with aiosipua + aiortp and keeping what it hears."""

    def __init__(self, sip_port: int, rtp_port: int) -> None:
        self.sip = UdpSipTransport(local_addr=("127.0.0.1", sip_port))
        self.uac = SipUAC(self.sip)
        self.uas = SipUAS(self.sip, uac=self.uac)
        self.rtp_port = rtp_port
        self.rtp: RTPSession | None = None
        self.heard: list[tuple[float, bytes]] = []
        self.got_bye = asyncio.Event()
        self._key_timestamp = 0
        self.uas.on_bye = lambda _call, _request: self.got_bye.set()

    async def call(self, endpoint_addr: tuple[str, int]) -> None:
        await self.uas.start()
        offer = build_sdp("127.0.0.1", self.rtp_port, 0, "PCMU")
        self.outgoing = self.uac.send_invite(
            "sip:caller@127.0.0.1", f"sip:agent@127.0.0.1:{endpoint_addr[1]}", endpoint_addr, offer
        )
        await self.outgoing.wait_answered(timeout=5)
        answer = self.outgoing.sdp_answer
        assert answer is not None and answer.rtp_address is not None
        self.rtp = await RTPSession.create(
            local_addr=("127.0.0.1", self.rtp_port),
            remote_addr=answer.rtp_address,
            payload_type=0,
            jitter_prefetch=2,
        )
        self.rtp.on_audio = lambda pcm, _ts: self.heard.append((time.monotonic(), pcm))

    async def say(self, pcm: bytes) -> None:
        """Send audio in real time, 20 ms a packet."""
        assert self.rtp is not None
        start = time.monotonic()
        for i, offset in enumerate(range(0, len(pcm), 320)):
            self.rtp.send_audio_pcm_auto(pcm[offset : offset + 320])
            await asyncio.sleep(max(0.0, start + (i + 1) * 0.02 - time.monotonic()))

    async def press(self, key: str) -> None:
        assert self.rtp is not None
        # RFC 4733: a new timestamp is a new key press (aiortp's default, 0, repeats one event).
        self._key_timestamp += 8000
        self.rtp.send_dtmf(key, duration_ms=100, timestamp=self._key_timestamp)
        await asyncio.sleep(0.2)

    def loud_s(self, since: float = 0.0) -> float:
        """Seconds of non-silent audio heard after ``since``."""
        return sum(
            len(pcm) / 16000 for at, pcm in self.heard if at >= since and rms(pcm) > LOUD_RMS
        )

    def hang_up(self) -> None:
        self.outgoing.hangup(self.uac)

    async def close(self) -> None:
        if self.rtp is not None:
            await self.rtp.close()
        await self.uas.stop()


@pytest.fixture
async def endpoint_and_bot() -> AsyncIterator[tuple[object, BotSide, Callable[[], Caller]]]:
    rtp_base = free_udp_ports(40)
    config = config_module.SipEndpointConfig(
        listen_host="127.0.0.1",
        listen_port=0,
        rtp_ports=(rtp_base, rtp_base + 29),
        session_expires_s=0,
    )
    side = BotSide()
    endpoint = endpoint_module.SipEndpoint(config, side.handle, admit_all)
    await endpoint.start()
    callers: list[Caller] = []

    def new_caller() -> Caller:
        caller = Caller(free_udp_ports(1), rtp_base + 30)
        callers.append(caller)
        return caller

    try:
        yield endpoint, side, new_caller
    finally:
        for caller in callers:
            await caller.close()
        await endpoint.stop()


async def test_a_real_call_audio_both_ways_keys_barge_in_and_our_bye(
    endpoint_and_bot: tuple[object, BotSide, Callable[[], Caller]],
) -> None:
    endpoint, side, new_caller = endpoint_and_bot
    caller = new_caller()
    await caller.call(endpoint.local_addr)  # type: ignore[attr-defined]

    await caller.say(tone(1.0))  # the caller speaks: it reaches the pipeline
    await caller.press("1")  # the bot speaks 3 s
    await asyncio.sleep(0.8)
    heard_before = caller.loud_s()
    pressed = time.monotonic()
    await caller.press("2")  # barge-in
    await asyncio.sleep(1.0)
    await caller.press("#")  # the bot ends the call: our BYE
    await asyncio.wait_for(caller.got_bye.wait(), 5)
    await asyncio.wait_for(side.finished.wait(), 5)

    bot = side.bots[0]
    assert bot.keys == ["1", "2", "#"]
    heard_by_bot = len(bot.heard) / 16000
    loud_by_bot = rms(bytes(bot.heard)) if bot.heard else 0
    assert heard_by_bot >= 0.8 and loud_by_bot > LOUD_RMS, (heard_by_bot, loud_by_bot)
    assert heard_before >= 0.4  # the bot's tone reached the caller
    # The tone stopped soon after the key (the key's own 0.2 s, RTP and jitter buffers).
    assert caller.loud_s(since=pressed + 0.4) == 0.0
    assert caller.loud_s() < TONE_S / 2
    assert side.disconnected == []  # we hung up; the peer did not


async def test_the_callers_bye_ends_the_pipeline(
    endpoint_and_bot: tuple[object, BotSide, Callable[[], Caller]],
) -> None:
    endpoint, side, new_caller = endpoint_and_bot
    caller = new_caller()
    await caller.call(endpoint.local_addr)  # type: ignore[attr-defined]
    await caller.say(tone(0.3))
    caller.hang_up()
    await asyncio.wait_for(side.finished.wait(), 5)
    assert side.disconnected == [caller.outgoing.call_id]

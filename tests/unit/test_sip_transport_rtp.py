"""The SIP transport over real UDP: an aiosipua/aiortp caller calls a real SipEndpoint.

The endpoint's handler runs a tiny pipeline with :class:`SipTransport` (a "tone bot": it
keeps what it hears, speaks a 3 s tone on key 1, is interrupted on key 2, ends the call
on key #). The caller (:class:`tests.support.sip_uac.SipPeer`: G.711 RTP, RFC 4733 keys,
re-INVITE, BYE) checks that its audio reaches the pipeline, the bot's tone reaches it,
the keys arrive, barge-in stops the bot's audio at once, hold sends nothing and piles
nothing up, and BYE either way ends both sides.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiosipua import OutgoingCall
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

from simulator.audio_codec import rms
from simulator.ports import free_rtp_port
from tests.support.sip_uac import SipPeer, offer_sdp
from transports.sip.config import SipEndpointConfig
from transports.sip.contracts import InviteInfo, Refusal, SipCall
from transports.sip.endpoint import SipEndpoint
from transports.sip.transport import SipTransport, SipTransportParams

TONE_S = 3.0
LOUD = 0.015 * 32768  # RMS: 1.5 % of full scale; the tone is 12 %, G.711 silence far below
LEAD_S = SipTransportParams().playback_lead_s


def tone(seconds: float, period: int = 10) -> bytes:
    """A non-silent 8 kHz PCM16 square wave."""
    high = (4000).to_bytes(2, "little", signed=True)
    low = (-4000).to_bytes(2, "little", signed=True)
    return b"".join(high if (i // period) % 2 else low for i in range(int(8000 * seconds)))


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
        elif isinstance(frame, InputDTMFFrame):
            key = frame.button.value
            self.keys.append(key)
            if key == "1":
                await self.push_frame(TTSStartedFrame(context_id="t"))
                await self.push_frame(TTSAudioRawFrame(tone(TONE_S), 8000, 1, context_id="t"))
                await self.push_frame(TTSStoppedFrame(context_id="t"))
            elif key == "2":
                await self.push_frame(InterruptionFrame())
            elif key == "#":
                await self.push_frame(EndWorkerFrame(reason="key #"), FrameDirection.UPSTREAM)
        else:
            await self.push_frame(frame, direction)


@dataclass
class BotSide:
    """The endpoint's handler: a pipeline with the transport; what it saw."""

    calls: list[SipCall] = field(default_factory=list)
    bots: list[ToneBot] = field(default_factory=list)
    disconnected: list[str] = field(default_factory=list)
    finished: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, call: SipCall) -> None:
        transport = SipTransport(call)
        bot = ToneBot()
        self.calls.append(call)
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

    def admit(self, invite: InviteInfo) -> Refusal | None:
        return None


class Caller:
    """The peer's one call: keys with fresh RFC 4733 timestamps, audio heard with its time."""

    def __init__(self, peer: SipPeer) -> None:
        self.peer = peer
        self.heard: list[tuple[float, bytes]] = []
        self._key_timestamp = 0
        self.outgoing: OutgoingCall | None = None
        self.endpoint_addr = ("127.0.0.1", 0)

    async def call(self, endpoint_addr: tuple[str, int]) -> OutgoingCall:
        self.endpoint_addr = endpoint_addr
        port = await self.peer.open_rtp()
        outgoing = self.peer.invite(endpoint_addr, offer_sdp(port, (0,)))
        await outgoing.wait_answered(10)
        answer = outgoing.sdp_answer
        rtp = self.peer.rtp
        assert answer is not None and answer.rtp_address is not None and rtp is not None
        rtp.update_remote(answer.rtp_address)
        rtp.on_audio = lambda pcm, _ts: self.heard.append((time.monotonic(), pcm))
        self.outgoing = outgoing
        return outgoing

    async def press(self, key: str) -> None:
        assert self.peer.rtp is not None
        # A new timestamp is a new key press (RFC 4733); aiortp's default (0) repeats one event.
        self._key_timestamp += 8000
        self.peer.rtp.send_dtmf(key, duration_ms=100, timestamp=self._key_timestamp)
        await asyncio.sleep(0.2)

    async def hold(self, held: bool) -> None:
        """A re-INVITE putting the call on hold (sendonly) or taking it off (sendrecv)."""
        assert self.outgoing is not None
        offer = offer_sdp(self.peer.rtp_port, (0,))
        audio = offer.audio
        assert audio is not None
        if held:
            audio.attributes.pop("sendrecv", None)
            audio.attributes["sendonly"] = []
        offer.origin.session_version = str(int(time.monotonic() * 1000))
        self.peer.uac.send_reinvite(self.outgoing.dialog, offer, self.endpoint_addr)
        await asyncio.sleep(0.2)

    def loud_s(self, since: float = 0.0, until: float = float("inf")) -> float:
        """Seconds of the bot's tone heard between ``since`` and ``until``."""
        return sum(
            len(pcm) / 16000 for at, pcm in self.heard if since <= at < until and rms(pcm) > LOUD
        )


@pytest.fixture
async def setup() -> AsyncIterator[tuple[SipEndpoint, BotSide, Caller]]:
    side = BotSide()
    base = free_rtp_port()
    config = SipEndpointConfig(
        listen_host="127.0.0.1", listen_port=0, rtp_ports=(base, base + 9), session_expires_s=0
    )
    endpoint = SipEndpoint(config, side.handle, side.admit)
    await endpoint.start()
    peer = await SipPeer().start()
    try:
        yield endpoint, side, Caller(peer)
    finally:
        await peer.close()
        await endpoint.stop()


async def test_a_real_call_audio_both_ways_keys_barge_in_and_our_bye(
    setup: tuple[SipEndpoint, BotSide, Caller],
) -> None:
    endpoint, side, caller = setup
    await caller.call(endpoint.local_addr)
    assert caller.peer.rtp is not None

    await caller.peer.send_pcm(tone(1.0), paced=True)  # the caller speaks
    await caller.press("1")  # the bot speaks 3 s
    await asyncio.sleep(0.8)
    heard_before = caller.loud_s()
    pressed = time.monotonic()
    await caller.press("2")  # barge-in
    await asyncio.sleep(1.0)
    await caller.press("#")  # the bot ends the call: our BYE
    await asyncio.wait_for(caller.peer.events.bye_event.wait(), 5)
    await asyncio.wait_for(side.finished.wait(), 5)

    bot = side.bots[0]
    assert bot.keys == ["1", "2", "#"]
    assert len(bot.heard) / 16000 >= 0.8 and rms(bytes(bot.heard)) > LOUD
    assert heard_before >= 0.5  # the bot's tone reached the caller
    # Nothing after the key's way over loopback and a flush (RTP and jitter buffers: 0.2 s).
    assert caller.loud_s(since=pressed + 0.2) == 0.0
    assert side.calls[0].end_reason == "local_bye"
    assert side.disconnected == []  # we hung up; the peer did not


async def test_on_hold_nothing_is_sent_nor_queued_and_the_call_goes_on(
    setup: tuple[SipEndpoint, BotSide, Caller],
) -> None:
    endpoint, side, caller = setup
    await caller.call(endpoint.local_addr)
    await caller.press("1")  # the bot speaks 3 s
    await asyncio.sleep(0.4)
    await caller.hold(True)
    held_at = time.monotonic()
    media = side.calls[0].media
    assert media.held
    queued = []
    for _ in range(10):
        await asyncio.sleep(0.1)
        queued.append(media.queued_s)
    unheld_at = time.monotonic()
    await caller.hold(False)
    assert not media.held
    await asyncio.sleep(TONE_S)  # the first tone is over (unheard while held)
    await caller.press("1")  # the bot speaks again, heard
    await asyncio.sleep(0.6)

    assert caller.loud_s(until=held_at) > 0.2
    assert caller.loud_s(since=held_at + 0.1, until=unheld_at) == 0.0
    assert max(queued) <= LEAD_S + 0.04  # nothing piled up while held
    assert caller.loud_s(since=unheld_at + TONE_S) >= 0.3
    assert side.bots[0].keys == ["1", "1"]
    assert not side.finished.is_set()


async def test_the_callers_bye_ends_the_pipeline(
    setup: tuple[SipEndpoint, BotSide, Caller],
) -> None:
    endpoint, side, caller = setup
    outgoing = await caller.call(endpoint.local_addr)
    await caller.peer.send_pcm(tone(0.3), paced=True)
    outgoing.hangup(caller.peer.uac)
    await asyncio.wait_for(side.finished.wait(), 5)
    assert side.disconnected == [outgoing.call_id]
    assert side.calls[0].end_reason == "remote_bye"

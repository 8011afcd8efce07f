"""The SIP endpoint over real UDP on loopback, with an aiosipua UAC + aiortp RTP as the trunk."""

from __future__ import annotations

import asyncio
import math
import struct
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest

from tests.support.sip_uac import SipPeer, offer_sdp
from transports.sip.config import SipEndpointConfig
from transports.sip.contracts import InviteInfo, Refusal, SipCall
from transports.sip.endpoint import SipEndpoint


def tone(seconds: float, hz: float = 440.0, level: int = 8000) -> bytes:
    """A sine tone, 8 kHz PCM16."""
    n = int(8000 * seconds)
    return b"".join(
        struct.pack("<h", int(level * math.sin(2 * math.pi * hz * i / 8000))) for i in range(n)
    )


def energy(pcm: bytes) -> float:
    """Mean absolute sample value."""
    samples = struct.unpack(f"<{len(pcm) // 2}h", pcm[: len(pcm) // 2 * 2])
    return sum(abs(s) for s in samples) / max(1, len(samples))


async def until(predicate: Callable[[], bool], timeout_s: float = 3.0) -> None:
    """Wait until ``predicate()`` holds (fails the test after ``timeout_s``)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


@dataclass
class Bot:
    """The handler: records what the call delivered, plays a greeting, ends when told."""

    greeting: bytes = b""
    calls: list[SipCall] = field(default_factory=list)
    audio: bytearray = field(default_factory=bytearray)
    digits: list[str] = field(default_factory=list)
    finish: asyncio.Event = field(default_factory=asyncio.Event)
    admitted: list[InviteInfo] = field(default_factory=list)
    refusal: Refusal | None = None

    async def __call__(self, call: SipCall) -> None:
        self.calls.append(call)
        call.media.on_audio = self.audio.extend
        call.media.on_dtmf = self.digits.append
        if self.greeting:
            call.media.send_pcm(self.greeting)
        ended = asyncio.Event()
        call.on_end(lambda _reason: ended.set())
        finish = asyncio.ensure_future(self.finish.wait())
        await asyncio.wait(
            {finish, asyncio.ensure_future(ended.wait())}, return_when=asyncio.FIRST_COMPLETED
        )

    def admission(self, invite: InviteInfo) -> Refusal | None:
        self.admitted.append(invite)
        return self.refusal


def config(**overrides: object) -> SipEndpointConfig:
    """An endpoint on a free loopback port (RTP in a small high range)."""
    base: dict[str, object] = {
        "listen_host": "127.0.0.1",
        "listen_port": 0,
        "rtp_ports": (42000, 42199),
        "session_expires_s": 0,
    }
    base.update(overrides)
    return SipEndpointConfig(**base)  # type: ignore[arg-type]


@pytest.fixture
async def peer() -> AsyncIterator[SipPeer]:
    p = await SipPeer().start()
    yield p
    await p.close()


async def start_endpoint(bot: Bot, **overrides: object) -> SipEndpoint:
    endpoint = SipEndpoint(config(**overrides), bot, bot.admission)
    await endpoint.start()
    return endpoint


async def test_inbound_call_audio_both_ways_dtmf_and_caller_bye(peer: SipPeer) -> None:
    bot = Bot(greeting=tone(0.4))
    endpoint = await start_endpoint(bot)
    try:
        port = await peer.open_rtp(pt=8)
        outgoing = peer.invite(
            endpoint.local_addr, offer_sdp(port, (8, 0)), headers={"X-Agent": "a"}
        )
        await outgoing.wait_answered(3)
        answer = outgoing.sdp_answer
        assert answer is not None and answer.audio is not None
        assert [c.encoding_name for c in answer.audio.codecs][0] == "PCMA"
        assert answer.rtp_address is not None
        assert peer.rtp is not None
        peer.rtp.update_remote(answer.rtp_address)
        await until(lambda: len(bot.calls) == 1)
        call = bot.calls[0]
        assert call.direction == "inbound" and call.invite.callee == "agent"
        assert bot.admitted[0].caller == "15550001111"
        assert bot.admitted[0].headers == {"x-agent": "a"}

        await peer.send_pcm(tone(0.3), paced=True)
        peer.rtp.send_dtmf("5")
        await until(lambda: len(bot.audio) >= 320 * 10 and bot.digits == ["5"])
        assert len(bot.audio) % 320 == 0
        assert energy(bytes(bot.audio)) > 1000
        await until(lambda: energy(bytes(peer.heard)) > 1000 and len(peer.heard) >= 320 * 15)

        outgoing.hangup(peer.uac)
        await until(lambda: call.ended)
        assert call.end_reason == "remote_bye"
        await until(lambda: not endpoint.calls)
    finally:
        await endpoint.stop()


async def test_handler_end_sends_bye_and_flush_drops_queue(peer: SipPeer) -> None:
    bot = Bot()
    endpoint = await start_endpoint(bot)
    try:
        port = await peer.open_rtp()
        outgoing = peer.invite(endpoint.local_addr, offer_sdp(port))
        await outgoing.wait_answered(3)
        await until(lambda: len(bot.calls) == 1)
        media = bot.calls[0].media
        media.send_pcm(tone(2.0))
        assert media.queued_s == pytest.approx(2.0, abs=0.05)
        await asyncio.sleep(0.2)
        dropped = media.flush()
        assert 1.5 < dropped < 1.95
        assert media.queued_s == 0
        bot.finish.set()
        await peer.events.bye_event.wait()
        assert bot.calls[0].end_reason == "local_bye"
    finally:
        await endpoint.stop()

"""The SIP endpoint over real UDP on loopback, with an aiosipua UAC + aiortp RTP as the trunk."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.support.sip_audio import tone
from tests.support.sip_uac import Bot, SipPeer, energy, offer_sdp, start_endpoint, until


@pytest.fixture
async def peer() -> AsyncIterator[SipPeer]:
    p = await SipPeer().start()
    yield p
    await p.close()


async def test_inbound_call_audio_both_ways_dtmf_and_caller_bye(peer: SipPeer) -> None:
    bot = Bot(greeting=tone(0.4))
    endpoint = await start_endpoint(bot)
    try:
        port = await peer.open_rtp(pt=8)
        outgoing = peer.invite(
            endpoint.local_addr, offer_sdp(port, (8, 0)), headers={"X-Agent": "a"}
        )
        await outgoing.wait_answered(10)
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
        await outgoing.wait_answered(10)
        await until(lambda: len(bot.calls) == 1)
        media = bot.calls[0].media
        media.send_pcm(tone(2.0))
        assert media.queued_s == pytest.approx(2.0, abs=0.05)
        await asyncio.sleep(0.2)
        dropped = media.flush()
        assert 0 < dropped <= 2.0  # however much the clock sent meanwhile (a slow machine)
        assert media.queued_s == 0
        bot.finish.set()
        await peer.events.bye_event.wait()
        assert bot.calls[0].end_reason == "local_bye"
    finally:
        await endpoint.stop()


async def test_an_end_callback_may_hang_up(peer: SipPeer) -> None:
    bot = Bot()
    endpoint = await start_endpoint(bot)
    try:
        port = await peer.open_rtp()
        outgoing = peer.invite(endpoint.local_addr, offer_sdp(port))
        await outgoing.wait_answered(10)
        await until(lambda: len(bot.calls) == 1)
        call = bot.calls[0]
        reasons: list[str] = []

        async def hang_up_too(reason: str) -> None:
            await call.hang_up()
            reasons.append(reason)

        call.on_end(hang_up_too)
        await asyncio.wait_for(call.hang_up(), 2)
        await until(lambda: reasons == ["local_bye"])
    finally:
        await endpoint.stop()


async def test_keys_sent_as_sip_info_reach_on_dtmf(peer: SipPeer) -> None:
    bot = Bot()
    endpoint = await start_endpoint(bot)
    try:
        port = await peer.open_rtp()
        outgoing = peer.invite(endpoint.local_addr, offer_sdp(port))
        await outgoing.wait_answered(10)
        await until(lambda: len(bot.calls) == 1)
        peer.uac.send_info(
            outgoing.dialog,
            "Signal=7\r\nDuration=160\r\n",
            "application/dtmf-relay",
            endpoint.local_addr,
        )
        peer.uac.send_info(outgoing.dialog, "#", "application/dtmf", endpoint.local_addr)
        await until(lambda: bot.digits == ["7", "#"])
    finally:
        await endpoint.stop()


async def test_our_bye_follows_the_record_route_in_order(peer: SipPeer) -> None:
    bot = Bot()
    endpoint = await start_endpoint(bot)
    try:
        port = await peer.open_rtp()
        routes = "<sip:p1.example;lr>, <sip:p2.example;lr>"
        outgoing = peer.invite(
            endpoint.local_addr, offer_sdp(port), headers={"Record-Route": routes}
        )
        await outgoing.wait_answered(10)
        await until(lambda: len(bot.calls) == 1)
        await bot.calls[0].hang_up()
        await until(lambda: any(raw.startswith(b"BYE ") for raw in peer.raw))
        bye = next(raw for raw in peer.raw if raw.startswith(b"BYE "))
        assert bye.index(b"Route: <sip:p1.example;lr>") < bye.index(b"Route: <sip:p2.example;lr>")
    finally:
        await endpoint.stop()

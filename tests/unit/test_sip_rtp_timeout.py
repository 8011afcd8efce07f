"""The RTP timeout counts only while the peer should send: not on its recvonly/inactive hold."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiosipua import SdpMessage

from tests.support.sip_uac import Bot, SipPeer, offer_sdp, start_endpoint, until


@pytest.fixture
async def peer() -> AsyncIterator[SipPeer]:
    p = await SipPeer().start()
    yield p
    await p.close()


def directed(sdp: SdpMessage, direction: str) -> SdpMessage:
    audio = sdp.audio
    assert audio is not None
    for d in ("sendrecv", "sendonly", "recvonly", "inactive"):
        audio.attributes.pop(d, None)
    audio.attributes[direction] = []
    return sdp


@pytest.mark.parametrize(
    ("offered", "answered"), [("recvonly", "sendonly"), ("inactive", "inactive")]
)
async def test_a_peer_that_said_it_will_not_send_is_not_timed_out_until_it_resumes(
    peer: SipPeer, offered: str, answered: str
) -> None:
    bot = Bot()
    endpoint = await start_endpoint(bot, rtp_timeout_s=0.6)
    try:
        port = await peer.open_rtp()  # bound, but the peer sends no RTP at all
        outgoing = peer.invite(endpoint.local_addr, directed(offer_sdp(port), offered))
        await outgoing.wait_answered(10)
        assert outgoing.sdp_answer is not None and outgoing.sdp_answer.audio is not None
        assert outgoing.sdp_answer.audio.direction == answered
        await until(lambda: len(bot.calls) == 1)
        await asyncio.sleep(1.5)  # over twice the timeout, in silence
        assert not bot.calls[0].ended

        before = outgoing.sdp_answer
        peer.uac.send_reinvite(outgoing.dialog, offer_sdp(port), endpoint.local_addr)  # sendrecv
        await until(lambda: outgoing.sdp_answer is not before)
        await until(lambda: bot.calls[0].ended, timeout_s=10)  # now the silence counts
        assert bot.calls[0].end_reason == "rtp_timeout"
    finally:
        await endpoint.stop()

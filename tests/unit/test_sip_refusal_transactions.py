"""A refused INVITE's server transaction: resent until ACKed, retransmitted INVITEs absorbed.

The peers: an aiosipua UAC, which (0.7.1) never ACKs a refusal (the lost-ACK case of
RFC 3261 §17.2.1; the ACK is then built as a real UAC does, transports.sip.refusal_ack),
and a SIPp caller that ACKs late (tests/sip/uac_refused.xml).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiosipua import SipRequest, SipResponse

from tests.support.sip_uac import Bot, SipPeer, offer_sdp, start_endpoint, until
from tests.support.sipp import run_sipp
from transports.sip.contracts import Refusal
from transports.sip.refusal_ack import RefusalAcks


@pytest.fixture
async def peer() -> AsyncIterator[SipPeer]:
    p = await SipPeer().start()
    yield p
    await p.close()


@pytest.fixture
def fast_timers(monkeypatch: pytest.MonkeyPatch) -> None:
    # 500 ms doubling to 4 s, for 32 s, on the wire; scaled down ten times here
    monkeypatch.setattr("transports.sip.refusals.T1", 0.05)
    monkeypatch.setattr("transports.sip.refusals.T2", 0.4)
    monkeypatch.setattr("transports.sip.refusals.TIMER_H", 3.2)


@pytest.mark.usefixtures("fast_timers")
async def test_a_refusal_is_resent_until_the_ack_and_a_retransmitted_invite_is_absorbed(
    peer: SipPeer,
) -> None:
    bot = Bot(refusal=Refusal(486, "Busy Here"))
    endpoint = await start_endpoint(bot)
    try:
        port = await peer.open_rtp()
        outgoing = peer.invite(endpoint.local_addr, offer_sdp(port))
        await until(lambda: len(peer.responses(486)) >= 3)  # no ACK: Timer G resends it
        first = peer.responses(486)[0]
        assert all(r.get_header("to") == first.get_header("to") for r in peer.responses(486))

        seen = len(peer.responses(486))
        peer.send_raw(bytes(outgoing.invite), endpoint.local_addr)  # the INVITE again
        await until(lambda: len(peer.responses(486)) > seen)
        assert len(bot.admitted) == 1  # the transaction answered it, not admission
        assert bot.calls == [] and not endpoint.calls

        assert isinstance(first, SipResponse)
        ack = RefusalAcks().ack_for(first, outgoing.invite)
        assert isinstance(ack, SipRequest)
        peer.transport.send(ack, endpoint.local_addr)
        await asyncio.sleep(0.1)
        acked = len(peer.responses(486))
        await asyncio.sleep(1.0)  # more than two T2 intervals
        assert len(peer.responses(486)) == acked
        assert len(bot.admitted) == 1
    finally:
        await endpoint.stop()


@pytest.mark.usefixtures("fast_timers")
async def test_without_an_ack_the_refusal_stops_at_timer_h(peer: SipPeer) -> None:
    bot = Bot(refusal=Refusal(503, "Service Unavailable", 30))
    endpoint = await start_endpoint(bot)
    try:
        port = await peer.open_rtp()
        peer.invite(endpoint.local_addr, offer_sdp(port))
        await until(lambda: len(peer.responses(503)) >= 2)
        assert peer.responses(503)[-1].get_header("retry-after") == "30"
        await asyncio.sleep(3.4)  # past Timer H
        stopped = len(peer.responses(503))
        await asyncio.sleep(0.9)
        assert len(peer.responses(503)) == stopped
        assert len(bot.admitted) == 1
    finally:
        await endpoint.stop()


async def test_a_new_invite_after_a_refusal_is_screened_again(peer: SipPeer) -> None:
    bot = Bot(refusal=Refusal(486, "Busy Here"))
    endpoint = await start_endpoint(bot)
    try:
        port = await peer.open_rtp()
        peer.invite(endpoint.local_addr, offer_sdp(port))
        await until(lambda: len(bot.admitted) == 1)
        bot.refusal = None
        outgoing = peer.invite(endpoint.local_addr, offer_sdp(port))  # a new call
        await outgoing.wait_answered(10)
        await until(lambda: len(bot.calls) == 1)
        assert len(bot.admitted) == 2
    finally:
        await endpoint.stop()


@pytest.mark.parametrize("status", ["403", "486"])
async def test_a_sipp_caller_acking_late_gets_the_refusal_again_then_no_more(status: str) -> None:
    # real timers here: 500 ms, then 1 s; SIPp fails the call on any refusal after its ACK
    bot = Bot(refusal=Refusal(486, "Busy Here"))
    trunks = ("10.0.0.0/8",) if status == "403" else ("127.0.0.0/8",)
    endpoint = await start_endpoint(bot, trunks=trunks)
    host, port = endpoint.local_addr
    try:
        result = await run_sipp("uac_refused.xml", f"{host}:{port}", fill={"status": status})
        result.assert_ok()
        invite, ack = result.sent("INVITE")[0], result.sent("ACK")[0]
        assert (invite.header("Via") or "").split("branch=")[1] == (
            (ack.header("Via") or "").split("branch=")[1]
        )
        acked = result.messages.index(ack)
        before = [m for m in result.messages[:acked] if m.status == int(status)]
        after = [m for m in result.messages[acked:] if m.status == int(status)]
        assert len(before) >= 2 and after == []  # resent (0.5 s, 1.5 s); none after the ACK
        assert len(bot.admitted) == (1 if status == "486" else 0)
    finally:
        await endpoint.stop()

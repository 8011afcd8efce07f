"""In-dialog behaviour of the SIP endpoint: hold/unhold, REFER, session timers, media guards."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest
from aiortp import RTPSession
from aiosipua import OutgoingCall, SdpMessage, SipRequest

from tests.support.sip_audio import tone
from tests.support.sip_uac import Bot, SipPeer, energy, offer_sdp, start_endpoint, until
from transports.sip.endpoint import SipEndpoint


@pytest.fixture
async def peer() -> AsyncIterator[SipPeer]:
    p = await SipPeer().start()
    yield p
    await p.close()


async def connect(
    peer: SipPeer, bot: Bot, headers: dict[str, str] | None = None, **overrides: object
) -> tuple[SipEndpoint, OutgoingCall]:
    endpoint = await start_endpoint(bot, **overrides)
    port = await peer.open_rtp()
    outgoing = peer.invite(endpoint.local_addr, offer_sdp(port), headers=headers)
    await outgoing.wait_answered(10)
    answer = outgoing.sdp_answer
    assert answer is not None and answer.rtp_address is not None and peer.rtp is not None
    peer.rtp.update_remote(answer.rtp_address)
    await until(lambda: len(bot.calls) == 1)
    return endpoint, outgoing


def directed(sdp: SdpMessage, direction: str, address: str | None = None) -> SdpMessage:
    audio = sdp.audio
    assert audio is not None
    for d in ("sendrecv", "sendonly", "recvonly", "inactive"):
        audio.attributes.pop(d, None)
    audio.attributes[direction] = []
    if address is not None:
        assert sdp.connection is not None
        sdp.connection.address = address
    return sdp


async def reinvite(
    peer: SipPeer, outgoing: OutgoingCall, sdp: SdpMessage, to: tuple[str, int]
) -> SdpMessage:
    before = outgoing.sdp_answer
    peer.uac.send_reinvite(outgoing.dialog, sdp, to)
    await until(lambda: outgoing.sdp_answer is not before)
    assert outgoing.sdp_answer is not None
    return outgoing.sdp_answer


def direction_of(sdp: SdpMessage) -> str:
    assert sdp.audio is not None
    return sdp.audio.direction


async def test_hold_and_unhold_answer_the_right_direction_and_media_resumes(peer: SipPeer) -> None:
    bot = Bot()
    endpoint, outgoing = await connect(peer, bot)
    addr = endpoint.local_addr
    try:
        call = bot.calls[0]
        first = outgoing.sdp_answer
        assert first is not None
        held = await reinvite(peer, outgoing, directed(offer_sdp(peer.rtp_port), "sendonly"), addr)
        assert direction_of(held) == "recvonly" and call.media.held
        assert int(held.origin.session_version) == int(first.origin.session_version) + 1
        assert held.origin.session_id == first.origin.session_id

        peer.heard.clear()
        call.media.send_pcm(tone(0.3))
        await asyncio.sleep(0.4)
        assert len(peer.heard) == 0  # nothing sent on hold

        inactive = await reinvite(
            peer, outgoing, directed(offer_sdp(peer.rtp_port), "inactive"), addr
        )
        assert direction_of(inactive) == "inactive"
        old_style = directed(offer_sdp(peer.rtp_port), "sendrecv", "0.0.0.0")
        await reinvite(peer, outgoing, old_style, addr)
        assert call.media.held

        resumed = await reinvite(peer, outgoing, offer_sdp(peer.rtp_port), addr)
        assert direction_of(resumed) == "sendrecv" and not call.media.held
        call.media.send_pcm(tone(0.3))
        await until(lambda: energy(bytes(peer.heard)) > 1000)
        assert not call.ended
    finally:
        await endpoint.stop()


async def test_a_malformed_reinvite_gets_400_and_leaves_the_dialog_alone(peer: SipPeer) -> None:
    bot = Bot()
    endpoint, outgoing = await connect(peer, bot)
    try:
        record = endpoint._uas._calls[outgoing.call_id]
        invite_before, cseq_before = record.invite, record.dialog.remote_cseq
        # From a side socket: aiosipua's UAC would end its own call on a 4xx to a re-INVITE
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as side:
            side.bind(("127.0.0.1", 0))
            side.settimeout(2)
            host, port = side.getsockname()
            bad = outgoing.dialog.create_request("INVITE", via_host=host, via_port=port)
            bad.headers.set_single("Content-Type", "application/sdp")
            bad.text = "v=0\r\nm=audio notaport RTP/AVP 0\r\n"
            side.sendto(bytes(bad), endpoint.local_addr)
            reply = await asyncio.get_running_loop().run_in_executor(None, side.recv, 65535)
        assert reply.startswith(b"SIP/2.0 400 Bad Request (SDP body)")
        assert record.invite is invite_before and record.dialog.remote_cseq == cseq_before
        assert not bot.calls[0].ended

        held = await reinvite(
            peer, outgoing, directed(offer_sdp(peer.rtp_port), "sendonly"), endpoint.local_addr
        )
        assert direction_of(held) == "recvonly"
    finally:
        await endpoint.stop()


def notify(
    peer: SipPeer, outgoing: OutgoingCall, to: tuple[str, int], status: int, reason: str
) -> None:
    host, port = peer.transport.local_addr
    request: SipRequest = outgoing.dialog.create_request("NOTIFY", via_host=host, via_port=port)
    request.headers.set_single("Event", "refer")
    request.headers.set_single("Subscription-State", "terminated;reason=noresource")
    request.headers.set_single("Content-Type", "message/sipfrag;version=2.0")
    request.text = f"SIP/2.0 {status} {reason}\r\n"
    peer.transport.send(request, to)


async def test_refer_succeeds_on_notify_200_and_the_peer_bye_is_a_transfer(peer: SipPeer) -> None:
    bot = Bot()
    endpoint, outgoing = await connect(peer, bot)
    try:
        call = bot.calls[0]
        transfer = asyncio.ensure_future(call.refer("sip:desk@192.0.2.10", timeout_s=10))
        await peer.events.refer_event.wait()
        assert peer.events.refers[0][1] == "sip:desk@192.0.2.10"
        notify(peer, outgoing, endpoint.local_addr, 180, "Ringing")
        notify(peer, outgoing, endpoint.local_addr, 200, "OK")
        outcome = await transfer
        assert outcome.ok and outcome.status == 200
        outgoing.hangup(peer.uac)
        await until(lambda: call.ended)
        assert call.end_reason == "transferred"
    finally:
        await endpoint.stop()


async def test_refer_failures_report_the_status(peer: SipPeer) -> None:
    bot = Bot()
    endpoint, outgoing = await connect(peer, bot)
    try:
        call = bot.calls[0]
        transfer = asyncio.ensure_future(call.refer("15550009999", timeout_s=10))
        await peer.events.refer_event.wait()
        assert peer.events.refers[0][1] == "sip:15550009999@127.0.0.1"
        notify(peer, outgoing, endpoint.local_addr, 486, "Busy Here 15550009999")
        outcome = await transfer
        assert not outcome.ok and outcome.status == 486
        assert "1555" not in outcome.reason  # the peer's free text is not kept (logs, record)

        peer.uas.on_refer = None  # the peer refuses REFER (501)
        refused = await call.refer("sip:desk@192.0.2.10", timeout_s=10)
        assert not refused.ok and refused.status == 501
        assert not call.ended
    finally:
        await endpoint.stop()


async def test_session_expires_without_refresh_ends_the_call_with_bye(peer: SipPeer) -> None:
    bot = Bot()
    headers = {"Session-Expires": "2;refresher=uac", "Supported": "timer"}
    endpoint, outgoing = await connect(peer, bot, headers, session_expires_s=2, session_min_se_s=1)
    try:
        assert outgoing._session_timer is not None  # the peer was told to refresh ...
        outgoing._cancel_session_timer()  # ... and goes silent
        await asyncio.wait_for(peer.events.bye_event.wait(), 4)
        await until(lambda: bot.calls[0].ended)
        assert bot.calls[0].end_reason == "session_expired"
    finally:
        await endpoint.stop()


async def test_rtp_from_another_host_is_dropped_and_silence_times_out(peer: SipPeer) -> None:
    bot = Bot()
    endpoint, outgoing = await connect(peer, bot, rtp_timeout_s=1.0)
    try:
        answer = outgoing.sdp_answer
        assert answer is not None and answer.rtp_address is not None
        stranger = await RTPSession.create(
            local_addr=("127.0.0.2", 0), remote_addr=answer.rtp_address, payload_type=0
        )
        try:
            for _ in range(10):
                stranger.send_audio_pcm_auto(tone(0.02))
            media = endpoint.calls[outgoing.call_id].media
            await until(lambda: media.stats["foreign_dropped"] >= 10)
            assert len(bot.audio) == 0
        finally:
            await stranger.close()
        await until(lambda: bot.calls[0].ended, timeout_s=4)
        assert bot.calls[0].end_reason == "rtp_timeout"
        await asyncio.wait_for(peer.events.bye_event.wait(), 2)
    finally:
        await endpoint.stop()


async def test_the_endpoint_refreshes_the_session_when_it_is_the_refresher(peer: SipPeer) -> None:
    bot = Bot()
    endpoint, outgoing = await connect(peer, bot, session_expires_s=2, session_min_se_s=1)
    try:
        await until(lambda: sum(raw.startswith(b"UPDATE ") for raw in peer.raw) >= 2, 4)
        assert not bot.calls[0].ended
        assert outgoing.dialog.state.value == "confirmed"
    finally:
        await endpoint.stop()


async def test_a_retransmitted_invite_after_the_200_is_absorbed(peer: SipPeer) -> None:
    bot = Bot()
    endpoint, outgoing = await connect(peer, bot)
    try:
        peer.transport.send(outgoing.invite, endpoint.local_addr)
        await asyncio.sleep(0.3)
        assert peer.responses(481) == []
        assert len(bot.calls) == 1 and not bot.calls[0].ended
    finally:
        await endpoint.stop()


async def test_in_dialog_options_and_errors_carry_one_to_tag(peer: SipPeer) -> None:
    bot = Bot()
    endpoint, outgoing = await connect(peer, bot)
    try:
        host, port = peer.transport.local_addr
        options = outgoing.dialog.create_request("OPTIONS", via_host=host, via_port=port)
        peer.transport.send(options, endpoint.local_addr)
        stray = outgoing.dialog.create_request("BYE", via_host=host, via_port=port)
        stray.headers.set_single("Call-ID", "no-such-call")
        peer.transport.send(stray, endpoint.local_addr)
        await until(lambda: bool(peer.responses(200)) and bool(peer.responses(481)))
        for answer in peer.responses(200) + peer.responses(481):
            assert (answer.get_header("to") or "").count("tag=") == 1
    finally:
        await endpoint.stop()

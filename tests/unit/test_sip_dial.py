"""Outbound calls and REGISTER from the SIP endpoint, against an aiosipua peer on loopback."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest
from aiosipua import IncomingCall, Registration, SipRequest, SipResponse, build_sdp

from simulator.ports import free_rtp_port
from tests.support.sip_audio import tone
from tests.support.sip_uac import Bot, SipPeer, energy, start_endpoint, until
from transports.sip.dialing import SipDialError
from transports.sip.trunks import DigestChallenger


@pytest.fixture
async def peer() -> AsyncIterator[SipPeer]:
    p = await SipPeer().start()
    yield p
    await p.close()


def callee_uri(peer: SipPeer) -> str:
    host, port = peer.transport.local_addr
    return f"sip:15550002222@{host}:{port}"


async def test_dial_with_digest_auth_audio_and_hang_up(peer: SipPeer) -> None:
    port = await peer.open_rtp()
    challenger = DigestChallenger("trunk", "s3", "carrier")

    def answer(incoming: IncomingCall) -> None:
        if not challenger.verify(incoming.invite, incoming.source_addr[0]):
            www = challenger.challenge(incoming.source_addr[0])
            incoming._send_response(401, "Unauthorized", extra_headers={"WWW-Authenticate": www})
            incoming.dialog.terminate()
            return
        incoming.ringing()
        assert incoming.sdp_offer is not None and incoming.sdp_offer.rtp_address is not None
        assert peer.rtp is not None
        peer.rtp.update_remote(incoming.sdp_offer.rtp_address)
        incoming.accept(build_sdp("127.0.0.1", port, 0, "PCMU"))

    peer.on_invite = answer
    endpoint = await start_endpoint(Bot(), username="trunk", password="s3", caller_id="15550003333")
    try:
        call = await endpoint.dial(callee_uri(peer), headers={"X-Campaign": "c1"}, timeout_s=10)
        assert call.direction == "outbound" and call.invite.callee == "15550002222"
        assert call.invite.caller == "15550003333"
        assert call.invite.headers == {"x-campaign": "c1"}
        authorised = peer.events.invites[-1].invite
        assert authorised.get_header("authorization") is not None
        assert authorised.get_header("x-campaign") == "c1"

        heard = bytearray()
        call.media.on_audio = heard.extend
        call.media.send_pcm(tone(0.3))
        await peer.send_pcm(tone(0.3), paced=True)
        await until(lambda: energy(bytes(heard)) > 1000 and energy(bytes(peer.heard)) > 1000)

        await call.hang_up()
        assert call.end_reason == "local_bye"
        await asyncio.wait_for(peer.events.bye_event.wait(), 2)
        host, sip_port = peer.transport.local_addr
        bye = next(raw for raw in peer.raw if raw.startswith(b"BYE "))
        assert bye.startswith(f"BYE sip:{host}:{sip_port} SIP/2.0".encode())  # the 200's Contact
        await until(lambda: not endpoint.calls)
    finally:
        await endpoint.stop()


async def test_remote_bye_ends_an_outbound_call(peer: SipPeer) -> None:
    port = await peer.open_rtp()
    peer.on_invite = lambda incoming: incoming.accept(build_sdp("127.0.0.1", port, 8, "PCMA"))
    endpoint = await start_endpoint(Bot())
    try:
        call = await endpoint.dial(callee_uri(peer), timeout_s=10)
        assert call.media.payload_type == 8
        incoming = peer.events.invites[-1]
        incoming.hangup()
        await until(lambda: call.ended)
        assert call.end_reason == "remote_bye"
    finally:
        await endpoint.stop()


@pytest.mark.parametrize(("status", "retryable"), [(486, True), (480, True), (603, False)])
async def test_dial_failures_carry_the_status(peer: SipPeer, status: int, retryable: bool) -> None:
    peer.on_invite = lambda incoming: incoming.reject(status)
    endpoint = await start_endpoint(Bot())
    try:
        with pytest.raises(SipDialError) as failure:
            await endpoint.dial(callee_uri(peer), timeout_s=10)
        assert failure.value.status == status and failure.value.retryable is retryable
    finally:
        await endpoint.stop()


async def test_an_answered_dial_without_rtp_is_ended_and_frees_its_port(peer: SipPeer) -> None:
    port = await peer.open_rtp()
    squatter = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    answered: list[str] = []

    def answer_after_taking_the_offered_port(incoming: IncomingCall) -> None:
        offer = incoming.sdp_offer
        assert offer is not None and offer.rtp_address is not None
        if not answered:  # the first call only
            squatter.bind(("127.0.0.1", offer.rtp_address[1]))
        answered.append(incoming.call_id)
        incoming.accept(build_sdp("127.0.0.1", port, 0, "PCMU"))

    peer.on_invite = answer_after_taking_the_offered_port
    low = free_rtp_port()
    endpoint = await start_endpoint(Bot(), rtp_ports=(low, low + 1))  # one RTP port pair
    try:
        with pytest.raises(SipDialError) as failure:
            await endpoint.dial(callee_uri(peer), timeout_s=10)
        assert failure.value.status == 503 and failure.value.retryable
        await asyncio.wait_for(peer.events.bye_event.wait(), 5)
        assert not endpoint.calls
        squatter.close()
        call = await endpoint.dial(callee_uri(peer), timeout_s=10)  # the port was given back
        await call.hang_up()
    finally:
        squatter.close()
        await endpoint.stop()


async def test_unanswered_dial_is_cancelled_as_408(peer: SipPeer) -> None:
    cancelled = asyncio.Event()
    peer.on_invite = lambda incoming: incoming.ringing()
    peer.uas.on_cancel = lambda _request, _addr: cancelled.set()
    endpoint = await start_endpoint(
        Bot(), outbound_proxy="{}:{}".format(*peer.transport.local_addr)
    )
    try:
        with pytest.raises(SipDialError) as failure:
            await endpoint.dial("sip:15550002222@carrier.invalid", timeout_s=0.5)
        assert failure.value.status == 408 and failure.value.retryable
        await asyncio.wait_for(cancelled.wait(), 2)
    finally:
        await endpoint.stop()


async def test_register_with_digest_is_kept_alive(peer: SipPeer) -> None:
    challenger = DigestChallenger("trunk", "s3", "carrier")
    granted: list[SipRequest] = []

    def registrar(request: SipRequest, addr: tuple[str, int]) -> bool:
        if request.method != "REGISTER":
            return False
        response = SipResponse(status_code=200, reason_phrase="OK")
        if not challenger.verify(request, addr[0]):
            response = SipResponse(status_code=401, reason_phrase="Unauthorized")
            response.headers.set_single("WWW-Authenticate", challenger.challenge(addr[0]))
        else:
            granted.append(request)
            response.headers.set_single("Contact", f"{request.get_header('contact')};expires=1")
        for via in request.headers.get("via"):
            response.headers.append("Via", via)
        for name in ("from", "to", "call-id", "cseq"):
            response.headers.set_single(name, request.get_header(name) or "")
        peer.transport.send(response, addr)
        return True

    peer.on_request = registrar
    registrar_addr = "{}:{}".format(*peer.transport.local_addr)
    endpoint = await start_endpoint(
        Bot(), registrar=registrar_addr, username="trunk", password="s3", register_expires_s=1
    )
    try:
        registration = endpoint.registration
        assert registration is not None
        await until(lambda: registration.registered)
        await until(lambda: len(granted) >= 3, timeout_s=4)  # refreshed before expiry
        assert granted[0].get_header("expires") == "1"
        # A refresh is REGISTERING until its 200 arrives (the registrar logs the grant first).
        await until(lambda: registration.registered)
        assert registration.attempts == 1  # refreshed in place, never lost and registered anew
    finally:
        await endpoint.stop()


async def test_the_callee_can_hold_an_outbound_call(peer: SipPeer) -> None:
    port = await peer.open_rtp()
    peer.on_invite = lambda incoming: incoming.accept(build_sdp("127.0.0.1", port, 0, "PCMU"))
    endpoint = await start_endpoint(Bot())
    try:
        call = await endpoint.dial(callee_uri(peer), timeout_s=10)
        incoming = peer.events.invites[-1]
        hold = build_sdp("127.0.0.1", port, 0, "PCMU")
        assert hold.audio is not None
        hold.audio.attributes.pop("sendrecv", None)
        hold.audio.attributes["sendonly"] = []
        peer.uac.send_reinvite(incoming.dialog, hold, endpoint.local_addr)
        await until(lambda: call.media.held)
        answers = [r for r in peer.responses(200) if b"a=recvonly" in r.body]
        assert len(answers) == 1
    finally:
        await endpoint.stop()


async def test_a_refused_register_is_tried_again(peer: SipPeer) -> None:
    statuses = iter([403, 200])
    seen: list[int] = []

    def registrar(request: SipRequest, addr: tuple[str, int]) -> bool:
        if request.method != "REGISTER":
            return False
        status = next(statuses, 200)
        seen.append(status)
        response = SipResponse(status_code=status, reason_phrase="OK" if status == 200 else "No")
        for via in request.headers.get("via"):
            response.headers.append("Via", via)
        for name in ("from", "to", "call-id", "cseq"):
            response.headers.set_single(name, request.get_header(name) or "")
        response.headers.set_single("Expires", "300")
        peer.transport.send(response, addr)
        return True

    peer.on_request = registrar
    registrar_addr = "{}:{}".format(*peer.transport.local_addr)
    endpoint = await start_endpoint(Bot(), registrar=registrar_addr, register_retry_s=0.3)
    try:
        registration = endpoint.registration
        assert registration is not None
        await until(lambda: registration.registered)
        assert seen[:2] == [403, 200] and registration.granted_expires == 300
    finally:
        await endpoint.stop()


async def test_a_register_that_cannot_be_sent_is_tried_again(
    peer: SipPeer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def registrar(request: SipRequest, addr: tuple[str, int]) -> bool:
        if request.method != "REGISTER":
            return False
        response = SipResponse(status_code=200, reason_phrase="OK")
        for via in request.headers.get("via"):
            response.headers.append("Via", via)
        for name in ("from", "to", "call-id", "cseq"):
            response.headers.set_single(name, request.get_header(name) or "")
        response.headers.set_single("Expires", "300")
        peer.transport.send(response, addr)
        return True

    original = Registration.register
    failures = iter([OSError("no route to the registrar")])

    def register_once_failing(self: Registration) -> None:
        failure = next(failures, None)
        if failure is not None:
            raise failure
        original(self)

    monkeypatch.setattr(Registration, "register", register_once_failing)
    peer.on_request = registrar
    registrar_addr = "{}:{}".format(*peer.transport.local_addr)
    endpoint = await start_endpoint(Bot(), registrar=registrar_addr, register_retry_s=0.3)
    try:
        registration = endpoint.registration
        assert registration is not None
        await until(lambda: registration.registered)
        assert registration.attempts >= 2
    finally:
        await endpoint.stop()


async def test_an_answer_crossing_our_cancel_is_acked_and_ended(peer: SipPeer) -> None:
    port = await peer.open_rtp()
    ringing: list[IncomingCall] = []

    def ring(incoming: IncomingCall) -> None:
        incoming.ringing()
        ringing.append(incoming)

    def answer_instead_of_cancelling(request: SipRequest, _addr: tuple[str, int]) -> bool:
        if request.method != "CANCEL" or not ringing:
            return False
        ringing[0].accept(build_sdp("127.0.0.1", port, 0, "PCMU"))  # the 200 was on its way
        return True

    peer.on_invite = ring
    peer.on_request = answer_instead_of_cancelling
    endpoint = await start_endpoint(Bot())
    try:
        with pytest.raises(SipDialError) as failure:
            await endpoint.dial(callee_uri(peer), timeout_s=0.5)
        assert failure.value.status == 408
        await asyncio.wait_for(peer.events.bye_event.wait(), 10)  # not left on a dead line
        assert any(raw.startswith(b"ACK ") for raw in peer.raw)
        assert not endpoint.calls
    finally:
        await endpoint.stop()

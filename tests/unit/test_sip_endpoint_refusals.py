"""Who the SIP endpoint refuses and how: 403, 401 digest, 486/503 from admission, 488, 400."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import pytest
from aiosipua import SipDigestAuth, serialize_sdp

from simulator.ports import free_rtp_port
from tests.support.sip_uac import Bot, SipPeer, offer_sdp, start_endpoint, until
from transports.sip.contracts import Refusal


@pytest.fixture
async def peer() -> AsyncIterator[SipPeer]:
    p = await SipPeer().start()
    yield p
    await p.close()


async def rejected(peer: SipPeer, endpoint_addr: tuple[str, int], **kwargs: object) -> int:
    """INVITE the endpoint and return the final status it refused with."""
    port = await peer.open_rtp()
    offer = kwargs.pop("offer", offer_sdp(port))
    outgoing = peer.invite(endpoint_addr, offer, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError):
        await outgoing.wait_answered(10)
    return outgoing._reject_code


async def test_unknown_source_gets_403_before_admission(peer: SipPeer) -> None:
    bot = Bot()
    endpoint = await start_endpoint(bot, trunks=("10.0.0.0/8",))
    try:
        assert await rejected(peer, endpoint.local_addr) == 403
        assert bot.admitted == [] and bot.calls == []
    finally:
        await endpoint.stop()


async def test_digest_challenge_then_the_right_password_is_answered(peer: SipPeer) -> None:
    bot = Bot()
    endpoint = await start_endpoint(bot, trunks=("127.0.0.0/8",), username="trunk", password="s3")
    try:
        status = await rejected(peer, endpoint.local_addr, auth=SipDigestAuth("trunk", "wrong"))
        assert status == 401
        challenge = peer.responses(401)[0].get_header("www-authenticate") or ""
        assert 'realm="callagent"' in challenge and "nonce=" in challenge
        assert bot.admitted == []

        port = await peer.open_rtp()
        outgoing = peer.invite(
            endpoint.local_addr, offer_sdp(port), auth=SipDigestAuth("trunk", "s3")
        )
        await outgoing.wait_answered(10)
        await until(lambda: len(bot.calls) == 1)
        assert len(bot.admitted) == 1
    finally:
        await endpoint.stop()


@pytest.mark.parametrize(
    ("refusal", "retry_after"),
    [(Refusal(486, "Busy Here"), None), (Refusal(503, "Service Unavailable", 30), "30")],
)
async def test_admission_refusals_are_sent(
    peer: SipPeer, refusal: Refusal, retry_after: str | None
) -> None:
    bot = Bot(refusal=refusal)
    endpoint = await start_endpoint(bot)
    try:
        assert await rejected(peer, endpoint.local_addr) == refusal.status
        assert peer.responses(refusal.status)[0].get_header("retry-after") == retry_after
        assert bot.calls == [] and not endpoint.calls
    finally:
        await endpoint.stop()


async def test_no_common_codec_is_488(peer: SipPeer) -> None:
    bot = Bot()
    endpoint = await start_endpoint(bot)
    try:
        port = await peer.open_rtp()
        assert await rejected(peer, endpoint.local_addr, offer=offer_sdp(port, (18, 9))) == 488
        named = offer_sdp(port)
        assert named.connection is not None
        named.connection.address = "media.example.invalid"  # RTP goes to an IP, not a name
        assert await rejected(peer, endpoint.local_addr, offer=named) == 488
        assert bot.calls == []
    finally:
        await endpoint.stop()


def _exchange(data: bytes, addr: tuple[str, int], wait_s: float = 0.5) -> bytes | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(wait_s)
        sock.sendto(data, addr)
        try:
            return sock.recvfrom(65535)[0]
        except TimeoutError:
            return None


def _invite(cseq: str, body: str = "") -> bytes:
    lines = [
        "INVITE sip:agent@127.0.0.1 SIP/2.0",
        "Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK-raw1",
        "From: <sip:15550001111@127.0.0.1>;tag=abc",
        "To: <sip:agent@127.0.0.1>",
        "Call-ID: raw-call-1",
        f"CSeq: {cseq}",
        "Max-Forwards: 70",
        "Content-Type: application/sdp",
        f"Content-Length: {len(body)}",
        "",
        body,
    ]
    return "\r\n".join(lines).encode()


async def test_malformed_requests_get_400_and_oversized_are_dropped() -> None:
    bot = Bot()
    endpoint = await start_endpoint(bot, max_message_bytes=4096)
    addr = endpoint.local_addr
    try:
        loop = asyncio.get_running_loop()
        bad_cseq = await loop.run_in_executor(None, _exchange, _invite("abc INVITE"), addr)
        assert bad_cseq is not None and bad_cseq.startswith(b"SIP/2.0 400 Bad Request (CSeq)")
        assert b"Call-ID: raw-call-1" in bad_cseq

        bad_sdp = _invite("1 INVITE", "v=0\r\nm=audio notaport RTP/AVP 0\r\n")
        reply = await loop.run_in_executor(None, _exchange, bad_sdp, addr)
        assert reply is not None and reply.startswith(b"SIP/2.0 400 Bad Request (SDP body)")

        version = _invite("1 INVITE").replace(b" SIP/2.0\r\n", b" SIP/3.0\r\n", 1)
        reply = await loop.run_in_executor(None, _exchange, version, addr)
        assert reply is not None and reply.startswith(b"SIP/2.0 505")

        garbage = b"INVITE\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK-x\r\n\r\n"
        reply = await loop.run_in_executor(None, _exchange, garbage, addr)
        assert reply is not None and reply.startswith(b"SIP/2.0 400")

        huge = _invite("1 INVITE", "a=x\r\n" * 2000)
        assert await loop.run_in_executor(None, _exchange, huge, addr) is None
        assert endpoint.counters["oversized"] == 1
        assert bot.admitted == []

        ok = SipPeer()
        await ok.start()
        try:
            port = await ok.open_rtp()
            outgoing = ok.invite(addr, offer_sdp(port))
            await outgoing.wait_answered(10)  # the endpoint is alive and well
        finally:
            await ok.close()
    finally:
        await endpoint.stop()


async def test_credentials_only_for_the_carrier_do_not_challenge_its_invites(peer: SipPeer) -> None:
    bot = Bot()
    endpoint = await start_endpoint(
        bot, trunks=("127.0.0.1/32",), username="trunk", password="s3", challenge_inbound=False
    )
    try:
        port = await peer.open_rtp()
        outgoing = peer.invite(endpoint.local_addr, offer_sdp(port))
        await outgoing.wait_answered(10)
        assert peer.responses(401) == []
    finally:
        await endpoint.stop()


async def test_an_invite_cancelled_while_media_is_set_up_is_never_answered(peer: SipPeer) -> None:
    bot = Bot()
    endpoint = await start_endpoint(bot)
    try:
        port = await peer.open_rtp()
        outgoing = peer.invite(endpoint.local_addr, offer_sdp(port))
        peer.uac.send_cancel(outgoing)  # the INVITE and the CANCEL leave back to back
        await until(lambda: bool(peer.responses(487)))
        await asyncio.sleep(0.2)
        assert [r.get_header("cseq") for r in peer.responses(200)] == ["1 CANCEL"]
        assert bot.calls == [] and not endpoint.calls
    finally:
        await endpoint.stop()


async def test_a_cancel_crossing_the_200_leaves_the_call_up() -> None:
    bot = Bot()
    endpoint = await start_endpoint(bot)
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
        raw.bind(("127.0.0.1", 0))
        raw.setblocking(False)
        port = raw.getsockname()[1]

        async def exchange(request: bytes) -> list[bytes]:
            await loop.sock_sendto(raw, request, endpoint.local_addr)
            replies: list[bytes] = []
            with contextlib.suppress(TimeoutError):
                while True:
                    replies.append((await asyncio.wait_for(loop.sock_recvfrom(raw, 65535), 0.3))[0])
            return replies

        def request(method: str, cseq: str, to_tag: str = "", body: str = "") -> bytes:
            head = _invite(cseq, body).replace(b"INVITE sip:", method.encode() + b" sip:", 1)
            head = head.replace(b"127.0.0.1:5999", f"127.0.0.1:{port}".encode())
            if to_tag:
                head = head.replace(
                    b"To: <sip:agent@127.0.0.1>",
                    b"To: <sip:agent@127.0.0.1>;tag=" + to_tag.encode(),
                )
            return head

        try:
            sdp = serialize_sdp(offer_sdp(free_rtp_port()))
            replies = await exchange(request("INVITE", "1 INVITE", body=sdp))
            ok = next(r for r in replies if r.startswith(b"SIP/2.0 200"))
            to_line = next(line for line in ok.split(b"\r\n") if line.startswith(b"To:"))
            to_tag = to_line.split(b";tag=", 1)[1].decode()
            replies = await exchange(request("CANCEL", "1 CANCEL"))
            assert any(r.startswith(b"SIP/2.0 200") and b"CANCEL" in r for r in replies)
            assert not any(r.startswith(b"SIP/2.0 487") for r in replies)
            await exchange(request("ACK", "1 ACK", to_tag))
            assert len(bot.calls) == 1 and not bot.calls[0].ended

            replies = await exchange(request("BYE", "2 BYE", to_tag))
            assert any(r.startswith(b"SIP/2.0 200") for r in replies), replies
            await until(lambda: bot.calls[0].ended)
            assert bot.calls[0].end_reason == "remote_bye"
        finally:
            await endpoint.stop()


async def test_a_200_never_acknowledged_ends_the_call(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("aiosipua.transaction.TIMER_H", 0.6)  # 32 s on the wire
    monkeypatch.setattr("aiosipua.transaction.T1", 0.1)
    bot = Bot()
    endpoint = await start_endpoint(bot)
    loop = asyncio.get_running_loop()
    try:
        sdp = serialize_sdp(offer_sdp(free_rtp_port()))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
            raw.bind(("127.0.0.1", 0))
            raw.setblocking(False)
            invite = _invite("1 INVITE", sdp).replace(
                b"127.0.0.1:5999", f"127.0.0.1:{raw.getsockname()[1]}".encode()
            )
            await loop.sock_sendto(raw, invite, endpoint.local_addr)
            await until(lambda: len(bot.calls) == 1)
            await until(lambda: bot.calls[0].ended, timeout_s=10)
        assert bot.calls[0].end_reason == "ack_timeout"
        await until(lambda: not endpoint.calls)
    finally:
        await endpoint.stop()

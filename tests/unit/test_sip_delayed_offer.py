"""Delayed offer: a SIPp caller INVITEs without SDP, the 200 carries our offer, the ACK answers."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
from pathlib import Path

from aiosipua import build_sdp, serialize_sdp

from simulator.ports import free_rtp_port
from tests.support.sip_audio import dominant_hz, tone, write_tone_wav
from tests.support.sip_uac import Bot, energy, start_endpoint, until
from tests.support.sipp import run_sipp


async def test_an_offerless_invite_is_offered_in_the_200_and_answered_in_the_ack(
    tmp_path: Path,
) -> None:
    bot = Bot(greeting=tone(3.0, 1000.0))
    endpoint = await start_endpoint(bot)
    host, port = endpoint.local_addr
    try:
        result = await run_sipp(
            "uac_delayed_offer.xml",
            f"{host}:{port}",
            audio_wav=write_tone_wav(tmp_path / "caller.wav"),
            extra_args=["-d", "1500"],
        )
        result.assert_ok()
        offer = result.received(200)[0].body
        assert re.search(r"^m=audio \d+ RTP/AVP 0 8 101", offer, re.M), offer
        assert "a=rtpmap:8 PCMA/8000" in offer and "telephone-event/8000" in offer
        assert len(bot.admitted) == 1 and len(bot.calls) == 1
        heard = bytes(bot.audio)  # the call's media follows the ACK's answer
        assert len(heard) >= 320 * 25 and energy(heard) > 1000
        assert abs(dominant_hz(heard) - 440.0) < 15
        await until(lambda: bot.calls[0].ended)
        assert bot.calls[0].end_reason == "remote_bye"
    finally:
        await endpoint.stop()


async def test_an_ack_answer_with_no_common_codec_gets_a_bye() -> None:
    bot = Bot()
    endpoint = await start_endpoint(bot)
    host, port = endpoint.local_addr
    try:
        result = await run_sipp("uac_delayed_offer_no_codec.xml", f"{host}:{port}")
        result.assert_ok()
        assert result.received("BYE")
        assert bot.calls == [] and not endpoint.calls
        assert not endpoint._uas._calls  # the dialog is gone
    finally:
        await endpoint.stop()


async def test_a_cancel_crossing_the_offer_in_the_200_leaves_the_call_to_the_ack() -> None:
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
            to = "<sip:agent@127.0.0.1>" + (f";tag={to_tag}" if to_tag else "")
            lines = [
                f"{method} sip:agent@127.0.0.1 SIP/2.0",
                f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-delayed1",
                "From: <sip:15550001111@127.0.0.1>;tag=abc",
                f"To: {to}",
                "Call-ID: delayed-cancel-1",
                f"CSeq: {cseq}",
                "Max-Forwards: 70",
                f"Contact: <sip:caller@127.0.0.1:{port}>",
                *(["Content-Type: application/sdp"] if body else []),
                f"Content-Length: {len(body)}",
                "",
                body,
            ]
            return "\r\n".join(lines).encode()

        try:
            replies = await exchange(request("INVITE", "1 INVITE"))
            ok = next(r for r in replies if r.startswith(b"SIP/2.0 200"))
            assert b"m=audio" in ok  # our offer
            to_tag = ok.split(b"\r\nTo:", 1)[1].split(b"\r\n")[0].split(b";tag=")[1].decode()
            replies = await exchange(request("CANCEL", "1 CANCEL"))
            assert any(r.startswith(b"SIP/2.0 200") and b"CANCEL" in r for r in replies)
            answer = serialize_sdp(build_sdp("127.0.0.1", free_rtp_port(), 0, "PCMU"))
            await exchange(request("ACK", "1 ACK", to_tag, answer))
            await until(lambda: len(bot.calls) == 1)
            replies = await exchange(request("BYE", "2 BYE", to_tag))
            assert any(r.startswith(b"SIP/2.0 200") for r in replies), replies
            await until(lambda: bot.calls[0].ended)
            assert bot.calls[0].end_reason == "remote_bye"
        finally:
            await endpoint.stop()

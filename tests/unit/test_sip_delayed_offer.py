"""Delayed offer: a SIPp caller INVITEs without SDP, the 200 carries our offer, the ACK answers."""

from __future__ import annotations

import re
from pathlib import Path

from tests.support.sip_audio import dominant_hz, write_tone_wav
from tests.support.sip_uac import Bot, energy, start_endpoint, tone, until
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

"""The SIP endpoint's outbound calls (``dial``) against real SIPp callees (tests/sip/uas_*.xml).

Answered (audio both ways, our BYE), refused with a final status, unanswered (our CANCEL).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.support.sip_audio import dominant_hz, tone, write_tone_wav
from tests.support.sip_uac import Bot, start_endpoint, until
from tests.support.sipp import Sipp
from transports.sip.dialing import SipDialError

TONE_HZ = 440.0


@pytest.fixture
def bot() -> Bot:
    return Bot()


async def test_dial_a_sipp_callee_with_audio(bot: Bot, tmp_path: Path) -> None:
    caller_wav = write_tone_wav(tmp_path / "callee.wav", hz=TONE_HZ)
    endpoint = await start_endpoint(bot, caller_id="15550001234")
    try:
        async with Sipp("uas_answer.xml", audio_wav=caller_wav) as callee:
            call = await endpoint.dial(callee.uri("15550009999"), timeout_s=5)
            heard = bytearray()
            call.media.on_audio = heard.extend
            call.media.send_pcm(tone(0.5, 1000.0))
            await until(lambda: len(heard) >= 320 * 25)
            await call.hang_up()
            answered = await callee.wait()
        answered.assert_ok()
        invite = answered.received("INVITE")[0]
        assert "15550001234" in (invite.header("From") or "")
        assert answered.received("BYE")
        assert abs(dominant_hz(bytes(heard)) - TONE_HZ) < 15
        assert call.end_reason == "local_bye"
    finally:
        await endpoint.stop()


@pytest.mark.parametrize(
    ("status", "reason"),
    [(486, "Busy Here"), (480, "Temporarily Unavailable"), (404, "Not Found"), (603, "Decline")],
)
async def test_dial_refused_by_a_sipp_callee(bot: Bot, status: int, reason: str) -> None:
    endpoint = await start_endpoint(bot)
    try:
        async with Sipp("uas_reject.xml", fill={"status": str(status), "reason": reason}) as callee:
            with pytest.raises(SipDialError) as refused:
                await endpoint.dial(callee.uri(), timeout_s=5)
            answered = await callee.stop()
        assert answered.sent(status), answered.explain()
        assert refused.value.status == status
        assert not endpoint.calls
    finally:
        await endpoint.stop()


async def test_dial_refusal_is_acknowledged(bot: Bot) -> None:
    endpoint = await start_endpoint(bot)
    try:
        async with Sipp("uas_reject.xml", fill={"status": "486", "reason": "Busy Here"}) as callee:
            with pytest.raises(SipDialError):
                await endpoint.dial(callee.uri(), timeout_s=5)
            await asyncio.sleep(1.0)
            answered = await callee.stop()
        assert answered.received("ACK"), answered.explain()
    finally:
        await endpoint.stop()


async def test_dial_unanswered_is_cancelled(bot: Bot) -> None:
    endpoint = await start_endpoint(bot)
    try:
        async with Sipp("uas_no_answer.xml") as callee:
            with pytest.raises(SipDialError) as unanswered:
                await endpoint.dial(callee.uri(), timeout_s=1)
            await asyncio.sleep(0.3)
            answered = await callee.stop()
        assert answered.received("CANCEL") and answered.sent(487), answered.explain()
        assert unanswered.value.status in (408, 487)
        assert not endpoint.calls
    finally:
        await endpoint.stop()

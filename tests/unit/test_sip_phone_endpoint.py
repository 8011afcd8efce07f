"""The simulator's SIP phone calling the agent's real SIP endpoint (transports/sip) on loopback.

The endpoint runs a tiny handler (tests/support/sip_uac.py ``Bot``): it plays a greeting,
records what the caller sent and keyed, and ends when told. What a scenario relies on
is checked here: the greeting heard at the phone, the caller's voice and RFC 4733 keys
delivered, a barge-in (the bot's queued audio flushed) seen as the bot stopping at the
phone, BYE either way, and the trunk's refusals (403, digest 401) surfacing as statuses.
"""

from __future__ import annotations

import asyncio

import pytest

from simulator.phone import SipCallEmulator, SipCallRejectedError
from tests.support.sip_audio import tone
from tests.support.sip_uac import Bot, energy, start_endpoint, until


def uri(endpoint) -> str:
    host, port = endpoint.local_addr
    return f"sip:agent@{host}:{port}"


async def test_greeting_voice_keys_barge_in_and_the_callers_bye():
    bot = Bot(greeting=tone(0.5))
    endpoint = await start_endpoint(bot)
    try:
        call = SipCallEmulator(uri(endpoint), from_number="+15550001111")
        await call.connect(timeout_s=5)
        await until(lambda: len(bot.calls) == 1)
        agent_call = bot.calls[0]
        assert bot.admitted[0].caller == "+15550001111"

        start = await call.wait_for_bot_speech_start(timeout=5)
        end = await call.wait_for_bot_silence(0.4, timeout=5)
        assert end - start > 0.3  # the greeting, heard at the phone

        await call.say(tone(0.4, hz=300))
        await until(lambda: energy(bytes(bot.audio)) > 1000)
        await call.press("7#")
        await until(lambda: bot.digits == ["7", "#"])

        # barge-in: the caller talks over a long answer; the agent flushes what it queued
        agent_call.media.send_pcm(tone(4.0))
        answer = await call.wait_for_bot_speech_start(timeout=5, after=end + 0.1)
        await asyncio.sleep(max(0.0, answer + 0.5 - call.now()))
        heard_before = len(bot.audio)
        speaking = asyncio.ensure_future(call.say(tone(0.8, hz=300)))
        await until(lambda: energy(bytes(bot.audio[heard_before:])) > 1000)
        assert agent_call.media.flush() > 1.0
        await speaking
        await until(lambda: bool(call.barge_ins) and call.barge_ins[0].bot_stopped_s is not None)
        barge = call.barge_ins[0]
        assert barge.bot_stopped_s is not None and barge.clear_s is None  # no 'clear' in SIP
        assert call.bot_utterances()[-1][1] < answer + 3.0  # the 4 s answer was cut short

        await call.hang_up()
        await until(lambda: agent_call.ended)
        assert agent_call.end_reason == "remote_bye" and call.ended_by == "caller"
    finally:
        await endpoint.stop()


async def test_the_agent_hanging_up_ends_the_call_at_the_phone():
    bot = Bot(greeting=tone(0.2))
    endpoint = await start_endpoint(bot)
    try:
        call = SipCallEmulator(uri(endpoint))
        await call.connect(timeout_s=5)
        await call.wait_for_bot_speech_start(timeout=5)
        bot.finish.set()
        assert await call.wait_closed(5) == "server"
    finally:
        await endpoint.stop()


async def test_digest_credentials_are_used_and_refusals_carry_their_status():
    bot = Bot()
    endpoint = await start_endpoint(bot, username="trunk", password="s3cret")
    try:
        with pytest.raises(SipCallRejectedError) as refused:
            await SipCallEmulator(uri(endpoint)).connect(timeout_s=5)
        assert refused.value.status == 401
        call = SipCallEmulator(uri(endpoint), username="trunk", password="s3cret")
        await call.connect(timeout_s=5)
        assert call.status == 200
        await call.hang_up()
    finally:
        await endpoint.stop()
    closed = await start_endpoint(Bot(), trunks=("10.9.0.0/16",))
    try:
        with pytest.raises(SipCallRejectedError) as refused:
            await SipCallEmulator(uri(closed)).connect(timeout_s=5)
        assert refused.value.status == 403
    finally:
        await closed.stop()

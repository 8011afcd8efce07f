"""End to end over Twilio Media Streams: the real server, the real models, an emulated phone.

The agent runs in-process on a loopback port (``simulator.local_agent.LocalAgent``: uvicorn in
its own thread); its fake Twilio REST API takes the hang-ups. Each test places a call
exactly like Twilio (signed voice webhook -> TwiML -> signed stream WebSocket), speaks with
a flite voice (not the bot's), and checks what the phone heard by transcribing it with the
embedded ASR. Assertions are about behaviour, never about timing.
"""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest
from loguru import logger

from simulator.audio_codec import rms
from simulator.fake_twilio import CallUpdate, FakeTwilioRest
from simulator.local_agent import LocalAgent
from simulator.phone import TwilioCallEmulator, place_call
from simulator.voices import caller_voice

pytestmark = pytest.mark.e2e

CALLER = "+15555550142"
REPLY_TIMEOUT = 45.0
END_OF_REPLY_SILENCE = 1.5


@pytest.fixture(scope="module")
def live():
    """The real agent (models loaded once for the module) and its fake REST API."""
    if caller_voice.engine() is None:
        pytest.skip("needs Debian's flite for the caller voice (apt-get install flite)")
    local = LocalAgent(mode="thread", use_environment=False)
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="INFO", format="{message}")
    asyncio.run(local.start())
    yield Live(local, lines)
    asyncio.run(local.stop())
    logger.remove(sink)


class Live:
    def __init__(self, local: LocalAgent, log_lines: list[str]) -> None:
        self.local = local
        self.rest: FakeTwilioRest = local.rest
        self.runtime = local.runtime
        self.log_lines: list[str] = log_lines

    async def call(self) -> TwilioCallEmulator:
        emulator = await place_call(
            self.local.base_url,
            auth_token=self.local.auth_token,
            account_sid=self.local.account_sid,
            from_number=CALLER,
        )

        def twilio_ends_stream(update: CallUpdate) -> None:
            # Like Twilio: a REST hang-up ends the call, which stops and closes the stream.
            if update.status:
                asyncio.ensure_future(emulator.remote_hang_up())

        self.local.routes.register(emulator.call_sid, twilio_ends_stream)
        return emulator

    async def transcribe(self, pcm: bytes) -> str:
        text = await asyncio.to_thread(self.runtime.recognizer.transcribe, pcm, 8000)
        return re.sub(r"[^a-z0-9 ]", " ", text.lower())

    async def active_calls(self) -> int:
        async with httpx.AsyncClient() as client:
            r = await client.get(f"{self.local.base_url}/healthz")
        return int(r.json()["active_calls"])

    async def wait_for_no_calls(self, timeout: float = 15.0) -> None:
        async with asyncio.timeout(timeout):
            while await self.active_calls():
                await asyncio.sleep(0.2)


def voice(text: str) -> bytes:
    return caller_voice.synthesize(text)


async def greeting(live: Live, call: TwilioCallEmulator) -> str:
    start = await call.wait_for_bot_speech_start(timeout=REPLY_TIMEOUT)
    end = await call.wait_for_bot_silence(END_OF_REPLY_SILENCE, timeout=REPLY_TIMEOUT)
    return await live.transcribe(call.heard_audio(start - 0.1, end + 0.1))


async def ask(live: Live, call: TwilioCallEmulator, question: str) -> str:
    turn = await call.say(voice(question))
    start = await call.wait_for_bot_speech_start(timeout=REPLY_TIMEOUT, after=turn.caller_end_s)
    end = await call.wait_for_bot_silence(END_OF_REPLY_SILENCE, timeout=REPLY_TIMEOUT)
    return await live.transcribe(call.heard_audio(start - 0.1, end + 0.1))


def has_any(text: str, *words: str) -> bool:
    return any(w in text for w in words)


async def test_greets_and_answers_an_faq(live):
    call = await live.call()
    heard = await greeting(live, call)
    assert has_any(heard, "brightside", "bright side", "riley", "help"), heard
    answer = await ask(live, call, "What are your opening hours?")
    assert has_any(answer, "monday", "friday", "eight", "saturday"), answer
    assert call.turns[-1].latency_s is not None
    await call.hang_up()
    await live.wait_for_no_calls()
    assert live.rest.hang_ups(call.call_sid) == []  # the caller hung up first
    logs = "\n".join(live.log_lines)
    assert CALLER not in logs and "opening hours" not in logs.lower()


async def test_barge_in_stops_the_bot_and_it_answers_the_new_question(live):
    call = await live.call()
    await greeting(live, call)
    turn = await call.say(voice("What are your opening hours?"))
    await call.wait_for_bot_speech_start(timeout=REPLY_TIMEOUT, after=turn.caller_end_s)
    await asyncio.sleep(1.5)  # the bot is mid-answer
    interruption = await call.say(voice("Sorry, where exactly are you located?"))
    assert call.barge_ins, "the caller did not talk over the bot"
    barge = call.barge_ins[-1]
    async with asyncio.timeout(REPLY_TIMEOUT):
        while barge.bot_stopped_s is None:
            await asyncio.sleep(0.1)
    assert barge.clear_s is not None, "no Twilio clear after the caller barged in"
    assert barge.bot_stopped_s < interruption.caller_end_s, "the bot talked over the caller"
    silent = call.heard_audio(barge.bot_stopped_s + 0.1, interruption.caller_end_s)
    assert rms(silent) < 100
    start = await call.wait_for_bot_speech_start(
        timeout=REPLY_TIMEOUT, after=interruption.caller_end_s
    )
    end = await call.wait_for_bot_silence(END_OF_REPLY_SILENCE, timeout=REPLY_TIMEOUT)
    answer = await live.transcribe(call.heard_audio(start - 0.1, end + 0.1))
    assert has_any(answer, "harbor", "harbour", "street", "library", "springfield"), answer
    await call.hang_up()
    await live.wait_for_no_calls()


async def press_and_listen(live: Live, call: TwilioCallEmulator, keys: str) -> str:
    pressed = call.now()
    await call.press(keys)
    start = await call.wait_for_bot_speech_start(timeout=REPLY_TIMEOUT, after=pressed)
    end = await call.wait_for_bot_silence(END_OF_REPLY_SILENCE, timeout=REPLY_TIMEOUT)
    return await live.transcribe(call.heard_audio(start - 0.1, end + 0.1))


async def test_dtmf_key_presses_are_answered(live):
    call = await live.call()
    await greeting(live, call)
    hours = await press_and_listen(live, call, "1")  # keypad menu: 1 = opening hours
    assert has_any(hours, "monday", "friday", "eight", "saturday"), hours
    await press_and_listen(live, call, "4729#")  # an entry the agent has no use for: any reply
    assert not call.closed
    assert "4729" not in "\n".join(live.log_lines)
    handoff = await press_and_listen(live, call, "0")  # zero: a person, please
    assert has_any(handoff, "put you through", "hold", "team", "transfer"), handoff
    await call.hang_up()  # (no-op if a transfer already ended the stream)
    await live.wait_for_no_calls()


async def test_goodbye_ends_the_call_with_a_rest_hang_up_after_the_farewell(live):
    call = await live.call()
    await greeting(live, call)
    # A goodbye before the caller has asked for anything is checked first (issue 15);
    # after a request it ends the call.
    await ask(live, call, "What are your opening hours?")
    turn = await call.say(voice("Goodbye, that's all."))
    start = await call.wait_for_bot_speech_start(timeout=REPLY_TIMEOUT, after=turn.caller_end_s)
    await call.wait_closed(timeout=REPLY_TIMEOUT)
    assert call.ended_by in ("server", "network")
    async with asyncio.timeout(10):
        while not live.rest.hang_ups(call.call_sid):
            await asyncio.sleep(0.1)
    assert len(live.rest.hang_ups(call.call_sid)) == 1
    farewell = await live.transcribe(call.heard_audio(start - 0.1))
    assert has_any(farewell, "goodbye", "good bye", "great day"), farewell
    await live.wait_for_no_calls()


async def test_latency_bench_tells_answers_from_other_replies(live):
    """``bench latency`` checks what each reply said: the FAQ's answer counts as an
    answer, the reply to a request the agent cannot serve does not."""
    from simulator.bench.latency import LatencyReport, ReplyCheck, measure_latency
    from simulator.replies import expected_replies

    questions = ["what are your opening hours", "can you sing me a song"]
    report = LatencyReport(url="live")
    await measure_latency(
        live.local.base_url,  # through the voice webhook: streams are bound to it
        [questions],
        {q: voice(q) for q in questions},
        auth_token=live.local.auth_token,
        reply_timeout_s=REPLY_TIMEOUT,
        report=report,
        progress=lambda _line: None,
        replies=ReplyCheck(
            expected_replies(live.runtime.agent),
            lambda pcm: live.runtime.recognizer.transcribe(pcm, 8000),
        ),
    )
    hours, song = report.turns
    assert hours.answered is True and "monday" in (hours.reply or "").lower(), hours.reply
    assert song.reply and song.answered is False
    summary = report.summary()
    assert (summary["replies_answering"], summary["replies_checked"]) == (1, 2)
    await live.wait_for_no_calls()


async def test_a_replayed_stream_cannot_act_on_another_call(live):
    """Issue 16: a captured stream upgrade and start, replayed with a live call's CallSid
    and keypad 0 (transfer), is refused; Twilio hears nothing about the live call."""
    victim = await live.call()
    attacker = await live.call()
    await attacker.hang_up()
    forged = TwilioCallEmulator(
        attacker.ws_url,
        call_sid=victim.call_sid,
        account_sid=attacker.account_sid,
        custom_parameters=attacker.custom_parameters,
        auth_token=live.local.auth_token,
    )
    await forged.connect()
    try:
        await forged.wait_closed(timeout=5)
    except TimeoutError:
        await forged.press("0")
        await asyncio.sleep(3)
        await forged.hang_up()
    assert forged.closed_by_server
    assert [r for r in live.rest.requests if r.call_sid == victim.call_sid] == []
    assert not victim.closed
    await victim.hang_up()
    await live.wait_for_no_calls()

"""End to end: a phone caller asks for a person and is warm-transferred.

The real agent (models and all) runs on a loopback port (``simulator.local_agent.LocalAgent``)
with its fake of Twilio's REST API and a local agent-desktop webhook. A call is placed over
the Twilio Media Streams protocol; the caller (a known demo customer) says "let me talk to
a person". The bot must greet them by name, say the hand-off line, play hold music (never
silence) while the signed summary reaches the desktop, then redirect the live call through
the REST API to TwiML that dials the agent's transfer target with a whisper. Behaviour, not
timing.
"""

from __future__ import annotations

import asyncio
import json
import re
import xml.etree.ElementTree as ET
from urllib.parse import urlsplit

import httpx
import pytest
from loguru import logger

from bot.call.handoff_desk import HandoffTicket
from integrations.screen_pop import verify_signature
from simulator.audio_codec import rms
from simulator.fake_twilio import FakeTwilioRest
from simulator.local_agent import LocalAgent
from simulator.phone import TwilioCallEmulator, place_call
from simulator.voices import caller_voice
from tests.fakes.agent_desktop import WebhookReceiver
from transports.twilio import compute_signature

pytestmark = pytest.mark.e2e

CALLER = "+15555550142"  # James Okafor in the embedded CRM's demo data
SECRET = "desk-hmac-secret"
REPLY_TIMEOUT = 45.0
SCREEN_POP_DELAY_S = 1.5


@pytest.fixture(scope="module")
def live():
    if caller_voice.engine() is None:
        pytest.skip("needs Debian's flite for the caller voice (apt-get install flite)")
    state: dict[str, WebhookReceiver] = {}

    async def desk(stack):
        receiver = await stack.enter_async_context(WebhookReceiver(delay_s=SCREEN_POP_DELAY_S))
        state["desk"] = receiver
        return {"CALLAGENT_SCREEN_POP_URL": receiver.url, "CALLAGENT_SCREEN_POP_SECRET": SECRET}

    local = LocalAgent(mode="thread", use_environment=False, companions=desk)
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="INFO", format="{message}")
    asyncio.run(local.start())
    yield local, local.rest, state["desk"], local.runtime, lines
    asyncio.run(local.stop())
    logger.remove(sink)


async def transcribe(runtime, pcm: bytes) -> str:
    text = await asyncio.to_thread(runtime.recognizer.transcribe, pcm, 8000)
    return re.sub(r"[^a-z0-9 ]", " ", text.lower())


async def wait_for_redirect(rest: FakeTwilioRest, call: TwilioCallEmulator) -> tuple[str, float]:
    async with asyncio.timeout(REPLY_TIMEOUT):
        while True:
            found = rest.calls.get(call.call_sid)
            if found is not None and found.twiml:
                return found.twiml[0], call.now()
            await asyncio.sleep(0.02)


def longest_silence_s(pcm: bytes) -> float:
    """The longest run of 20 ms frames below speech-pause level."""
    longest = run = 0
    for i in range(0, len(pcm) - 320, 320):
        run = run + 1 if rms(pcm[i : i + 320]) < 100 else 0
        longest = max(longest, run)
    return longest * 0.02


async def test_let_me_talk_to_a_person_is_warm_transferred(live):
    local, rest, desk, runtime, log_lines = live
    call = await place_call(
        local.base_url,
        auth_token=local.auth_token,
        account_sid=local.account_sid,
        from_number=CALLER,
    )
    start = await call.wait_for_bot_speech_start(timeout=REPLY_TIMEOUT)
    end = await call.wait_for_bot_silence(1.5, timeout=REPLY_TIMEOUT)
    greeting = await transcribe(runtime, call.heard_audio(start - 0.1, end + 0.1))
    assert "james" in greeting, greeting  # the CRM answered before the greeting

    turn = await call.say(caller_voice.synthesize("Let me talk to a person, please."))
    twiml, redirected_at = await wait_for_redirect(rest, call)
    # Twilio ends the media stream when it runs the new TwiML.
    await call.remote_hang_up()

    # The redirect: hold line, then Dial to the agent's target with a whisper to the human.
    root = ET.fromstring(twiml)
    assert root.find("Say").text == runtime.agent.transfer.hold_line
    number = root.find("Dial/Number")
    assert number.text == runtime.agent.transfer.target
    whisper_url = number.get("url")
    assert urlsplit(whisper_url).path == "/twilio/whisper"
    assert urlsplit(root.find("Dial").get("action")).path == "/twilio/transfer-status"
    update = next(r for r in rest.requests if r.call_sid == call.call_sid and r.form.get("Twiml"))
    assert update.authorized and update.status == 200

    # The summary reached the desktop first, signed, with the reason and the caller.
    received = desk.received[0]
    assert verify_signature(SECRET, received.body, received.headers["X-Callagent-Signature"])
    assert received.headers["Idempotency-Key"]
    summary = received.json["summary"]
    assert summary["reason"] == "explicit_request"
    assert summary["caller"]["name"] == "James Okafor"
    assert summary["authentication"]["status"] == "unverified"
    assert any(t["role"] == "caller" for t in summary["transcript"])
    assert "sentiment" in summary and summary["intents"]

    # What is stored follows CALLAGENT_CALLER_ID_STORAGE (hash by default): the record's
    # summary and turns hold no number and no name (issue 16).
    store = runtime.records.store
    await asyncio.to_thread(store.flush)
    listed = (await store.alist_calls(limit=20))["calls"]
    stored = [await store.aget_call(c["id"]) for c in listed]
    escalated = [c for c in stored if c and c["escalation"] and c["escalation"]["summary"]]
    assert escalated and escalated[0]["escalation"]["summary"]["caller"]["name"] == "[name]"
    kept = json.dumps(escalated)
    assert CALLER[2:] not in kept and "James" not in kept and "Okafor" not in kept

    # The caller heard the hand-off line, then hold music until the redirect: never silence.
    bot_start = await call.wait_for_bot_speech_start(timeout=1, after=turn.caller_end_s)
    # The line itself (the recogniser may return nothing for speech with music after it).
    heard = call.heard_audio(bot_start - 0.1, min(redirected_at, bot_start + 3.0))
    handoff = await transcribe(runtime, heard)
    assert any(w in handoff for w in ("put you through", "team", "hold")), handoff
    assert longest_silence_s(call.heard_audio(bot_start, redirected_at)) < 0.5

    # The whisper the human hears before being connected.
    async with httpx.AsyncClient() as client:
        form = {"CallSid": "CA" + "9" * 32, "AccountSid": local.account_sid}
        signature = compute_signature(local.auth_token, whisper_url, form)
        r = await client.post(
            whisper_url.replace(urlsplit(whisper_url).netloc, urlsplit(local.base_url).netloc),
            data=form,
            headers={"X-Twilio-Signature": signature},
        )
    assert r.status_code == 200
    assert "James Okafor" in r.text and "asked for a person" in r.text

    logs = "\n".join(log_lines)
    assert "escalating (explicit_request)" in logs
    assert re.search(r"transfer via twilio_redirect requested [\d.]+ ms after the trigger", logs)
    assert CALLER not in logs and "Okafor" not in logs and "James" not in logs


async def test_failed_dial_offers_a_callback_recorded_in_the_crm(live):
    local, rest, desk, runtime, _ = live
    ticket_token = await runtime.handoffs.register(
        HandoffTicket(
            call_id="x1", trigger="explicit_request", whisper="hi", customer_id="cus_1002"
        )
    )
    async with httpx.AsyncClient(base_url=local.base_url) as client:
        url = f"{local.base_url}/twilio/transfer-status?h={ticket_token}"
        form = {"DialCallStatus": "no-answer", "CallSid": "CA" + "8" * 32}
        r = await client.post(
            url,
            data=form,
            headers={"X-Twilio-Signature": compute_signature(local.auth_token, url, form)},
        )
        assert r.status_code == 200 and "<Gather" in r.text and "call you back" in r.text
        url = f"{local.base_url}/twilio/callback?h={ticket_token}"
        form = {"Digits": "1"}
        r = await client.post(
            url,
            data=form,
            headers={"X-Twilio-Signature": compute_signature(local.auth_token, url, form)},
        )
        assert r.status_code == 200 and "<Hangup" in r.text
        bad = await client.post(url, data=form, headers={"X-Twilio-Signature": "nope"})
        assert bad.status_code == 403
    record = await runtime.crm.lookup("cus_1002")
    assert any(p.kind == "callback" for p in record.pending_actions)


async def test_a_caller_going_on_over_the_hand_off_line_is_not_transferred(live):
    local, rest, _desk, runtime, log_lines = live
    call = await place_call(
        local.base_url,
        auth_token=local.auth_token,
        account_sid=local.account_sid,
        from_number=CALLER,
    )
    await call.wait_for_bot_speech_start(timeout=REPLY_TIMEOUT)
    await call.wait_for_bot_silence(1.5, timeout=REPLY_TIMEOUT)
    turn = await call.say(caller_voice.synthesize("Let me talk to a person, please."))
    # the hand-off line starts; the caller talks over it with a new request
    await call.wait_for_bot_speech_start(timeout=REPLY_TIMEOUT, after=turn.caller_end_s)
    again = await call.say(caller_voice.synthesize("Actually, what are your opening hours?"))
    answer_at = await call.wait_for_bot_speech_start(
        timeout=REPLY_TIMEOUT, after=again.caller_end_s
    )
    end = await call.wait_for_bot_silence(1.5, timeout=REPLY_TIMEOUT)
    answer = await transcribe(runtime, call.heard_audio(answer_at - 0.1, end + 0.1))
    await call.hang_up()

    found = rest.calls.get(call.call_sid)
    assert found is None or not found.twiml  # no redirect: the hand-off was withdrawn
    assert any(w in answer for w in ("open", "monday", "friday", "am", "pm")), answer
    assert "hand_off withdrawn" in "\n".join(log_lines)

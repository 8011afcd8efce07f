"""End to end: the reminder agent on the real server, over Twilio Media Streams.

The server serves its default agent and the reference reminder agent (the default
``CALLAGENT_AGENT_FILES``). Until the dialer's outbound leg exists, the test names the
agent and the outbound call the way that leg will: through ``twilio_call``'s parameters
(patched in the in-process server for this module). The callee is a demo CRM customer;
a plain "yes" to the opening confirms the appointment, in the CRM too, and ends the call.
"""

from __future__ import annotations

import asyncio
import functools
import re
import sqlite3

import pytest

import bot.web.twilio_routes as twilio_routes
from processors.outbound_call import OutboundCall
from simulator.fake_twilio import CallUpdate
from simulator.local_agent import LocalAgent
from simulator.phone import place_call
from simulator.voices import caller_voice

pytestmark = pytest.mark.e2e

CALLEE = "+15555550142"  # demo customer cus_1002 (James), filling apt_2003 tomorrow
REPLY_TIMEOUT = 45.0
END_OF_REPLY_SILENCE = 1.5


@pytest.fixture(scope="module")
def live():
    if caller_voice.engine() is None:
        pytest.skip("needs Debian's flite for the callee's voice (apt-get install flite)")
    outbound = OutboundCall(
        attempt_id="att_e2e",
        to=CALLEE,
        variables={"first_name": "James", "appointment": "tomorrow at 10 AM"},
    )
    patch = pytest.MonkeyPatch()
    patch.setattr(
        twilio_routes,
        "twilio_call",
        functools.partial(
            twilio_routes.twilio_call, agent="appointment_reminders", outbound=outbound
        ),
    )
    local = LocalAgent(mode="thread", use_environment=False)
    asyncio.run(local.start())
    yield local
    asyncio.run(local.stop())
    patch.undo()


async def test_a_reminder_call_confirms_the_appointment(live: LocalAgent):
    assert live.runtime.agent_keys() == ["dental_front_desk", "appointment_reminders"]
    call = await place_call(
        live.base_url,
        auth_token=live.auth_token,
        account_sid=live.account_sid,
        from_number="+15555550100",  # our number: Twilio's From on a call we placed
        to_number=CALLEE,
    )
    ended = asyncio.Event()

    def twilio_ends_stream(update: CallUpdate) -> None:
        if update.status:
            ended.set()
            asyncio.ensure_future(call.remote_hang_up())

    live.routes.register(call.call_sid, twilio_ends_stream)

    async def hear(after: float | None = None) -> str:
        start = await call.wait_for_bot_speech_start(timeout=REPLY_TIMEOUT, after=after)
        end = await call.wait_for_bot_silence(END_OF_REPLY_SILENCE, timeout=REPLY_TIMEOUT)
        pcm = call.heard_audio(start - 0.1, end + 0.1)
        text = await asyncio.to_thread(live.runtime.recognizer.transcribe, pcm, 8000)
        return re.sub(r"[^a-z0-9 ]", " ", text.lower())

    opening = await hear()
    # the recogniser that listens for the callee mishears some words ("brideside") and on a
    # long line may repeat itself: any landmark of who calls will do, as test_e2e_twilio does
    assert "james" in opening and any(w in opening for w in ("bright", "dental", "riley")), opening
    turn = await call.say(caller_voice.synthesize("Yes, I'll be there."))
    reply = await hear(after=turn.caller_end_s)
    assert "confirmed" in reply, reply
    await asyncio.wait_for(ended.wait(), REPLY_TIMEOUT)  # the agent hung up after its goodbye
    await asyncio.sleep(0.5)  # the write-back runs beside the call's end
    with sqlite3.connect(live.runtime.crm.path) as db:
        row = db.execute("SELECT status FROM appointments WHERE id = 'apt_2003'").fetchone()
    assert row == ("confirmed",)

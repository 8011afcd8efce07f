"""A killed agent process, end to end (issue 16, finding 5).

The real server runs as a child process (``callagent serve``, ``LocalAgent(mode="process")``);
a call is placed over the real Twilio Media Streams protocol, one turn is finished (the
bot greets, the caller asks, the bot answers), and the process is killed with SIGKILL.
A new process started on the same data folder must show the call closed as failed, with
the reason, and with the finished turn.
"""

from __future__ import annotations

import contextlib

import httpx
import pytest

from integrations.storage.recovery import SERVER_LOST
from simulator.local_agent import LocalAgent
from simulator.phone import place_call
from simulator.voices import caller_voice

pytestmark = pytest.mark.e2e

REPLY_TIMEOUT = 90.0
END_OF_REPLY_SILENCE = 1.5


async def test_a_killed_process_leaves_its_call_closed_with_the_finished_turn(tmp_path):
    if caller_voice.engine() is None:
        pytest.skip("needs Debian's flite for the caller voice (apt-get install flite)")
    first = LocalAgent(mode="process", data_dir=tmp_path)
    await first.start()
    try:
        call = await place_call(
            first.base_url,
            auth_token=first.auth_token,
            account_sid=first.account_sid,
            from_number="+15555550142",
        )
        await call.wait_for_bot_speech_start(timeout=REPLY_TIMEOUT)
        await call.wait_for_bot_silence(END_OF_REPLY_SILENCE, timeout=REPLY_TIMEOUT)
        turn = await call.say(caller_voice.synthesize("What are your opening hours?"))
        await call.wait_for_bot_speech_start(timeout=REPLY_TIMEOUT, after=turn.caller_end_s)
        await call.wait_for_bot_silence(END_OF_REPLY_SILENCE, timeout=REPLY_TIMEOUT)
        await first.kill()  # seconds after the answer: the turn is finished, the call is not
        with contextlib.suppress(Exception):
            await call.hang_up()
    finally:
        await first.stop()

    second = LocalAgent(mode="process", data_dir=tmp_path)
    await second.start()
    try:
        headers = {"Authorization": f"Bearer {second.operator_token}"}
        async with httpx.AsyncClient(base_url=second.base_url, headers=headers) as client:
            listed = (await client.get("/api/calls")).json()
            assert listed["total"] == 1, listed
            call_id = listed["calls"][0]["id"]
            record = (await client.get(f"/api/calls/{call_id}")).json()
    finally:
        await second.stop()

    assert record["outcome"] == "failed", record["outcome"]
    assert record["end_reason"] == SERVER_LOST
    caller_turns = [t for t in record["turns"] if t["kind"] == "caller"]
    assert caller_turns, "the finished turn was lost with the process"
    assert caller_turns[0]["caller_text"] and caller_turns[0]["bot_text"]
    assert record["turns"][0]["kind"] == "greeting" and record["turns"][0]["bot_text"]
    assert record["turn_count"] == len(caller_turns)

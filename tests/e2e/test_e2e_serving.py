"""Serving, end to end: admission at the cap and SIGTERM drain on a real server process.

One ``callagent serve`` child process (real models, loaded once for the module) with
``CALLAGENT_MAX_CALLS=1``; calls are placed over the real Twilio Media Streams protocol
(signed webhook -> TwiML -> stream) with the fake Twilio REST API. The last test sends the
process SIGTERM, so it stays last.
"""

from __future__ import annotations

import asyncio
import signal

import httpx
import pytest
import pytest_asyncio

from simulator.local_agent import LocalAgent
from simulator.voices import caller_voice
from tests.support.serving import Served
from tests.support.webrtc import browser_offer_sdp

# one event loop for the module: the fake Twilio REST API serves in it, beside the tests
pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

REPLY_TIMEOUT = 90.0
END_OF_REPLY_SILENCE = 1.5
DRAIN_SECS = 30
TRANSFER_TARGET = "+15555550100"  # the reference agent's transfer.target


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def served(tmp_path_factory):
    if caller_voice.engine() is None:
        pytest.skip("needs Debian's flite for the caller voice (apt-get install flite)")
    data_dir = tmp_path_factory.mktemp("serving")
    local = LocalAgent(
        mode="process",
        data_dir=data_dir,
        env={"CALLAGENT_MAX_CALLS": "1", "CALLAGENT_DRAIN_SECS": str(DRAIN_SECS)},
    )
    await local.start()
    yield Served(local, data_dir)
    await local.stop()


@pytest.fixture(scope="module")
def offer_sdp() -> str:
    return asyncio.run(browser_offer_sdp())


async def test_a_call_past_the_cap_is_answered_as_the_agent_file_says(served, offer_sdp):
    assert (await served.wait_ready(True))["max_calls"] == 1
    call = await served.call()
    await call.wait_for_bot_speech_start(timeout=REPLY_TIMEOUT)
    full = await served.wait_ready(False)
    assert full["calls"] == 1 and full["draining"] is False and full["load"] == 1.0

    second = await served.voice_webhook()  # the reference agent: when_full reject
    assert second.status_code == 200 and '<Reject reason="busy" />' in second.text
    base = served.local.base_url
    async with httpx.AsyncClient(timeout=10) as client:
        offer = await client.post(
            base + "/api/offer", json={"sdp": offer_sdp, "type": "offer"}, headers={"Origin": base}
        )
    assert offer.status_code == 503 and int(offer.headers["Retry-After"]) >= 1

    await call.hang_up()
    assert (await served.wait_ready(True))["calls"] == 0  # the slot is free again
    assert (await served.voice_webhook()).text.count("<Stream") == 1


async def test_sigterm_lets_the_live_call_go_on_then_hands_it_to_a_person(served):
    call = await served.call()
    await call.wait_for_bot_speech_start(timeout=REPLY_TIMEOUT)
    await call.wait_for_bot_silence(END_OF_REPLY_SILENCE, timeout=REPLY_TIMEOUT)

    served.local.send_signal(signal.SIGTERM)
    draining = await served.wait_ready(False, draining=True)  # full, and now draining
    assert draining["calls"] == 1
    refused = await served.voice_webhook()  # no new call while draining
    assert '<Reject reason="busy" />' in refused.text

    # the live call goes on: a question is answered
    turn = await call.say(caller_voice.synthesize("What are your opening hours?"))
    await call.wait_for_bot_speech_start(timeout=REPLY_TIMEOUT, after=turn.caller_end_s)
    await call.wait_for_bot_silence(END_OF_REPLY_SILENCE, timeout=REPLY_TIMEOUT)

    # the caller stays on past CALLAGENT_DRAIN_SECS: handed to a person (the agent's
    # when_stopping: transfer), as an escalation's transfer does
    redirect = await served.local.rest.wait_for_redirect(call.call_sid, timeout=DRAIN_SECS + 90)
    assert redirect.dial_target() == f"number:{TRANSFER_TARGET}"
    await call.wait_closed(timeout=30)
    assert await served.local.wait_exit(timeout_s=60) == 0

    record = next(r for r in served.records() if r.get("provider_call_id") == call.call_sid)
    assert record["ended_at"] and record["turn_count"] == 1  # complete, with its turn
    assert record["primary_intent"] == "opening_hours"
    assert record["outcome"] == "escalated"
    assert record["escalation"]["trigger"] == "server_stopping"


async def test_past_the_drain_time_a_call_that_cannot_go_to_a_person_hears_goodbye(tmp_path):
    # the agent file says goodbye (when_stopping), and the drain time is 0: the call ends
    # as soon as SIGTERM arrives, politely
    from bot.setting_types import REFERENCE_AGENT

    agent_file = tmp_path / "front_desk.yaml"
    text = REFERENCE_AGENT.read_text()
    agent_file.write_text(
        text.replace("when_stopping:\n  action: transfer", "when_stopping:\n  action: goodbye")
    )
    local = LocalAgent(
        mode="process",
        data_dir=tmp_path / "data",
        env={"CALLAGENT_AGENT_FILE": str(agent_file), "CALLAGENT_DRAIN_SECS": "0"},
    )
    await local.start()
    try:
        served = Served(local, tmp_path / "data")
        call = await served.call()
        await call.wait_for_bot_speech_start(timeout=REPLY_TIMEOUT)
        greeted = await call.wait_for_bot_silence(END_OF_REPLY_SILENCE, timeout=REPLY_TIMEOUT)
        local.send_signal(signal.SIGTERM)
        await call.wait_for_bot_speech_start(timeout=REPLY_TIMEOUT, after=greeted)  # goodbye
        await local.rest.wait_for_hang_up(call.call_sid, timeout=60)  # then it hangs up
        assert await local.wait_exit(timeout_s=60) == 0
        [record] = served.records()
        assert record["ended_at"] and record["escalation"] is None
    finally:
        await local.stop()


async def test_two_workers_answer_on_one_port_and_sigterm_to_the_parent_stops_both(tmp_path):
    from integrations.storage.workers import pid_alive
    from tests.support.queue import redis_server

    with redis_server() as redis_url:
        local = LocalAgent(
            mode="process",
            data_dir=tmp_path,
            env={"CALLAGENT_SHARED_STATE_URL": redis_url},
            serve_args=("--workers", "2"),
        )
        await local.start()  # one worker answers
        try:
            processes: set[str] = set()
            async with asyncio.timeout(REPLY_TIMEOUT * 2):
                while len(processes) < 2:  # a new connection each time: either may take it
                    async with httpx.AsyncClient(timeout=10) as client:
                        r = await client.get(local.base_url + "/readyz")
                    if r.status_code == 200:
                        processes.add(r.json()["process"])
                    await asyncio.sleep(0.1)
            pids = {int(p.split(":")[1]) for p in processes}
            assert local.pid not in pids  # the parent supervises, the workers serve
            local.send_signal(signal.SIGTERM)
            assert await local.wait_exit(timeout_s=60) == 0
            assert not any(pid_alive(pid) for pid in pids)
        finally:
            await local.stop()


async def test_a_worker_past_its_calls_is_replaced_while_its_live_call_goes_on(tmp_path):
    from integrations.storage.workers import pid_alive
    from tests.support.queue import redis_server

    async def ready_process(local: LocalAgent) -> str:
        async with httpx.AsyncClient(timeout=10) as client:
            r = await client.get(local.base_url + "/readyz")
        return r.json()["process"] if r.status_code == 200 else ""

    with redis_server() as redis_url:
        local = LocalAgent(
            mode="process",
            data_dir=tmp_path,
            env={"CALLAGENT_SHARED_STATE_URL": redis_url, "CALLAGENT_RECYCLE_AFTER_CALLS": "1"},
        )
        await local.start()
        try:
            served = Served(local, tmp_path)
            first = await ready_process(local)
            call = await served.call()  # its first call: the worker asks for a replacement
            await call.wait_for_bot_speech_start(timeout=REPLY_TIMEOUT)
            await call.wait_for_bot_silence(END_OF_REPLY_SILENCE, timeout=REPLY_TIMEOUT)
            async with asyncio.timeout(REPLY_TIMEOUT * 2):  # the replacement loads, accepts
                while (second := await ready_process(local)) in ("", first):
                    await asyncio.sleep(0.2)
            # the old worker no longer accepts, and still carries its call
            turn = await call.say(caller_voice.synthesize("What are your opening hours?"))
            await call.wait_for_bot_speech_start(timeout=REPLY_TIMEOUT, after=turn.caller_end_s)
            await call.hang_up()
            old_pid = int(first.split(":")[1])
            async with asyncio.timeout(60):  # drained: it exits
                while pid_alive(old_pid):
                    await asyncio.sleep(0.2)
            assert await ready_process(local) == second
            [record] = served.records()
            assert record["ended_at"] and record["turn_count"] == 1
            local.send_signal(signal.SIGTERM)
            assert await local.wait_exit(timeout_s=60) == 0
        finally:
            await local.stop()

"""Two agent processes sharing Redis (or PostgreSQL): a call on one is followed and reached
through the other.

Two ``callagent serve`` child processes (``LocalAgent(mode="process")``) are one deployment:
the same Twilio account and auth token, the same operator token, and
``CALLAGENT_SHARED_STATE_URL`` on one real redis-server (then on one PostgreSQL database).
A call is placed on process A over
the real Twilio Media Streams protocol;

* its event stream is read through process B (``GET /api/calls/{CallSid}/events``, a
  waiting ``wait=`` request woken by what happens on A, and the end);
* its warm transfer's callbacks, signed as Twilio signs them for B's address, are sent to
  B: B reads the hand-off A registered (the whisper), answers the failed dial with the
  callback offer, and what B learnt joins the call's event stream as A serves it.
"""

from __future__ import annotations

import asyncio
import contextlib
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import pytest_asyncio

from simulator.fake_twilio import FakeTwilioRest
from simulator.local_agent import LocalAgent
from simulator.phone import TwilioCallEmulator, place_call
from simulator.target import SIM_ACCOUNT_SID
from simulator.voices import caller_voice
from tests.support.serving import two_processes
from tests.support.shared_state import shared_state_url
from transports.twilio import compute_signature

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

CALLER = "+15555550142"  # James Okafor in the embedded CRM's demo data
REPLY_TIMEOUT = 90.0
AUTH_TOKEN = "d" * 32
OPERATOR_TOKEN = "p" * 32


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=["redis", "postgresql"])
async def deployment(
    request: pytest.FixtureRequest,
) -> AsyncIterator[tuple[LocalAgent, LocalAgent]]:
    if caller_voice.engine() is None:
        pytest.skip("needs Debian's flite for the caller voice (apt-get install flite)")
    with shared_state_url(request.param) as url:
        async with two_processes(url, AUTH_TOKEN, OPERATOR_TOKEN) as (a, b):
            yield a, b


async def _events(agent: LocalAgent, call_id: str, **params: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
    async with httpx.AsyncClient(base_url=agent.base_url, headers=headers, timeout=40) as client:
        return await client.get(f"/api/calls/{call_id}/events", params=params)


async def _known(agent: LocalAgent, call_id: str) -> dict[str, Any]:
    """The call's first page on ``agent`` once the call is known there."""
    async with asyncio.timeout(REPLY_TIMEOUT):
        while True:
            r = await _events(agent, call_id)
            if r.status_code == 200:
                return r.json()
            assert r.status_code == 404, r.text
            await asyncio.sleep(0.1)


async def _call(a: LocalAgent) -> TwilioCallEmulator:
    return await place_call(
        a.base_url, auth_token=AUTH_TOKEN, account_sid=a.account_sid, from_number=CALLER
    )


async def test_a_call_on_a_is_followed_through_b(deployment):
    a, b = deployment
    call = await _call(a)
    try:
        first = await _known(b, call.call_sid)  # B runs no call: it reads the shared log
        assert first["active"] and first["provider_call_id"] == call.call_sid
        await call.wait_for_bot_speech_start(timeout=REPLY_TIMEOUT)
        await call.wait_for_bot_silence(1.5, timeout=REPLY_TIMEOUT)
        page = (await _events(b, call.call_sid)).json()
        assert "bot_started" in [e["type"] for e in page["events"]]
        # the same page from the owner: one stream, the same sequence numbers
        same = (await _events(a, page["call_id"])).json()
        assert same["events"][: len(page["events"])] == page["events"]

        # a reader waiting on B is woken by the caller's turn on A
        waiting = asyncio.create_task(_events(b, call.call_sid, after=page["next"], wait=30))
        await asyncio.sleep(0.5)
        assert not waiting.done()
        await call.say(caller_voice.synthesize("What are your opening hours?"))
        woken = (await asyncio.wait_for(waiting, REPLY_TIMEOUT)).json()
        assert woken["events"] and woken["events"][0]["seq"] == page["next"] + 1
    finally:
        with contextlib.suppress(Exception):
            await call.hang_up()

    # the end, seen on B too
    async with asyncio.timeout(REPLY_TIMEOUT):
        while True:
            last = (await _events(b, call.call_sid, wait=5)).json()
            if not last["active"]:
                break
    assert "ended" in [e["type"] for e in last["events"]]


async def _redirect(rest: FakeTwilioRest, call: TwilioCallEmulator) -> str:
    async with asyncio.timeout(REPLY_TIMEOUT):
        while True:
            found = rest.calls.get(call.call_sid)
            if found is not None and found.twiml:
                return found.twiml[0]
            await asyncio.sleep(0.05)


async def _post_signed(agent: LocalAgent, url: str, form: dict[str, str]) -> httpx.Response:
    """POST to ``agent`` what Twilio would send to ``url``, signed for ``agent``'s address."""
    parts = urlsplit(url)
    there = f"{agent.base_url}{parts.path}?{parts.query}"
    signature = compute_signature(AUTH_TOKEN, there, form)
    async with httpx.AsyncClient(timeout=20) as client:
        return await client.post(there, data=form, headers={"X-Twilio-Signature": signature})


async def test_a_transfer_on_a_is_answered_and_reached_through_b(deployment):
    a, b = deployment
    call = await _call(a)
    try:
        await call.wait_for_bot_speech_start(timeout=REPLY_TIMEOUT)
        await call.wait_for_bot_silence(1.5, timeout=REPLY_TIMEOUT)
        await call.say(caller_voice.synthesize("Let me talk to a person, please."))
        twiml = await _redirect(a.rest, call)  # A redirected the live call (Twilio REST)
    finally:
        with contextlib.suppress(Exception):
            await call.remote_hang_up()  # Twilio ends the media stream to run the TwiML
    root = ET.fromstring(twiml)
    whisper_url = root.find("Dial/Number").get("url")  # type: ignore[union-attr]
    action_url = root.find("Dial").get("action")  # type: ignore[union-attr]
    assert whisper_url and action_url, twiml
    assert urlsplit(whisper_url).netloc == urlsplit(a.base_url).netloc  # A's own address

    # Twilio's requests land on B (a load balancer's choice)
    form = {"CallSid": "CA" + "9" * 32, "AccountSid": SIM_ACCOUNT_SID}
    whisper = await _post_signed(b, whisper_url, form)
    assert whisper.status_code == 200, whisper.text
    assert "James Okafor" in whisper.text and "asked for a person" in whisper.text
    parts = urlsplit(whisper_url)
    async with httpx.AsyncClient() as client:  # signed for A's address, sent to B
        forged = await client.post(
            f"{b.base_url}{parts.path}?{parts.query}",
            data=form,
            headers={"X-Twilio-Signature": compute_signature(AUTH_TOKEN, whisper_url, form)},
        )
    assert forged.status_code == 403  # B checks Twilio's signature itself

    dial = await _post_signed(b, action_url, {"DialCallStatus": "no-answer", **form})
    assert dial.status_code == 200 and "<Gather" in dial.text, dial.text
    callback_url = ET.fromstring(dial.text).find("Gather").get("action")  # type: ignore[union-attr]
    accepted = await _post_signed(b, f"{b.base_url}{callback_url}", {"Digits": "1", **form})
    assert accepted.status_code == 200 and "<Hangup" in accepted.text

    # what B learnt reached the call's stream as its owner A serves it
    async with asyncio.timeout(REPLY_TIMEOUT):
        while True:
            page = (await _events(a, call.call_sid)).json()
            kinds = [e["type"] for e in page["events"]]
            if "callback" in kinds:
                break
            await asyncio.sleep(0.1)
    assert "transfer" in kinds and kinds.index("transfer") < kinds.index("transfer_dial")
    events = {e["type"]: e for e in page["events"]}
    assert events["transfer"]["ok"] and events["transfer_dial"]["status"] == "no-answer"
    assert events["callback"]["accepted"] is True

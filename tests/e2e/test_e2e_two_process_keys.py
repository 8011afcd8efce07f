"""Two agent processes sharing Redis (or PostgreSQL): a login, a lock-out and a CallSid count
on both.

Two ``callagent serve`` child processes (``LocalAgent(mode="process")``) are one deployment
(one Twilio account and auth token, one operator token, ``CALLAGENT_SHARED_STATE_URL`` on one
real server):

* an operator who logs in on A is let in by B, and logging out on B ends the session on A;
  wrong tokens sent to both add up to one lock-out that both enforce;
* a Twilio call streams on A over the real Media Streams protocol; the same signed voice
  webhook replayed to B is refused (409), and so is A's stream (its token and ``start``
  message) replayed to B, during the call and after it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio

from simulator.local_agent import LocalAgent
from simulator.phone import TwilioCallEmulator, place_call
from tests.support.serving import two_processes
from tests.support.shared_state import shared_state_url

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

REPLY_TIMEOUT = 90.0
AUTH_TOKEN = "d" * 32
OPERATOR_TOKEN = "p" * 32
COOKIE = "callagent_operator"


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=["redis", "postgresql"])
async def deployment(
    request: pytest.FixtureRequest,
) -> AsyncIterator[tuple[LocalAgent, LocalAgent]]:
    with shared_state_url(request.param) as url:
        async with two_processes(url, AUTH_TOKEN, OPERATOR_TOKEN) as (a, b):
            yield a, b


async def test_a_login_and_a_lock_out_hold_on_both_processes(deployment):
    a, b = deployment
    async with (
        httpx.AsyncClient(base_url=a.base_url, timeout=20) as on_a,
        httpx.AsyncClient(base_url=b.base_url, timeout=20) as on_b,
    ):
        login = await on_a.post("/dashboard/login", data={"token": OPERATOR_TOKEN})
        assert login.status_code == 303, login.text
        session = login.cookies[COOKIE]
        on_a.cookies.clear()
        assert (await on_b.get("/api/calls", cookies={COOKIE: session})).status_code == 200
        await on_b.post("/dashboard/logout", cookies={COOKIE: session})
        on_b.cookies.clear()
        assert (await on_a.get("/api/calls", cookies={COOKIE: session})).status_code == 401

        wrong = {"Authorization": "Bearer " + "w" * 32}
        codes = [
            (await (on_a, on_b)[i % 2].get("/api/calls", headers=wrong)).status_code
            for i in range(6)
        ]
        assert codes == [401] * 5 + [429]
        right = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
        assert (await on_a.get("/api/calls", headers=right)).status_code == 429


async def _replayed_stream(b: LocalAgent, call: TwilioCallEmulator) -> TwilioCallEmulator:
    """A's stream (its ``start`` and stream token) sent to B, signed for B's URL."""
    replay = TwilioCallEmulator(
        b.base_url.replace("http://", "ws://") + "/twilio/stream",
        call_sid=call.call_sid,
        account_sid=call.account_sid,
        custom_parameters=call.custom_parameters,
        auth_token=AUTH_TOKEN,
    )
    await replay.connect(10)
    await replay.wait_closed(10)
    return replay


async def test_a_call_streaming_on_a_cannot_be_replayed_to_b(deployment):
    a, b = deployment
    call = await place_call(a.base_url, auth_token=AUTH_TOKEN, account_sid=a.account_sid)
    try:
        await call.wait_for_bot_speech_start(timeout=REPLY_TIMEOUT)  # A admitted the stream
        with pytest.raises(httpx.HTTPStatusError) as webhook:
            await place_call(
                b.base_url, auth_token=AUTH_TOKEN, account_sid=a.account_sid, call_sid=call.call_sid
            )
        assert webhook.value.response.status_code == 409
        replay = await _replayed_stream(b, call)
        assert replay.close_code == 1008 and not call.closed  # refused; A's call goes on
    finally:
        with contextlib.suppress(Exception):
            await call.hang_up()
    await asyncio.sleep(0.5)
    replay = await _replayed_stream(b, call)  # after the call: still once per CallSid
    assert replay.close_code == 1008

"""Under ``--workers N`` a SIP dial landing on a standing-by worker is placed by the SIP server.

Two real servers (uvicorn on loopback, stand-in pipelines) are two workers of one
deployment: one shared state (in-process, or a real Redis with a connection each), one
call-record database, distinct process ids, the same ``CALLAGENT_SIP_LISTEN``. A binds
the SIP port and holds the ``callagent:owner:sip:server`` lease; B stands by. A campaign
worker's ``POST /sip/dial`` and an operator's SIP call both land on B, which forwards them
through A's inbox: the INVITE leaves A for a SIPp callee, and the attempts end as its
answer says.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.call.runtime import Runtime
from bot.outbound.server import attempt_tokens
from bot.outbound.sip_dialer import SipDialer
from bot.outbound.sip_forward import SIP_SERVER
from integrations.shared_state.calls import CallInbox, CallOwners
from integrations.shared_state.factory import open_shared_state
from integrations.shared_state.memory import MemorySharedState
from tests.support.outbound_server import OutboundServer, OutboundServers
from tests.support.shared_state import shared_state_url
from tests.support.sipp import Sipp
from tests.unit.test_sip_outbound import ended, new_attempt, sip_env

A, B = "hostA:1:aa", "hostB:2:bb"


@pytest.fixture
async def callee() -> AsyncIterator[Sipp]:
    async with Sipp("uas_busy.xml", calls=2, timeout_s=30) as sipp:
        yield sipp


@pytest.fixture(params=["memory", "redis"])
async def a_and_b(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, callee: Sipp
) -> AsyncIterator[tuple[OutboundServer, OutboundServer]]:
    with shared_state_url(request.param) as url:
        memory = MemorySharedState()

        def process(process_id: str):
            def setup(runtime: Runtime) -> None:
                # each worker its own connection to the one Redis, as separate processes
                runtime.shared = open_shared_state(url) if url else memory
                runtime.inbox = CallInbox(CallOwners(runtime.shared, process_id))

            return setup

        servers = OutboundServers(tmp_path, monkeypatch)
        env = {**sip_env(callee), "CALLAGENT_WORKERS": "2"}  # one SIP port for both
        a = await servers.start(process(A), **env)
        b = await servers.start(process(B), **env)
        yield a, b
        await servers.close()


async def test_a_standby_worker_forwards_sip_dials_to_the_worker_serving_sip(
    a_and_b: tuple[OutboundServer, OutboundServer], callee: Sipp
) -> None:
    a, b = a_and_b
    assert (a.app.state.sip.role, b.app.state.sip.role) == ("serving", "standby")
    owner = await b.runtime.inbox.owners.owner_of(SIP_SERVER)  # type: ignore[union-attr]
    assert owner is not None and owner.process_id == A

    attempt = await new_attempt(b, "sip")  # a campaign worker's attempt, its dial sent to B
    assert await b.app.state.outbound.attempts.claim(attempt.id)
    dialled = await SipDialer(attempt_tokens(b.runtime.settings), b.base_url).dial(attempt, "")
    assert dialled.provider_call_id.startswith("sipdial-")
    first = await ended(b, attempt.id)

    placed = await b.place(channel="sip")  # the operator's SIP call, on B
    assert placed.status_code == 201, placed.text
    second = await ended(b, placed.json()["attempt_id"])
    result = await callee.stop()

    assert (first["disposition"], first["error_code"]) == ("busy", 486)
    assert (second["disposition"], second["error_code"]) == ("busy", 486)
    assert len(result.received("INVITE")) == 2  # both left A's SIP port
    assert {x.id for x in a.ended.attempts} == {attempt.id, placed.json()["attempt_id"]}


async def test_with_no_worker_serving_sip_the_dial_is_refused_503(
    a_and_b: tuple[OutboundServer, OutboundServer],
) -> None:
    a, b = a_and_b
    b.app.state.sip._standby.cancel()  # B does not take the port over in this test
    await a.app.state.sip.stop()  # A gives the port up (and its lease)
    attempt = await new_attempt(b, "sip")
    assert await b.app.state.outbound.attempts.claim(attempt.id)
    token = attempt_tokens(b.runtime.settings).issue(attempt.id)
    response = await b.client.post("/sip/dial", json={"attempt": token})
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"]
    assert "no worker serves SIP" in response.json()["detail"]

"""Twilio's AMD verdict sent to a process that does not run the call reaches the one that does.

Two real servers (uvicorn on loopback, stand-in call pipelines) are two processes of one
deployment: one shared state (in-process here; Redis in ``tests/e2e/test_e2e_two_processes.py``),
one call-record database, distinct process ids. Server A places and runs an outbound
call; Twilio's ``AnsweredBy`` callback, signed as Twilio signs it for B's address, lands on
B, which finds A as the CallSid's owner and asks it through the inbox: the verdict is in
A's live call (its record carries it).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from bot.call.runtime import Runtime
from integrations.shared_state.calls import CallInbox, CallOwners
from integrations.shared_state.memory import MemorySharedState
from simulator.outbound.callee import Press
from tests.support.outbound_server import (
    ACCOUNT,
    CALLEE,
    KeypadCallee,
    OutboundServer,
    OutboundServers,
)


@pytest.fixture
async def a_and_b(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[OutboundServer, OutboundServer]]:
    from bot.web import app as app_module

    shared = MemorySharedState()

    def process(process_id: str):
        def setup(runtime: Runtime) -> None:
            runtime.shared = shared
            runtime.inbox = CallInbox(CallOwners(shared, process_id))

        return setup

    servers = OutboundServers(tmp_path, monkeypatch)
    off = {"CALLAGENT_OUTBOUND_MACHINE_DETECTION": "off"}  # the test sends the verdict
    a = await servers.start(process("hostA:1:aa"), **off)
    b = await servers.start(process("hostB:2:bb"), **off)
    monkeypatch.setattr(app_module, "run_call", a.run_call)  # calls run (and are kept) on A
    yield a, b
    await servers.close()


async def test_an_amd_verdict_sent_to_b_reaches_the_call_running_on_a(a_and_b) -> None:
    a, b = a_and_b
    go = asyncio.Event()
    a.rest.dialer.register(CALLEE, KeypadCallee(lines=(Press("0"),), go=go))
    placed = (await a.place()).json()
    call_sid = placed["provider_call_id"]
    for _ in range(500):
        if a.specs:
            break
        await asyncio.sleep(0.02)
    assert a.specs and a.specs[0].provider_call_id == call_sid
    owner = await b.runtime.inbox.owners.owner_of(call_sid)  # type: ignore[union-attr]
    assert owner is not None and owner.process_id == "hostA:1:aa"

    token = parse_qs(urlsplit(a.creates()[0]["Url"]).query)["attempt"][0]
    url = f"{b.base_url}/twilio/amd-status?attempt={token}"
    form = {
        "CallSid": call_sid,
        "AccountSid": ACCOUNT,
        "AnsweredBy": "machine_end_beep",
        "MachineDetectionDuration": "2500",
    }
    answered = await b.post_signed(url, form)
    assert answered.status_code == 200 and answered.json() == {"verdict": "machine"}
    go.set()
    await a.rest.dialer.wait_for_end(call_sid, timeout=20)

    records = a.runtime.records
    assert records is not None
    records.store.flush()
    record = records.store.get_call(a.specs[0].call_id)
    assert record is not None
    assert record["amd_verdict"] == "machine" and record["amd_ms"] == 2500.0
    assert await b.runtime.inbox.owners.owner_of(call_sid) is None  # type: ignore[union-attr]

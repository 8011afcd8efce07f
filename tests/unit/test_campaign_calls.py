"""Issue 17: a campaign through the real server, its real job queue and the fake Twilio REST API.

The operator creates the campaign over ``POST /api/campaigns``; the server's campaign
runner (huey on the embedded SQLite queue, consumed by the same consumer the server runs
in-process) claims each contact and places it with Twilio's ``calls.create`` on the
simulator's fake, whose callees ring, answer or refuse, and whose signed status callbacks
end the attempts; their ends go back onto the queue, which applies the retry rules and
POSTs signed result webhooks. The consumer starts once the do-not-call entry is in, so
"added after creation" is not a race. The one answered call runs the keypad stand-in
pipeline (no models).
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp import web

from bot.outbound.consumer import InProcessConsumer
from integrations.outbound.store import OutboundStore
from integrations.screen_pop import verify_signature
from simulator.outbound.callee import Busy, Failed, NoAnswer, Press
from tests.support.outbound_server import BEARER, KeypadCallee, OutboundServers

ROOT = Path(__file__).resolve().parents[2]
REMINDERS = ROOT / "bot" / "agents" / "appointment_reminders.yaml"
SECRET = "campaign-result-webhook-secret"
BUSY, LATE, BAD, LISTED = "+15555550131", "+15555550132", "+15555550133", "+15555550134"


class ResultReceiver:
    """The campaign's result webhook: keeps each POST, says whether its signature holds."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/results", self._receive)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/results"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.received.append(
            {
                "key": request.headers.get("Idempotency-Key"),
                "signed": verify_signature(
                    SECRET, body, request.headers.get("X-Callagent-Signature", "")
                ),
                "payload": json.loads(body),
            }
        )
        return web.json_response({"ok": True})


@pytest.fixture
async def receiver() -> AsyncIterator[ResultReceiver]:
    found = ResultReceiver()
    await found.start()
    yield found
    await found.stop()


async def eventually(check: Any, timeout: float = 45.0) -> Any:
    """Poll the async ``check`` until it returns something truthy."""
    async with asyncio.timeout(timeout):
        while not (found := await check()):
            await asyncio.sleep(0.1)
    return found


@pytest.fixture
async def servers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[OutboundServers]:
    started = OutboundServers(tmp_path, monkeypatch)
    yield started
    await started.close()


async def test_a_campaign_dials_retries_and_reports_through_the_server_and_its_queue(
    servers: OutboundServers, receiver: ResultReceiver
) -> None:
    server = await servers.start(
        CALLAGENT_AGENT_FILE=str(REMINDERS),
        CALLAGENT_QUEUE_IN_PROCESS="false",  # consumed below, once the number is listed
        CALLAGENT_RESULT_WEBHOOK_SECRET=SECRET,
        CALLAGENT_OUTBOUND_RING_SECS="5",
    )
    consumer: InProcessConsumer | None = None
    try:
        dialer = server.rest.dialer
        dialer.register(BUSY, Busy())
        keys = (Press("1"), Press("0"))  # confirms, then the agent hangs up
        dialer.register(LATE, NoAnswer(), KeypadCallee(lines=keys))  # answers the retry
        dialer.register(BAD, Failed(code=21211))  # Twilio refuses the create
        rows = [
            {"phone": phone, "first_name": f"Pat{i}", "appointment": "Friday at 10 am"}
            for i, phone in enumerate((BUSY, LATE, BAD, LISTED))
        ]
        rules = {
            "windows": {"mon-sun": ["00:00-24:00"]},
            "timezone": "UTC",
            "max_concurrent": 4,
            "retries": ["busy=1x1s", "no-answer=1x1s", "failed=2x1s"],
            "result_webhook_url": receiver.url,
        }
        body = {"agent": "appointment_reminders", "name": "reminders", "rules": rules}
        created = await server.client.post(
            "/api/campaigns", json={**body, "rows": rows}, headers=BEARER
        )
        assert created.status_code == 201, created.text
        assert created.json()["imported"] == 4 and created.json()["problems"] == []
        campaign_id = created.json()["id"]
        listed = await server.client.post("/api/dnc", json={"phone": LISTED}, headers=BEARER)
        assert listed.status_code == 201

        queue = server.app.state.campaign_queue
        assert queue is not None and queue.consumer is None
        consumer = InProcessConsumer(queue.runner, workers=2)
        await asyncio.to_thread(consumer.start)

        async def completed() -> dict[str, Any] | None:
            got = await server.client.get(f"/api/campaigns/{campaign_id}", headers=BEARER)
            return got.json() if got.json()["state"] == "completed" else None

        campaign = await eventually(completed)
        await eventually(lambda: _at_least(receiver.received, 5))
    finally:
        if consumer is not None:
            await asyncio.to_thread(consumer.stop, 10)

    # progress over the API
    progress = campaign["progress"]
    assert progress["total"] == 4 and progress["done"] == 4 and progress["active_attempts"] == 0
    assert progress["dispositions"] == {
        "busy": 1,
        "confirmed": 1,
        "failed": 1,
        "do-not-call": 1,
    }

    # attempts per contact, their dispositions and provider call ids
    records = server.runtime.records
    assert records is not None
    attempts = OutboundStore(records.store.engine).attempts(campaign_id=campaign_id)
    by_phone: dict[str, list[Any]] = {}
    for a in sorted(attempts, key=lambda a: (a.to, a.number)):
        by_phone.setdefault(a.to, []).append(a)
    assert {p: [a.disposition for a in found] for p, found in by_phone.items()} == {
        BUSY: ["busy", "busy"],
        LATE: ["no-answer", "confirmed"],
        BAD: ["failed"],
    }  # LISTED: never dialled
    assert [a.number for a in by_phone[BUSY]] == [1, 2]
    (refused,) = by_phone[BAD]
    assert refused.error_code == 21211 and refused.provider_call_id is None  # not retried
    placed = [a for a in attempts if a.to != BAD]
    assert sorted(a.provider_call_id or "" for a in placed) == sorted(dialer.calls)
    for a in placed:
        assert dialer.calls[a.provider_call_id or ""].to == a.to

    # the fake saw each dial once, with the attempt's signed answer and status URLs
    creates = server.creates()
    assert sorted(f["To"] for f in creates) == sorted([BUSY, BUSY, LATE, LATE, BAD])
    tokens = [parse_qs(urlsplit(f["Url"]).query)["attempt"][0] for f in creates]
    assert len(set(tokens)) == len(creates)  # no attempt dialled twice
    assert sorted(t.split(".")[0] for t in tokens) == sorted(a.id for a in attempts)
    for form, token in zip(creates, tokens, strict=True):
        assert form["Url"] == f"{server.base_url}/twilio/voice?attempt={token}"
        assert form["StatusCallback"] == f"{server.base_url}/twilio/call-status?attempt={token}"
    for call in dialer.calls.values():
        assert call.deliveries and all(d.status == 200 for d in call.deliveries)  # signed: in
    (answered,) = [c for c in dialer.calls.values() if c.answered_at is not None]
    assert answered.to == LATE and answered.log.said == ["press:1", "press:0"]

    # the export shows the results
    export = f"/api/campaigns/{campaign_id}/export"
    exported = await server.client.get(export, params={"format": "csv"}, headers=BEARER)
    lines = await server.client.get(export, params={"format": "jsonl"}, headers=BEARER)
    assert exported.status_code == 200
    table = {row["phone"]: row for row in csv.DictReader(io.StringIO(exported.text))}
    assert {p: (r["disposition"], r["attempts"]) for p, r in table.items()} == {
        BUSY: ("busy", "2"),
        LATE: ("confirmed", "2"),
        BAD: ("failed", "1"),
        LISTED: ("do-not-call", "0"),
    }
    contacts = {c["phone"]: c for c in map(json.loads, lines.text.splitlines())}
    assert contacts[BAD]["last_error_code"] == 21211
    late = contacts[LATE]
    assert late["last_provider_call_id"] == by_phone[LATE][1].provider_call_id
    assert late["last_call_id"] is not None  # the answered call's record

    # one signed result per ended attempt
    assert all(r["signed"] for r in receiver.received)
    assert sorted(r["key"] for r in receiver.received) == sorted(a.id for a in attempts)
    results = {r["key"]: r["payload"] for r in receiver.received}
    for a in attempts:
        assert results[a.id]["attempt"]["disposition"] == a.disposition
        assert results[a.id]["attempt"]["error_code"] == a.error_code
    sent = json.dumps(list(results.values()))
    assert not any(phone in sent for phone in (BUSY, LATE, BAD))  # ids, never numbers


async def _at_least(items: list[Any], n: int) -> bool:
    return len(items) >= n

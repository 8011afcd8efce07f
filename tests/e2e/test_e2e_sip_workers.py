"""End to end: ``callagent serve --workers 2`` on Redis, SIP dials on whichever worker they land.

Two real worker processes (real models) share a Redis; one binds the SIP port and holds the
``callagent:owner:sip:server`` lease, the other stands by. Operator SIP calls are placed on
``POST /api/calls/outbound`` over fresh connections, so they land on either worker, until
one was forwarded by the standing-by worker; each INVITE must leave the SIP-serving worker
for the SIPp callee (486 Busy Here) and every attempt must end ``busy``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.queue import redis_server
from tests.support.sip_serve import OPERATOR_TOKEN, ServedSip, serve_sip
from tests.support.sipp import Sipp

pytestmark = [pytest.mark.e2e]

MAX_CALLS = 12
CALLEE = "+15555550142"
BEARER = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
FORWARDED = "SIP dial forwarded to the SIP-serving worker"


async def _until_both_workers_answer(served: ServedSip, timeout_s: float = 300.0) -> None:
    """Fresh connections until each of the two workers has answered ``/readyz`` ready.

    The SIP-serving worker can be ready well before the other has loaded its models (CI, under
    load): calls placed before then all land on it, and none is forwarded.
    """
    seen: set[str] = set()
    async with asyncio.timeout(timeout_s):
        while len(seen) < 2:
            try:
                async with httpx.AsyncClient() as client:
                    r = await client.get(f"{served.base_url}/readyz")
                if r.status_code == 200:
                    seen.add(str(r.json().get("process")))
            except (httpx.HTTPError, ValueError):
                pass
            await asyncio.sleep(0.1)


async def _place_until_forwarded(served: ServedSip) -> list[dict[str, Any]]:
    """Place SIP calls, each on a new connection (either worker), until one was forwarded."""
    placed: list[str] = []
    while len(placed) < MAX_CALLS and (len(placed) < 3 or FORWARDED not in served.log_text()):
        async with httpx.AsyncClient(base_url=served.base_url, headers=BEARER) as client:
            r = await client.post("/api/calls/outbound", json={"to": CALLEE, "channel": "sip"})
            assert r.status_code == 201, r.text
            placed.append(r.json()["attempt_id"])
    ended: list[dict[str, Any]] = []
    async with httpx.AsyncClient(base_url=served.base_url, headers=BEARER) as client:
        async with asyncio.timeout(60):
            for attempt_id in placed:
                while True:
                    attempt = (await client.get(f"/api/calls/outbound/{attempt_id}")).json()
                    if attempt["state"] == "ended":
                        ended.append(attempt)
                        break
                    await asyncio.sleep(0.2)
    return ended


def test_sip_calls_placed_on_either_worker_leave_the_sip_serving_one(tmp_path: Path) -> None:
    callee = Sipp("uas_busy.xml", calls=MAX_CALLS, timeout_s=900)  # its port, for the setting
    env = {
        "CALLAGENT_WORKERS": "2",
        "CALLAGENT_SIP_OUTBOUND_PROXY": callee.address,
        "CALLAGENT_SIP_CALLER_ID": "+15555550100",
        # up to 12 calls from one client, most landing on one worker: past the default burst
        "CALLAGENT_CALL_RATE_PER_MINUTE": "0",
    }
    with redis_server() as redis_url:
        env["CALLAGENT_SHARED_STATE_URL"] = redis_url
        with serve_sip(tmp_path, env, ready_timeout_s=600) as served:

            async def run() -> tuple[list[dict[str, Any]], int]:
                await _until_both_workers_answer(served)
                async with callee:
                    ended = await _place_until_forwarded(served)
                    result = await callee.stop()
                return ended, len(result.received("INVITE"))

            ended, invites = asyncio.run(run())
            log = served.log_text()
    assert FORWARDED in log, "every call landed on the SIP-serving worker"
    assert [(a["disposition"], a["error_code"]) for a in ended] == [("busy", 486)] * len(ended)
    assert invites == len(ended)  # each left the one SIP port, none refused on standby

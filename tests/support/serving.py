"""A real ``callagent serve`` process for the serving tests, and what they ask of it."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from twilio.request_validator import RequestValidator

from integrations.storage.engine import sqlite_url
from integrations.storage.store import CallStore
from simulator.fake_twilio import CallUpdate, FakeTwilioRest
from simulator.local_agent import LocalAgent
from simulator.phone import TwilioCallEmulator, new_sid, place_call
from simulator.target import SIM_ACCOUNT_SID

CALLER = "+15555550142"


class Served:
    """A ``LocalAgent`` in process mode with the calls and checks the tests make."""

    def __init__(self, local: LocalAgent, data_dir: Path) -> None:
        self.local = local
        self.data_dir = data_dir

    async def call(self) -> TwilioCallEmulator:
        """Place a call as Twilio does; a REST hang-up or redirect ends its stream, as there."""
        emulator = await place_call(
            self.local.base_url,
            auth_token=self.local.auth_token,
            account_sid=self.local.account_sid,
            from_number=CALLER,
        )

        def twilio_ends_stream(update: CallUpdate) -> None:
            if update.ends_stream:
                asyncio.ensure_future(emulator.remote_hang_up())

        self.local.routes.register(emulator.call_sid, twilio_ends_stream)
        return emulator

    async def voice_webhook(self) -> httpx.Response:
        """Twilio's signed voice webhook for a new inbound call (its TwiML answer)."""
        url = self.local.base_url + "/twilio/voice"
        form = {
            "CallSid": new_sid("CA"),
            "AccountSid": self.local.account_sid,
            "From": CALLER,
            "To": "+15555550199",
            "CallStatus": "ringing",
            "Direction": "inbound",
        }
        signature = RequestValidator(self.local.auth_token).compute_signature(url, form)
        async with httpx.AsyncClient(timeout=10) as client:
            return await client.post(url, data=form, headers={"X-Twilio-Signature": signature})

    async def readyz(self) -> httpx.Response:
        async with httpx.AsyncClient(timeout=10) as client:
            return await client.get(self.local.base_url + "/readyz")

    async def wait_ready(
        self, ready: bool, timeout_s: float = 30.0, *, draining: bool | None = None
    ) -> dict[str, Any]:
        """Poll ``/readyz`` until it says ``ready`` (200) or not (503) (and ``draining``, when
        given); its body."""
        deadline = time.monotonic() + timeout_s
        while True:
            r = await self.readyz()
            if (r.status_code == 200) == ready and draining in (None, r.json()["draining"]):
                return r.json()
            if time.monotonic() > deadline:
                raise AssertionError(f"/readyz still {r.status_code}: {r.text}")
            await asyncio.sleep(0.2)

    def records(self) -> list[dict[str, Any]]:
        """Every call record the server wrote (read from its data folder), with turns."""
        store = CallStore.open(sqlite_url(self.data_dir / "calls.db"), spool_dir=self.data_dir)
        try:
            listed = store.list_calls(limit=100)["calls"]
            return [store.get_call(c["id"]) or c for c in listed]
        finally:
            store.close()


def deployment_process(shared_state_url: str, auth_token: str, operator_token: str) -> LocalAgent:
    """One agent process of a deployment on ``shared_state_url`` (its own data folder, port
    and fake Twilio REST API; every process of the deployment is one Twilio account)."""
    local = LocalAgent(mode="process", env={"CALLAGENT_SHARED_STATE_URL": shared_state_url})
    local.auth_token, local.operator_token = auth_token, operator_token
    local.rest = FakeTwilioRest(SIM_ACCOUNT_SID, auth_token)
    local.rest.on_update(local.routes)
    return local


@contextlib.asynccontextmanager
async def two_processes(
    shared_state_url: str, auth_token: str, operator_token: str
) -> AsyncIterator[tuple[LocalAgent, LocalAgent]]:
    """Two started agent processes sharing ``shared_state_url``; stopped at the end."""
    a, b = (deployment_process(shared_state_url, auth_token, operator_token) for _ in range(2))
    try:
        await asyncio.gather(a.start(), b.start())
        yield a, b
    finally:
        await asyncio.gather(a.stop(), b.stop())

"""Fake CRMs: one on the project's CRM interface, one answering like a customer's REST CRM.

HubSpot's API has a fake of its own, :mod:`tests.fakes.hubspot`.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from aiohttp import web

from integrations.crm.base import CRM, CallerRecord, CallOutcome, CRMError
from simulator.loopback import LoopbackServer

KNOWN_NUMBER = "+15555550123"
"""The one caller the fakes know."""


class FakeCRM(CRM):
    """Knows one caller (``record`` on ``number``); keeps every write in ``writes``.

    ``delay_s`` delays each lookup; ``fail`` makes lookups raise :class:`CRMError`.
    """

    name = "fake"

    def __init__(
        self,
        record: CallerRecord | None,
        *,
        number: str = KNOWN_NUMBER,
        delay_s: float = 0.0,
        fail: bool = False,
    ) -> None:
        self.record = record
        self.number = number
        self.delay_s = delay_s
        self.fail = fail
        self.writes: list[tuple[Any, ...]] = []

    async def lookup(self, identity: str) -> CallerRecord | None:
        """The record if ``identity`` is the known number (after ``delay_s``)."""
        await asyncio.sleep(self.delay_s)
        if self.fail:
            raise CRMError("boom")
        return self.record if identity == self.number else None

    async def log_call(self, customer_id: str, outcome: CallOutcome) -> None:
        """Record the write."""
        self.writes.append(("log_call", customer_id, outcome.outcome))

    async def move_appointment(
        self, customer_id: str, appointment_id: str, starts_at: datetime
    ) -> None:
        """Record the write."""
        self.writes.append(("move", customer_id, appointment_id, starts_at.isoformat()))

    async def cancel_appointment(self, customer_id: str, appointment_id: str) -> None:
        """Record the write."""
        self.writes.append(("cancel", customer_id, appointment_id))

    async def add_pending_action(self, customer_id: str, kind: str, note: str = "") -> None:
        """Record the write."""
        self.writes.append(("action", customer_id, kind))


class FakeRestCRMServer(LoopbackServer):
    """A customer's REST CRM on loopback: ``GET /customers?phone=`` and ``POST
    /customers/{id}/events``.

    The lookup answers ``customer`` (a JSON body) for ``number`` and 404 otherwise; the
    first ``fail_first`` requests fail (``fail_status`` on lookup, 502 on write); ``delay_s`` delays
    each lookup. Every request is kept in ``requests`` as (method, path and query,
    headers, body).
    """

    def __init__(
        self,
        customer: dict[str, Any],
        *,
        number: str = KNOWN_NUMBER,
        fail_first: int = 0,
        delay_s: float = 0.0,
        fail_status: int = 503,
    ) -> None:
        self.customer = customer
        self.number = number
        self.fail_first = fail_first
        self.fail_status = fail_status
        self.delay_s = delay_s
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []

    def routes(self, app: web.Application) -> None:
        """Serve the lookup and the write-back."""
        app.router.add_get("/customers", self._lookup)
        app.router.add_post("/customers/{id}/events", self._events)

    async def _lookup(self, request: web.Request) -> web.Response:
        self.requests.append(("GET", str(request.rel_url), dict(request.headers), b""))
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.fail_first > 0:
            self.fail_first -= 1
            return web.json_response({"error": "busy"}, status=self.fail_status)
        if request.query.get("phone") != self.number:
            return web.json_response({"error": "not found"}, status=404)
        return web.json_response(self.customer)

    async def _events(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append(("POST", str(request.rel_url), dict(request.headers), body))
        if self.fail_first > 0:
            self.fail_first -= 1
            return web.json_response({}, status=502)
        return web.json_response({"ok": True})

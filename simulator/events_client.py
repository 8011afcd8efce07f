"""Reads one simulated call's events from the agent's ``/api/calls/{id}/events``.

The agent serves them with its operator token (:class:`~simulator.target.Target`), by our
call id or the Twilio CallSid, from any of its processes.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from simulator.target import Target


class EventsClient:
    """Reads one call's events from ``/api/calls/{id}/events``."""

    def __init__(self, target: Target, call_id: str, client: httpx.AsyncClient):
        """Read ``call_id``'s events (its Twilio CallSid works)."""
        self._url = f"{(target.base_url or '').rstrip('/')}/api/calls/{call_id}/events"
        self._headers = {"Authorization": f"Bearer {target.operator_token}"}
        self._client = client
        self._after = 0
        self.available = bool(target.base_url and target.operator_token)
        self.answered = False
        """Whether the endpoint answered at least once."""
        self.call_id: str | None = None
        """The agent's own id of the call (once the endpoint answered)."""
        self.active = True
        """Whether the call was still running at the last answer."""
        self.problem: str | None = None if self.available else "no operator token"

    async def fetch(self, wait_s: float = 0.0) -> list[dict[str, Any]]:
        """Events since the last fetch (waiting up to ``wait_s`` for one)."""
        if not self.available:
            return []
        try:
            response = await self._client.get(
                self._url,
                params={"after": self._after, "wait": wait_s},
                headers=self._headers,
                timeout=wait_s + 10,
            )
        except httpx.HTTPError as e:
            self.problem = f"events request failed ({type(e).__name__})"
            return []
        if response.status_code == 404:
            return []  # the call's log is not open yet
        if response.status_code != 200:
            self.available = False
            self.problem = f"events endpoint answered HTTP {response.status_code}"
            return []
        data = response.json()
        self.answered = True
        self.call_id = data.get("call_id", self.call_id)
        self.active = bool(data.get("active", True))
        self._after = int(data.get("next", self._after))
        return list(data.get("events", []))

    async def drain(self, timeout_s: float = 10.0) -> list[dict[str, Any]]:
        """Events since the last fetch, up to the call's end (at most ``timeout_s``)."""
        out: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout_s
        while self.available:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            out += await self.fetch(wait_s=min(1.0, left))
            if self.answered and not self.active:
                out += await self.fetch()
                break
            if not self.answered:
                await asyncio.sleep(0.2)  # the call's log is not open (yet)
        return out

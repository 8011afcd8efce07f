"""A fake agent desktop: the screen-pop webhook on loopback; records requests, can fail or stall."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from simulator.loopback import LoopbackServer


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class WebhookReceiver(LoopbackServer):
    """Answers ``POST /screen-pop``: ``statuses`` in turn (then 200), after ``delay_s``."""

    def __init__(self, statuses: list[int] | None = None, delay_s: float = 0.0):
        self.statuses = list(statuses or [])
        self.delay_s = delay_s
        self.received: list[Received] = []
        self._changed = asyncio.Event()

    @property
    def url(self) -> str:
        return f"{self.origin}/screen-pop"

    def routes(self, app: web.Application) -> None:
        """Serve the screen-pop webhook."""
        app.router.add_post("/screen-pop", self._handle)

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.received.append(Received(dict(request.headers), body))
        self._changed.set()
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        status = self.statuses.pop(0) if self.statuses else 200
        return web.json_response({"status": status}, status=status)

    async def wait_for(self, count: int = 1, timeout: float = 10.0) -> list[Received]:
        async with asyncio.timeout(timeout):
            while len(self.received) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.received

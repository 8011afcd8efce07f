"""A local agent-desktop webhook for screen-pop tests: records requests, can fail or stall."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class WebhookReceiver:
    """Answers ``POST /screen-pop``: ``statuses`` in turn (then 200), after ``delay_s``."""

    def __init__(self, statuses: list[int] | None = None, delay_s: float = 0.0):
        self.statuses = list(statuses or [])
        self.delay_s = delay_s
        self.received: list[Received] = []
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/screen-pop"

    async def start(self) -> WebhookReceiver:
        async def handle(request: web.Request) -> web.Response:
            body = await request.read()
            self.received.append(Received(dict(request.headers), body))
            self._changed.set()
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            status = self.statuses.pop(0) if self.statuses else 200
            return web.json_response({"status": status}, status=status)

        app = web.Application()
        app.router.add_post("/screen-pop", handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> WebhookReceiver:
        return await self.start()

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    async def wait_for(self, count: int = 1, timeout: float = 10.0) -> list[Received]:
        async with asyncio.timeout(timeout):
            while len(self.received) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.received

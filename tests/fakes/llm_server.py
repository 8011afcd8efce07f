"""A fake LLM: an OpenAI-compatible ``/v1/chat/completions`` server on loopback (as Groq's API)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from simulator.loopback import LoopbackServer


class FakeChatServer(LoopbackServer):
    """An OpenAI-compatible ``/v1/chat/completions`` endpoint on loopback.

    ``content`` is what the assistant message contains (a dict is JSON-encoded,
    a str sent as is); ``delay_s`` delays the answer; ``status`` sets the HTTP status.
    Every request body is kept in ``requests``.
    """

    def __init__(self) -> None:
        self.content: Any = {"reasoning": "r", "intent": "book_appointment", "confidence": 0.9}
        self.delay_s = 0.0
        self.status = 200
        self.requests: list[dict[str, Any]] = []

    @property
    def base_url(self) -> str:
        """The OpenAI base URL (``.../v1``), once started."""
        return f"{self.origin}/v1"

    def routes(self, app: web.Application) -> None:
        """Serve chat completions."""
        app.router.add_post("/v1/chat/completions", self._handle)

    async def _handle(self, request: web.Request) -> web.Response:
        self.requests.append(await request.json())
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.status != 200:
            return web.Response(status=self.status, text="error")
        content = self.content if isinstance(self.content, str) else json.dumps(self.content)
        body = {
            "id": "x",
            "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}}],
        }
        return web.json_response(body)

"""A fake Daily: its REST API's rooms and meeting tokens, on loopback."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from simulator.loopback import LoopbackServer

ROOM = {
    "id": "5e3cf703-5547-47d6-a371-37b1f0b4427f",
    "name": "cA3kq",
    "api_created": True,
    "privacy": "public",
    "url": "https://acme.daily.co/cA3kq",
    "created_at": "2026-11-21T12:00:00.000Z",
    "config": {},
}
"""The room every ``POST /v1/rooms`` creates (Daily's documented answer)."""


class FakeDailyApi(LoopbackServer):
    """``POST /v1/rooms`` (Bearer ``api_key`` only) and ``POST /v1/meeting-tokens``.

    Each request is kept in ``seen`` as (endpoint, Authorization header, JSON body); a
    meeting token is ``tok-<is_owner>``.
    """

    def __init__(self, api_key: str) -> None:
        self.api_key = api_key
        self.seen: list[tuple[str, str, dict[str, Any]]] = []

    @property
    def base_url(self) -> str:
        """The API's base URL (``.../v1``), once started."""
        return f"{self.origin}/v1"

    def routes(self, app: web.Application) -> None:
        """Serve rooms and meeting tokens."""
        app.router.add_post("/v1/rooms", self._rooms)
        app.router.add_post("/v1/meeting-tokens", self._tokens)

    async def _rooms(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.seen.append(("rooms", request.headers.get("Authorization", ""), body))
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return web.json_response({"error": "authorization-header-error"}, status=401)
        return web.json_response(ROOM)

    async def _tokens(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.seen.append(("meeting-tokens", request.headers.get("Authorization", ""), body))
        return web.json_response({"token": f"tok-{body['properties']['is_owner']}"})

"""The fake Twilio REST API plus a minimal ``POST .../Calls.json`` (calls.create), for dialer tests.

Kept tiny and in the test support on purpose: the simulator's full outbound leg (simulated
callees, callbacks) lives in ``simulator/``. Answers like Twilio: Basic auth, 201 with the
new call's JSON, Twilio-shaped errors (``fail_create`` injects e.g. 21211 or a 503).
"""

from __future__ import annotations

from aiohttp import web

from simulator.fake_twilio import API_VERSION, FakeTwilioRest, _error  # pyright: ignore[reportPrivateUsage]
from simulator.phone import new_sid


class FakeTwilioCalls(FakeTwilioRest):
    """:class:`FakeTwilioRest` that also creates calls (``creates`` holds each request's form)."""

    def __init__(self, account_sid: str, auth_token: str) -> None:
        super().__init__(account_sid, auth_token)
        self.creates: list[dict[str, list[str]]] = []
        self.created: list[str] = []
        self._create_failures: list[tuple[int, int]] = []

    def fail_create(self, status: int, code: int, times: int = 1) -> None:
        """Answer the next ``times`` creates with HTTP ``status`` and Twilio error ``code``."""
        self._create_failures.extend([(status, code)] * times)

    async def start(self) -> None:
        """Listen on a free loopback port with the create route added."""
        app = web.Application()
        app.router.add_post(f"/{API_VERSION}/Accounts/{{account_sid}}/Calls.json", self._create)
        app.router.add_post(
            f"/{API_VERSION}/Accounts/{{account_sid}}/Calls/{{call_sid}}.json", self._update_call
        )
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def _create(self, request: web.Request) -> web.Response:
        post = await request.post()
        form = {k: [str(v) for v in post.getall(k)] for k in post}
        if not self._authorized(request, request.match_info["account_sid"]):
            return _error(401, 20003, "Authenticate")
        self.creates.append(form)
        if self._create_failures:
            status, code = self._create_failures.pop(0)
            return _error(status, code, "Injected failure")
        sid = new_sid("CA")
        self.created.append(sid)
        body = {
            "sid": sid,
            "account_sid": self.account_sid,
            "status": "queued",
            "direction": "outbound-api",
            "to": form["To"][0],
            "from": form["From"][0],
            "api_version": API_VERSION,
        }
        return web.json_response(body, status=201)

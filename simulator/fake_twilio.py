"""A local stand-in for Twilio's REST API (the Calls resource): simulated calls, tests, benches.

Answers ``POST``/``GET /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json`` like
Twilio: HTTP Basic auth (account SID + auth token, or an API key pair), form fields
``Status``, ``Twiml`` and ``Url``, Twilio-shaped JSON answers and error bodies. Every
request is recorded; hooks hear each accepted update (a hang-up, or a redirect such as a
transfer's ``<Dial>``), so ``callagent simulate`` can end the emulated media stream as
Twilio would. ``POST /2010-04-01/Accounts/{AccountSid}/Calls.json`` places an outbound
call to a simulated callee (:attr:`FakeTwilioRest.dialer`, see :mod:`simulator.outbound`);
``GET`` on it lists calls, newest first, filtered by ``To`` and ``From``.
Pointed at by ``TWILIO_API_BASE_URL``; runs on 127.0.0.1 on a free port inside the event
loop that starts it (outbound calls run in that loop too).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

from simulator.fake_twilio_calls import FakeCall, call_json, call_list_json, error_body
from simulator.outbound.fake_dial import FakeDialer

API_VERSION = "2010-04-01"


@dataclass
class RestRequest:
    """One request the fake received."""

    method: str
    path: str
    account_sid: str
    call_sid: str
    form: dict[str, str]
    authorized: bool
    status: int


StatusHook = Callable[[FakeCall], Awaitable[None] | None]


@dataclass
class CallUpdate:
    """One authorised update of a call.

    Parameters:
        call_sid: The call.
        status: ``completed`` (a hang-up), else None.
        twiml: New TwiML for the call (a redirect, e.g. a transfer), else None.
        url: New TwiML URL for the call, else None.
        at: When the request arrived (``time.monotonic()``).
    """

    call_sid: str
    status: str | None = None
    twiml: str | None = None
    url: str | None = None
    at: float = field(default_factory=time.monotonic)

    @property
    def ends_stream(self) -> bool:
        """Whether Twilio would end the call's media stream (hang-up or redirect)."""
        return bool(self.status or self.twiml or self.url)

    def dial_target(self) -> str | None:
        """The ``<Dial>`` (or ``<Enqueue>``) target of redirect TwiML, e.g. ``number:+1555...``."""
        if not self.twiml:
            return None
        try:
            root = ET.fromstring(self.twiml)
        except ET.ParseError:
            return None
        enqueue = root.find(".//Enqueue")
        if enqueue is not None:
            return f"queue:{(enqueue.text or '').strip()}"
        dial = root.find(".//Dial")
        if dial is None:
            return None
        for child in dial:
            text = (child.text or "").strip()
            if text:
                return f"{child.tag.lower()}:{text}"
        return (dial.text or "").strip() or "dial"


UpdateHook = Callable[[CallUpdate], None]


class FakeTwilioRest:
    """Twilio's Calls REST resource on a loopback port.

    Example::

        async with FakeTwilioRest("AC...", "token") as rest:
            ...  # point TWILIO_API_BASE_URL at rest.base_url
            await rest.wait_for_hang_up("CA...", timeout=10)
    """

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        known_calls: set[str] | None = None,
        api_keys: dict[str, str] | None = None,
    ):
        """Configure the fake.

        Args:
            account_sid: The only account it knows.
            auth_token: That account's auth token (Basic auth password).
            known_calls: If given, other call SIDs get Twilio's 404 (error 20404).
            api_keys: API key SID -> secret pairs also accepted for Basic auth.
        """
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.known_calls = known_calls
        self.api_keys = dict(api_keys or {})
        self.requests: list[RestRequest] = []
        self.calls: dict[str, FakeCall] = {}
        self._hooks: list[StatusHook] = []
        self._update_hooks: list[UpdateHook] = []
        self.updates: list[CallUpdate] = []
        """Accepted updates, in order."""
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._failures: list[int] = []
        self._stalled_creates: list[float] = []
        self.port = 0
        self.dialer = FakeDialer(account_sid, auth_token, self.calls)
        """Outbound calls: register simulated callees here, read what happened to each call."""
        self._update_hooks.append(self.dialer.on_update)

    def fail_next(self, status: int, times: int = 1) -> None:
        """Answer the next ``times`` authorised requests with HTTP ``status`` (fault injection).

        Twilio answers 429 when an account sends too fast and 5xx when it is in trouble;
        the request is recorded with that status and changes nothing.
        """
        self._failures.extend([status] * times)

    def stall_next_creates(self, seconds: float, times: int = 1) -> None:
        """Place the next ``times`` calls but answer each create only after ``seconds``.

        The answer that never arrives in time: the client times out although the call was
        placed (and rings), as when a response is lost on the network.
        """
        self._stalled_creates.extend([seconds] * times)

    @property
    def base_url(self) -> str:
        """The API root to configure (like ``https://api.twilio.com``)."""
        return f"http://127.0.0.1:{self.port}"

    def on_status_change(self, hook: StatusHook) -> None:
        """Call ``hook(call)`` whenever a call's status changes (e.g. to ``completed``)."""
        self._hooks.append(hook)

    def on_update(self, hook: UpdateHook) -> None:
        """Call ``hook(update)`` for every accepted update (hang-up or redirect)."""
        self._update_hooks.append(hook)

    async def __aenter__(self) -> FakeTwilioRest:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Listen on 127.0.0.1 on a free port."""
        app = web.Application()
        app.router.add_post("/2010-04-01/Accounts/{account_sid}/Calls.json", self._create_call)
        app.router.add_get("/2010-04-01/Accounts/{account_sid}/Calls.json", self._list_calls)
        app.router.add_post(
            "/2010-04-01/Accounts/{account_sid}/Calls/{call_sid}.json", self._update_call
        )
        app.router.add_get(
            "/2010-04-01/Accounts/{account_sid}/Calls/{call_sid}.json", self._fetch_call
        )
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        """Stop listening (and the outbound calls still running)."""
        await self.dialer.aclose()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def hang_ups(self, call_sid: str | None = None) -> list[RestRequest]:
        """Authorised ``Status=completed`` requests (for one call, or all)."""
        return [
            r
            for r in self.requests
            if r.authorized
            and r.form.get("Status") == "completed"
            and (call_sid is None or r.call_sid == call_sid)
        ]

    async def wait_for_hang_up(
        self, call_sid: str | None = None, timeout: float = 10.0
    ) -> RestRequest:
        """Wait for an authorised hang-up request; raises ``TimeoutError``."""
        async with asyncio.timeout(timeout):
            while True:
                found = self.hang_ups(call_sid)
                if found:
                    return found[0]
                self._changed.clear()
                await self._changed.wait()

    def redirects(self, call_sid: str | None = None) -> list[CallUpdate]:
        """Accepted redirects (new ``Twiml`` or ``Url``), for one call or all."""
        return [
            u
            for u in self.updates
            if (u.twiml or u.url) and (call_sid is None or u.call_sid == call_sid)
        ]

    async def wait_for_redirect(self, call_sid: str, timeout: float = 10.0) -> CallUpdate:
        """Wait for the call's first accepted redirect; raises ``TimeoutError``.

        Polls, so it may be awaited from any event loop (the fake may serve in another
        thread's loop, beside an in-process agent).
        """
        async with asyncio.timeout(timeout):
            while True:
                found = self.redirects(call_sid)
                if found:
                    return found[0]
                await asyncio.sleep(0.01)

    # Handlers

    def _authorized(self, request: web.Request, account_sid: str) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        if user == self.account_sid == account_sid and password == self.auth_token:
            return True
        return account_sid == self.account_sid and self.api_keys.get(user) == password

    def _record(
        self, request: web.Request, form: dict[str, str], authorized: bool, status: int
    ) -> None:
        self.requests.append(
            RestRequest(
                request.method,
                request.path,
                request.match_info["account_sid"],
                request.match_info.get("call_sid", ""),
                form,
                authorized,
                status,
            )
        )
        self._changed.set()

    async def _check(self, request: web.Request, form: dict[str, str]) -> web.Response | None:
        account_sid = request.match_info["account_sid"]
        call_sid = request.match_info.get("call_sid")
        if not self._authorized(request, account_sid):
            self._record(request, form, False, 401)
            return _error(401, 20003, "Authenticate")
        if self._failures:
            status = self._failures.pop(0)
            self._record(request, form, True, status)
            return _error(status, 20500 if status >= 500 else 20429, "Injected failure")
        if call_sid and self.known_calls is not None and call_sid not in self.known_calls:
            self._record(request, form, True, 404)
            return _error(404, 20404, f"The requested resource {request.path} was not found")
        return None

    async def _create_call(self, request: web.Request) -> web.Response:
        post = await request.post()
        form = {k: str(v) for k, v in post.items()}
        failed = await self._check(request, form)
        if failed is not None:
            return failed
        events = [str(v) for v in post.getall("StatusCallbackEvent", [])]
        status, body = self.dialer.create(request.match_info["account_sid"], form, events)
        self._record(request, form, True, status)
        if status == 201 and self.known_calls is not None:
            self.known_calls.add(str(body["sid"]))
        if status == 201 and self._stalled_creates:
            await asyncio.sleep(self._stalled_creates.pop(0))
        return web.json_response(body, status=status)

    async def _list_calls(self, request: web.Request) -> web.Response:
        query = dict(request.query)
        failed = await self._check(request, query)
        if failed is not None:
            return failed
        self._record(request, query, True, 200)
        account_sid = request.match_info["account_sid"]
        return web.json_response(call_list_json(account_sid, list(self.calls.values()), query))

    async def _fetch_call(self, request: web.Request) -> web.Response:
        failed = await self._check(request, {})
        if failed is not None:
            return failed
        call = self._call(request)
        self._record(request, {}, True, 200)
        return web.json_response(call_json(call))

    async def _update_call(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        failed = await self._check(request, form)
        if failed is not None:
            return failed
        call = self._call(request)
        status = form.get("Status")
        if status is not None and status not in ("completed", "canceled"):
            self._record(request, form, True, 400)
            return _error(400, 21218, f"Invalid Status: {status}")
        if (form.get("Twiml") or form.get("Url")) and call.status == "completed":
            self._record(request, form, True, 400)
            return _error(400, 21220, "Call is not in-progress. Cannot redirect.")
        if form.get("Twiml"):
            call.twiml.append(form["Twiml"])
        if form.get("Url"):
            call.urls.append(form["Url"])
        changed = status is not None and call.status != "completed"
        if changed:
            call.status = "completed"
        self._record(request, form, True, 200)
        update = CallUpdate(call.sid, status, form.get("Twiml"), form.get("Url"))
        self.updates.append(update)
        for update_hook in self._update_hooks:
            update_hook(update)
        if changed:
            for hook in self._hooks:
                result = hook(call)
                if asyncio.iscoroutine(result):
                    asyncio.ensure_future(result)
        return web.json_response(call_json(call))

    def _call(self, request: web.Request) -> FakeCall:
        call_sid = request.match_info["call_sid"]
        if call_sid not in self.calls:
            self.calls[call_sid] = FakeCall(call_sid, request.match_info["account_sid"])
        return self.calls[call_sid]


def _error(status: int, code: int, message: str) -> web.Response:
    return web.json_response(error_body(status, code, message), status=status)

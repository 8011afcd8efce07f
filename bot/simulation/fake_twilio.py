"""A local stand-in for Twilio's Calls REST resource, so simulated calls see hang-ups and transfers.

The agent ends calls (``Status=completed``) and transfers them (``Twiml`` redirect to
``<Dial>``) through Twilio's REST API. Pointed at this server (``TWILIO_API_BASE_URL``),
those requests are answered like Twilio answers them (HTTP Basic auth, Twilio-shaped
JSON) and reported to the simulator, which then ends the emulated media stream as
Twilio would. Runs on 127.0.0.1 on a free port in the event loop that starts it.
(A fuller fake with error injection lives in ``tests/support/fake_twilio_rest.py``.)
"""

from __future__ import annotations

import base64
import binascii
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime

from aiohttp import web

API_VERSION = "2010-04-01"


@dataclass
class CallUpdate:
    """One authorised update of a call.

    Parameters:
        call_sid: The call.
        status: ``completed`` (a hang-up), else None.
        twiml: New TwiML for the call (a redirect, e.g. a transfer), else None.
        url: New TwiML URL for the call, else None.
    """

    call_sid: str
    status: str | None = None
    twiml: str | None = None
    url: str | None = None

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
            if (child.text or "").strip():
                return f"{child.tag.lower()}:{child.text.strip()}"
        return (dial.text or "").strip() or "dial"


UpdateHook = Callable[[CallUpdate], None]


@dataclass
class FakeTwilioRest:
    """Twilio's Calls REST resource on a loopback port."""

    account_sid: str
    auth_token: str
    updates: list[CallUpdate] = field(default_factory=list)
    port: int = 0
    _hooks: list[UpdateHook] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    _status: dict[str, str] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        """The API root to configure as ``TWILIO_API_BASE_URL``."""
        return f"http://127.0.0.1:{self.port}"

    def on_update(self, hook: UpdateHook) -> None:
        """Call ``hook(update)`` for every authorised update (in the server's loop)."""
        self._hooks.append(hook)

    async def start(self) -> None:
        """Listen on 127.0.0.1 on a free port."""
        app = web.Application()
        path = f"/{API_VERSION}/Accounts/{{account_sid}}/Calls/{{call_sid}}.json"
        app.router.add_post(path, self._update)
        app.router.add_get(path, self._fetch)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic ") or request.match_info["account_sid"] != self.account_sid:
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return user == self.account_sid and password == self.auth_token

    async def _fetch(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return _error(401, 20003, "Authenticate")
        return web.json_response(self._call_json(request.match_info["call_sid"]))

    async def _update(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return _error(401, 20003, "Authenticate")
        sid = request.match_info["call_sid"]
        form = {k: str(v) for k, v in (await request.post()).items()}
        status = form.get("Status")
        if status is not None and status not in ("completed", "canceled"):
            return _error(400, 21218, f"Invalid Status: {status}")
        if (form.get("Twiml") or form.get("Url")) and self._status.get(sid) == "completed":
            return _error(400, 21220, "Call is not in-progress. Cannot redirect.")
        update = CallUpdate(sid, status, form.get("Twiml"), form.get("Url"))
        if status:
            self._status[sid] = "completed"
        self.updates.append(update)
        for hook in self._hooks:
            hook(update)
        return web.json_response(self._call_json(sid))

    def _call_json(self, sid: str) -> dict[str, object]:
        now = format_datetime(datetime.now(UTC))
        status = self._status.get(sid, "in-progress")
        return {
            "sid": sid,
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "status": status,
            "direction": "inbound",
            "date_created": now,
            "date_updated": now,
            "uri": f"/{API_VERSION}/Accounts/{self.account_sid}/Calls/{sid}.json",
        }


def _error(status: int, code: int, message: str) -> web.Response:
    return web.json_response(
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
        status=status,
    )

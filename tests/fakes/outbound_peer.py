"""A stub of the agent's side of an outbound Twilio call, for the fake dialler's tests.

One aiohttp server: the answer webhook (``POST /voice``, answering ``<Connect><Stream>``
TwiML), the Media Stream peer (``/stream``), and the status and AMD callback receivers
(``/status``, ``/amd``). Every webhook's ``X-Twilio-Signature`` is checked with Twilio's
own ``RequestValidator`` and recorded. The stream peer "speaks" a tone: at the start (an
opening) or once the AMD callback says the beep has ended (a voicemail message), after
each ``#`` key, and closes the stream after the message or the ``#``.
"""

from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import dataclass, field

import numpy as np
from aiohttp import WSMsgType, web
from twilio.request_validator import RequestValidator
from twilio.twiml.voice_response import Connect, Stream, VoiceResponse

from integrations.speech.audio import mulaw_encode


def tone(seconds: float, hz: float = 440.0) -> bytes:
    """A tone as 16-bit 8 kHz PCM."""
    t = np.arange(int(seconds * 8000)) / 8000
    return (np.sin(2 * np.pi * hz * t) * 8000).astype("<i2").tobytes()


@dataclass
class Webhook:
    """One webhook the stub received."""

    path: str
    form: dict[str, str]
    signed: bool


@dataclass
class OutboundPeer:
    """The stub agent. ``opening``: speak at stream start (for ``opening_s``); ``status``: HTTP
    answer to callbacks."""

    auth_token: str
    opening: bool = True
    opening_s: float = 0.6
    status: int = 204
    webhooks: list[Webhook] = field(default_factory=list)
    starts: list[dict[str, object]] = field(default_factory=list)
    digits: str = ""
    port: int = 0
    _runner: web.AppRunner | None = None
    _amd: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    def received(self, path: str) -> list[Webhook]:
        """Webhooks received at ``path``."""
        return [w for w in self.webhooks if w.path == path]

    async def start(self) -> None:
        """Listen on a free loopback port."""
        app = web.Application()
        app.router.add_post("/voice", self._voice)
        app.router.add_post("/status", self._callback)
        app.router.add_get("/status", self._callback)
        app.router.add_post("/amd", self._callback)
        app.router.add_get("/stream", self._stream)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()

    async def _read(self, request: web.Request) -> Webhook:
        form = {k: str(v) for k, v in (await request.post()).items()}
        url = f"{self.base_url}{request.path_qs}"
        signature = request.headers.get("X-Twilio-Signature", "")
        signed = RequestValidator(self.auth_token).validate(url, form, signature)
        webhook = Webhook(request.path, form, bool(signed))
        self.webhooks.append(webhook)
        return webhook

    async def _voice(self, request: web.Request) -> web.Response:
        webhook = await self._read(request)
        response = VoiceResponse()
        connect = Connect()
        stream = Stream(url=f"ws://127.0.0.1:{self.port}/stream")
        stream.parameter(name="CallSid", value=webhook.form.get("CallSid", ""))
        stream.parameter(name="attempt", value="att-1")
        connect.append(stream)
        response.append(connect)
        return web.Response(text=str(response.to_xml()), content_type="application/xml")

    async def _callback(self, request: web.Request) -> web.Response:
        webhook = await self._read(request)
        if webhook.path == "/amd" and webhook.form.get("AnsweredBy", "").startswith("machine_end"):
            self._amd.set()
        return web.Response(status=self.status)

    async def _stream(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        stream_sid = ""
        waiter: asyncio.Task[None] | None = None
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                break
            event = json.loads(msg.data)
            if event.get("event") == "start":
                self.starts.append(event["start"])
                stream_sid = event["streamSid"]
                if self.opening:
                    await _speak(ws, stream_sid, self.opening_s)
                else:
                    waiter = asyncio.ensure_future(self._message_after_beep(ws, stream_sid))
            elif event.get("event") == "dtmf":
                digit = event["dtmf"]["digit"]
                self.digits += digit
                if digit == "#":
                    await _speak(ws, stream_sid, 0.6)
                    await asyncio.sleep(1.0)  # let it play out at the phone
                    await ws.close()
        if waiter is not None:
            waiter.cancel()
        return ws

    async def _message_after_beep(self, ws: web.WebSocketResponse, stream_sid: str) -> None:
        await self._amd.wait()
        await _speak(ws, stream_sid, 1.0)
        await asyncio.sleep(1.5)
        await ws.close()


async def _speak(ws: web.WebSocketResponse, stream_sid: str, seconds: float) -> None:
    audio = mulaw_encode(tone(seconds))
    for i in range(0, len(audio), 160):
        payload = base64.b64encode(audio[i : i + 160]).decode()
        await ws.send_str(
            json.dumps({"event": "media", "streamSid": stream_sid, "media": {"payload": payload}})
        )

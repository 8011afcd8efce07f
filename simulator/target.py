"""Where simulated calls go: a running agent, by URL (or the one started here).

A :class:`Target` says how to reach the agent's Twilio endpoints (or its SIP endpoint:
:attr:`Target.sip_uri`, calls then go over SIP/RTP), how to read its
per-call events (operator token; :mod:`simulator.events_client` reads them), and, when
the agent was started here (:class:`simulator.local_agent.LocalAgent`), gives the fake
Twilio REST API its hang-ups and transfers go to (:class:`RestRoutes`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from integrations.speech.base import SpeechRecognizer
from simulator.fake_twilio import CallUpdate, FakeTwilioRest
from simulator.phone import PhoneCall, TwilioCallEmulator, place_call, place_sip_call

SIM_ACCOUNT_SID = "AC" + "5" * 32
STREAM_PATH = "/twilio/stream"


@dataclass
class RestRoutes:
    """Sends the fake REST API's call updates to the simulated call they concern."""

    _routes: dict[str, Callable[[CallUpdate], object]] = field(default_factory=dict)

    def register(self, call_sid: str, handler: Callable[[CallUpdate], None]) -> None:
        """Deliver ``call_sid``'s updates to ``handler`` (in the loop that registered it)."""
        loop = asyncio.get_running_loop()

        def deliver(update: CallUpdate) -> None:
            loop.call_soon_threadsafe(handler, update)

        self._routes[call_sid] = deliver

    def unregister(self, call_sid: str) -> None:
        """Stop delivering ``call_sid``'s updates."""
        self._routes.pop(call_sid, None)

    def __call__(self, update: CallUpdate) -> None:
        """The fake's update hook."""
        route = self._routes.get(update.call_sid)
        if route is not None:
            route(update)


@dataclass
class Target:
    """How to reach the agent under test.

    Parameters:
        stream_url: The Twilio Media Streams WebSocket (``ws://host/twilio/stream``).
        base_url: The server's HTTP base URL (webhook, events, diagnostics), if known.
        auth_token: Twilio auth token to sign requests with (servers that check).
        operator_token: Reads ``/api/calls/{id}/events`` (intent and escalation checks).
        via_webhook: Place calls through ``/twilio/voice`` (TwiML) instead of the stream.
        rest: Routes of the fake Twilio REST API the agent talks to (agent started here).
        fake_twilio: That fake itself (agent started here): outbound calls ring its callees.
        transcriber: ASR for what the caller heard.
        label: Where it is, for reports.
        sip_uri: Place the calls over SIP to this URI (``sip:agent@host:port``) instead of
            Twilio Media Streams; the URLs above still serve the events and records.
    """

    stream_url: str
    base_url: str | None = None
    auth_token: str | None = None
    operator_token: str | None = None
    via_webhook: bool = False
    rest: RestRoutes | None = None
    transcriber: SpeechRecognizer | None = None
    label: str = ""
    fake_twilio: FakeTwilioRest | None = None
    sip_uri: str | None = None

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        auth_token: str | None = None,
        operator_token: str | None = None,
    ) -> Target:
        """A running agent: ``ws(s)://host/twilio/stream``, or its base ``http(s)://host``.

        With an ``http(s)`` URL calls are placed like Twilio does (voice webhook, then the
        stream its TwiML names).
        """
        parts = urlsplit(url)
        if parts.scheme in ("ws", "wss"):
            http = "https" if parts.scheme == "wss" else "http"
            base = urlunsplit((http, parts.netloc, "", "", ""))
            return cls(url, base, auth_token, operator_token, label=url)
        if parts.scheme in ("http", "https"):
            ws = "wss" if parts.scheme == "https" else "ws"
            stream = urlunsplit((ws, parts.netloc, STREAM_PATH, "", ""))
            base = urlunsplit((parts.scheme, parts.netloc, "", "", ""))
            return cls(stream, base, auth_token, operator_token, via_webhook=True, label=url)
        raise ValueError("the URL must be ws(s)://HOST/twilio/stream or http(s)://HOST")

    def over_sip(self, sip_uri: str) -> Target:
        """The same agent, called over SIP at ``sip_uri`` (checked: ``sip:user@host[:port]``).

        Raises:
            ValueError: not a SIP URI.
        """
        from simulator.phone import SipTarget

        uri = SipTarget.parse(sip_uri).uri
        label = f"{self.label} over SIP ({uri})" if self.label else uri
        return replace(self, sip_uri=uri, label=label)

    async def dial(self, **emulator_kwargs: Any) -> PhoneCall:
        """Place one call and return it connected.

        Over SIP when :attr:`sip_uri` is set (an INVITE, then RTP). Else through the voice
        webhook like Twilio when :attr:`via_webhook` (a server that checks signatures admits
        only streams its webhook issued a token for), else straight to the stream (a
        server on loopback without an auth token).

        Args:
            **emulator_kwargs: Passed to :class:`~simulator.phone.TwilioCallEmulator`
                or :class:`~simulator.phone.SipCallEmulator` (``from_number``,
                ``background``, ``line``...).
        """
        if self.sip_uri:
            return await place_sip_call(self.sip_uri, **emulator_kwargs)
        if self.via_webhook and self.base_url:
            return await place_call(
                self.base_url,
                auth_token=self.auth_token,
                account_sid=SIM_ACCOUNT_SID if self.rest is not None else None,
                **emulator_kwargs,
            )
        call = TwilioCallEmulator(self.stream_url, auth_token=self.auth_token, **emulator_kwargs)
        await call.connect()
        return call

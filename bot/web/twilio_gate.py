"""Who may use the Twilio routes, at which public URL, and which media streams are admitted.

The server's Twilio handlers (``bot/web/twilio_routes.py``) ask a :class:`TwilioGate`:

* **Closed routes.** On a non-loopback ``CALLAGENT_HOST`` every ``/twilio/*`` route answers
  403 naming the setting to fix when signatures are not checked (no ``TWILIO_AUTH_TOKEN``,
  or ``TWILIO_VALIDATE_SIGNATURES=false``) unless ``CALLAGENT_TWILIO_INSECURE_ACCEPT_UNSIGNED``
  opts out (logged loudly at start-up), or when ``CALLAGENT_PUBLIC_URL`` is unset (the
  ``Host``/``X-Forwarded-Host`` headers never decide the stream URL there). A server that
  also serves browser calls still starts: the Twilio routes alone are closed, and start-up
  logs why. On loopback (a laptop, the tests) neither is needed.
* **Signatures.** The voice webhook and the stream upgrade carry a valid ``X-Twilio-Signature``.
* **Binding.** With signatures checked, each stream must carry the token its webhook issued
  and each CallSid gets one stream (:mod:`transports.twilio_binding`).
"""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import HTTPException, Request, WebSocket
from fastapi.responses import JSONResponse
from loguru import logger

from bot.call.transport import public_base_url, twilio_stream_allowed, twilio_webhook_allowed
from bot.client_address import is_loopback_host
from bot.settings import Settings
from integrations.shared_state.base import SharedStateError
from integrations.shared_state.memory import MemorySharedState
from transports import twilio
from transports.twilio_binding import (
    CallSidLedger,
    SharedCallSidLedger,
    SignedStreams,
    StreamBinding,
    StreamBindingError,
    StreamLease,
    StreamTokenSigner,
    UnboundStreams,
)

_TRACKED_PARAMETERS = ("From", "To", "CallSid")
"""Webhook fields handed to the stream as ``<Parameter>`` values."""


def closed_reason(settings: Settings) -> str | None:
    """Why the Twilio routes are closed with these settings (None: open)."""
    if is_loopback_host(settings.host):
        return None
    if not settings.twilio_signatures_checked and not settings.twilio_insecure_accept_unsigned:
        return (
            f"Twilio routes are closed: this server listens on CALLAGENT_HOST={settings.host} "
            "(not loopback) without Twilio signature checks, so anyone could place calls. "
            "Set TWILIO_AUTH_TOKEN (with TWILIO_VALIDATE_SIGNATURES=true), or accept unsigned "
            "requests anyway with CALLAGENT_TWILIO_INSECURE_ACCEPT_UNSIGNED=true."
        )
    if not settings.public_url:
        return (
            f"Twilio routes are closed: on CALLAGENT_HOST={settings.host} (not loopback) set "
            "CALLAGENT_PUBLIC_URL=https://your-public-host, the URL Twilio calls; the request's "
            "Host header never decides the stream URL or the signed URL there."
        )
    return None


class TwilioGate:
    """The Twilio routes' checks, from the settings (one per server)."""

    def __init__(self, settings: Settings, ledger: CallSidLedger | None = None):
        """Decide from ``settings``; ``ledger`` knows which CallSids streamed.

        The server passes the deployment's (:class:`SharedCallSidLedger` on
        ``Runtime.shared``); the default is one in this process's memory.
        """
        self._settings = settings
        self.closed_reason = closed_reason(settings)
        ledger = ledger or SharedCallSidLedger(MemorySharedState())
        self.binding: StreamBinding = (
            SignedStreams(StreamTokenSigner.for_auth_token(settings.twilio_auth_token), ledger)
            if settings.twilio_signatures_checked
            else UnboundStreams(ledger)
        )

    def log_startup(self) -> None:
        """Say at start-up what is open, closed or unsafe about the Twilio routes."""
        settings = self._settings
        if self.closed_reason:
            logger.warning(self.closed_reason)
        elif not settings.twilio_signatures_checked and not is_loopback_host(settings.host):
            logger.warning(
                "INSECURE: CALLAGENT_TWILIO_INSECURE_ACCEPT_UNSIGNED=true on "
                f"CALLAGENT_HOST={settings.host}: /twilio/* accepts unsigned requests, so anyone "
                "who can reach this server can place calls and open media streams. Set "
                "TWILIO_AUTH_TOKEN for production."
            )
        elif not settings.twilio_signatures_checked:
            logger.info(
                "Twilio requests are not signature-checked (no TWILIO_AUTH_TOKEN); "
                "acceptable on loopback only"
            )

    def require_open(self, _request: Request) -> None:
        """FastAPI dependency: 403 naming the setting while the Twilio routes are closed."""
        if self.closed_reason:
            raise HTTPException(403, self.closed_reason)

    def public_url(self, request: Request | WebSocket) -> str:
        """The public base URL (the setting; from the Host header on loopback only).

        Raises:
            HTTPException: 403 naming the setting while the Twilio routes are closed.
        """
        if self.closed_reason:
            raise HTTPException(403, self.closed_reason)
        return public_base_url(self._settings, request)

    async def check_webhook(self, request: Request, form: dict[str, str]) -> str:
        """Check a voice webhook; returns the public base URL.

        Raises:
            HTTPException: 403 (routes closed, bad signature) or 409 (the call already
                has or had a stream here).
        """
        public_url = self.public_url(request)
        settings = self._settings
        if not twilio_webhook_allowed(settings, request, form, public_url):
            logger.warning("Twilio webhook rejected: bad signature")
            raise HTTPException(403, "invalid Twilio signature")
        call_sid = form.get("CallSid", "")
        try:
            await self.binding.check_webhook(call_sid)
        except StreamBindingError as e:
            logger.warning(f"Twilio webhook for {call_sid} refused: {e}")
            raise HTTPException(409, f"{e}: CallSid {call_sid}") from None
        return public_url

    async def check_callback(self, request: Request, form: dict[str, str]) -> None:
        """Check a Twilio callback's signature (status and AMD callbacks of outbound calls).

        Raises:
            HTTPException: 403 (routes closed, bad signature).
        """
        public_url = self.public_url(request)
        if not twilio_webhook_allowed(self._settings, request, form, public_url):
            logger.warning(f"Twilio callback {request.url.path} rejected: bad signature")
            raise HTTPException(403, "invalid Twilio signature")

    def stream_parameters(
        self, form: dict[str, str], extra: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        """The TwiML ``<Parameter>`` values for this webhook's stream (the token included).

        ``extra`` (e.g. an outbound call's attempt) joins the webhook's tracked fields under
        the stream token.

        Raises:
            HTTPException: 400 when the webhook lacks the CallSid/AccountSid to bind to.
        """
        parameters = {k: form[k] for k in _TRACKED_PARAMETERS if k in form} | dict(extra or {})
        try:
            return self.binding.stream_parameters(
                form.get("CallSid", ""), form.get("AccountSid", ""), parameters
            )
        except StreamBindingError as e:
            raise HTTPException(400, str(e)) from None

    async def open_stream(self, websocket: WebSocket) -> str | None:
        """Check a stream's upgrade; returns the public base URL, or None once refused (403)."""
        if self.closed_reason:
            logger.warning("Twilio stream refused: the Twilio routes are closed (see start-up)")
            await _deny(websocket, self.closed_reason)
            return None
        public_url = public_base_url(self._settings, websocket)
        if not twilio_stream_allowed(self._settings, websocket, public_url):
            await _deny(websocket, "invalid Twilio signature")
            return None
        return public_url

    async def admit_stream(
        self, websocket: WebSocket, start: twilio.TwilioStreamStart
    ) -> StreamLease | None:
        """Admit an accepted stream after its ``start``; None once refused (closed, 1008)."""
        try:
            return await self.binding.admit(start)
        except StreamBindingError as e:
            logger.warning(f"Twilio stream for {start.call_sid} refused: {e}")
            await websocket.close(code=1008, reason="stream not bound to a webhook for its call")
            return None
        except SharedStateError as e:  # once per CallSid cannot be checked: not admitted
            logger.warning(f"Twilio stream for {start.call_sid} refused: CallSid ledger ({e})")
            await websocket.close(code=1011, reason="the server cannot admit streams now")
            return None


async def _deny(websocket: WebSocket, reason: str) -> None:
    """Refuse a WebSocket upgrade with HTTP 403 and the reason (when the server can)."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(JSONResponse({"detail": reason}, status_code=403))
    else:
        await websocket.close(code=1008)

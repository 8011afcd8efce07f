"""Set up one call's transport: the one place for the server and for Pipecat's runner.

``callagent serve`` (:mod:`bot.web.app`) and Pipecat's development runner / Pipecat Cloud
(:mod:`bot.bot`) both build a call here, so a call reached either way runs at the same
rates, with the same Twilio signature check, hang-up and input batching. SIP trunk calls
(:func:`sip_call`) are built here too, by the server's SIP side (``bot/web/sip_server.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request, WebSocket
from loguru import logger
from pipecat.transports.base_transport import BaseTransport
from pipecat.transports.smallwebrtc.connection import SmallWebRTCConnection

from bot.call.pipeline import CallSpec
from bot.settings import Settings
from integrations.speech.audio import PHONE_SAMPLE_RATE
from processors.outbound_call import OutboundCall
from transports import rooms, twilio, webrtc
from transports.input_batching import BatchingPolicy
from transports.sip.contracts import SipCall
from transports.sip.transport import SipTransport

WEBRTC_IN_RATE = 16000
WEBRTC_OUT_RATE = 24000
ROOM_RATE = 16000


@dataclass(frozen=True)
class CallTransport:
    """A call ready to run: its transport and what the call is.

    Parameters:
        transport: The Pipecat transport the pipeline reads from and writes to.
        spec: Where the call came from and at which rates its pipeline runs.
    """

    transport: BaseTransport
    spec: CallSpec


def webrtc_call(connection: SmallWebRTCConnection, caller: str | None = None) -> CallTransport:
    """A browser call over Pipecat's SmallWebRTC connection."""
    spec = CallSpec("webrtc", WEBRTC_IN_RATE, WEBRTC_OUT_RATE, caller=caller)
    transport = webrtc.create_webrtc_transport(
        connection, audio_in_sample_rate=WEBRTC_IN_RATE, audio_out_sample_rate=WEBRTC_OUT_RATE
    )
    return CallTransport(transport, spec)


def daily_call(join: rooms.RoomJoin, caller: str | None = None) -> CallTransport:
    """The bot in a Daily room (``caller``: the dial-in number, when there is one)."""
    transport = rooms.create_daily_transport(join, sample_rate=ROOM_RATE)
    return CallTransport(transport, CallSpec("daily", ROOM_RATE, ROOM_RATE, caller=caller))


def livekit_call(join: rooms.RoomJoin) -> CallTransport:
    """The bot in a LiveKit room."""
    transport = rooms.create_livekit_transport(join, sample_rate=ROOM_RATE)
    return CallTransport(transport, CallSpec("livekit", ROOM_RATE, ROOM_RATE))


def sip_call(
    call: SipCall,
    *,
    batching: BatchingPolicy | None = None,
    agent: str | None = None,
    outbound: OutboundCall | None = None,
) -> CallTransport:
    """A phone call on our SIP trunk: an established dialog, G.711 at 8 kHz both ways.

    Args:
        call: The answered (inbound) or answered outbound dialog.
        batching: How many 20 ms media chunks make one audio frame (default: one).
        agent: Which of the server's agents takes the call (None: the default agent).
        outbound: The outbound call this dialog is (None: an inbound call).
    """
    direction = "outbound" if outbound is not None else call.direction
    spec = CallSpec(
        "sip",
        PHONE_SAMPLE_RATE,
        PHONE_SAMPLE_RATE,
        # inbound: the From user part; outbound: the CRM looks the callee up by outbound.to
        caller=call.invite.caller or None,
        provider_call_id=call.call_id,
        direction=direction,
        agent=agent,
        outbound=outbound,
    )
    return CallTransport(SipTransport(call, batching=batching), spec)


def twilio_stream_allowed(settings: Settings, websocket: WebSocket, public_url: str) -> bool:
    """Whether a Media Streams WebSocket carries a valid Twilio signature (or none is required).

    Args:
        settings: The agent's settings (auth token, whether to validate).
        websocket: The stream's WebSocket (its upgrade request's URL and headers).
        public_url: The public base URL the stream was reached at.
    """
    if not settings.twilio_signatures_checked:
        return True
    url = twilio.public_request_url(
        public_url, websocket.url.path, websocket.url.query, websocket=True
    )
    signature = websocket.headers.get("X-Twilio-Signature", "")
    if twilio.validate_stream_signature(settings.twilio_auth_token, url, signature):
        return True
    logger.warning("Twilio stream rejected: bad signature")
    return False


def twilio_webhook_allowed(
    settings: Settings, request: Request, form: dict[str, str], public_url: str
) -> bool:
    """Whether a Twilio webhook carries a valid signature (or none is required).

    Args:
        settings: The agent's settings (auth token, whether to validate).
        request: The webhook request (its URL and ``X-Twilio-Signature`` header).
        form: Its form fields, which the signature covers.
        public_url: The public base URL the webhook was reached at.
    """
    if not settings.twilio_signatures_checked:
        return True
    url = twilio.public_request_url(public_url, request.url.path, request.url.query)
    signature = request.headers.get("X-Twilio-Signature", "")
    return twilio.validate_webhook_signature(settings.twilio_auth_token, url, form, signature)


def twilio_call(
    websocket: WebSocket,
    start: twilio.TwilioStreamStart,
    settings: Settings,
    *,
    public_url: str,
    batching: BatchingPolicy | None = None,
    agent: str | None = None,
    outbound: OutboundCall | None = None,
) -> CallTransport:
    """A phone call over Twilio Media Streams, on an accepted WebSocket after its ``start``.

    Args:
        websocket: The accepted stream WebSocket.
        start: What Twilio's ``start`` message said.
        settings: The agent's settings (Twilio account, REST root, hang-up).
        public_url: The public base URL the call reached us at (transfer callbacks).
        batching: How many 20 ms media chunks make one audio frame (default: one).
        agent: Which of the server's agents takes the call (None: the default agent).
        outbound: The outbound call this stream is the leg of (None: an inbound call).
    """
    spec = CallSpec(
        "twilio",
        PHONE_SAMPLE_RATE,
        PHONE_SAMPLE_RATE,
        caller=start.custom_parameters.get("From"),
        provider_call_id=start.call_sid,
        public_url=public_url,
        direction="outbound" if outbound is not None else "inbound",
        agent=agent,
        outbound=outbound,
    )
    transport = twilio.create_twilio_transport(
        websocket,
        start,
        account_sid=settings.twilio_account_sid,
        auth_token=settings.twilio_auth_token,
        rest_base_url=settings.twilio_api_base_url,
        hang_up=settings.twilio_hang_up_enabled,
        batching=batching,
    )
    return CallTransport(transport, spec)


def public_base_url(settings: Settings, request: Request | WebSocket) -> str:
    """The public base URL callers reach us at (setting, else the request's own host)."""
    if settings.public_url:
        return settings.public_url.rstrip("/")
    scheme = request.headers.get("x-forwarded-proto", request.url.scheme)
    scheme = {"ws": "http", "wss": "https"}.get(scheme, scheme)
    host = request.headers.get("x-forwarded-host", request.headers.get("host", request.url.netloc))
    return f"{scheme}://{host}"

"""Twilio Media Streams, server side: TwiML, signatures, the stream handshake and the transport.

Takes plain values (the bot passes them from settings); reads no configuration
itself. Nothing here logs caller data: log lines carry Twilio ids, event names
and sizes only, never payloads, phone numbers, digits or parameters.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from fastapi import WebSocket
from loguru import logger
from pipecat.frames.frames import (
    EndWorkerFrame,
)
from pipecat.serializers.twilio import TwilioFrameSerializer
from pipecat.transports.websocket.fastapi import FastAPIWebsocketParams, FastAPIWebsocketTransport
from twilio.request_validator import RequestValidator
from twilio.twiml.voice_response import Connect, Stream, VoiceResponse

from integrations.speech.audio import PHONE_SAMPLE_RATE
from transports.input_batching import BatchingPolicy
from transports.twilio_serializer import (
    MAX_MESSAGE_BYTES,
    HardenedTwilioSerializer,
    event_label,
)

MEDIA_ENCODING = "audio/x-mulaw"
DEFAULT_SESSION_TIMEOUT_S = 60 * 60
"""A call is ended (politely, with hang-up) after this long."""

_SID = re.compile(r"^[A-Za-z]{2}[A-Za-z0-9]{1,62}$")


class StreamStartError(Exception):
    """The WebSocket did not open like a Twilio media stream; the message holds no caller data."""


@dataclass(frozen=True)
class MediaFormat:
    """The audio format Twilio announced in its ``start`` message."""

    encoding: str
    sample_rate: int
    channels: int


@dataclass(frozen=True)
class TwilioStreamStart:
    """What Twilio's ``start`` message says about the call.

    Parameters:
        stream_sid: The media stream id (``MZ...``); every message we send carries it.
        call_sid: The call id (``CA...``); hang-up and transfer address it.
        account_sid: The account the call belongs to (``AC...``).
        custom_parameters: The ``<Parameter>`` values from our TwiML (e.g. ``From``). Caller data:
            never log them.
        media_format: The announced audio format (always μ-law 8 kHz mono once accepted).
        tracks: The tracks Twilio streams to us.
    """

    stream_sid: str
    call_sid: str
    account_sid: str
    custom_parameters: dict[str, str] = field(default_factory=dict, repr=False)
    media_format: MediaFormat = MediaFormat(MEDIA_ENCODING, PHONE_SAMPLE_RATE, 1)
    tracks: tuple[str, ...] = ("inbound",)


def build_stream_twiml(stream_url: str, parameters: dict[str, str]) -> str:
    """TwiML that connects the call to our media stream WebSocket.

    Args:
        stream_url: The public ``wss://`` URL of the stream endpoint.
        parameters: Custom parameters Twilio hands back in the ``start`` message.

    Returns:
        The XML document (escaped by the ``twilio`` package's TwiML builder).
    """
    response = VoiceResponse()
    connect = Connect()
    stream = Stream(url=stream_url)
    connect.append(stream)
    for name, value in parameters.items():
        stream.parameter(name=name, value=value)
    response.append(connect)
    return str(response.to_xml())


def public_request_url(
    public_base_url: str, path: str, query: str = "", *, websocket: bool = False
) -> str:
    """The URL Twilio signed: the public base URL (as seen behind a proxy) plus path and query.

    Args:
        public_base_url: ``https://host[:port]`` the world reaches us at.
        path: The request path (e.g. ``/twilio/voice``).
        query: The raw query string, without ``?``.
        websocket: Give the ``ws``/``wss`` form (for the stream upgrade request).
    """
    parts = urlsplit(public_base_url.rstrip("/"))
    scheme = parts.scheme
    if websocket:
        scheme = {"http": "ws", "https": "wss"}.get(scheme, scheme)
    base_path = parts.path.rstrip("/")
    return urlunsplit((scheme, parts.netloc, base_path + path, query, ""))


def validate_webhook_signature(
    auth_token: str, url: str, params: dict[str, str], signature: str
) -> bool:
    """Check ``X-Twilio-Signature`` on a form-encoded webhook POST.

    Args:
        auth_token: The account's auth token.
        url: The full public URL Twilio called, query string included.
        params: Every POST form field.
        signature: The ``X-Twilio-Signature`` header value ("" when missing).
    """
    if not auth_token or not signature:
        return False
    try:
        return bool(RequestValidator(auth_token).validate(url, params, signature))
    except Exception:
        return False


def validate_stream_signature(auth_token: str, url: str, signature: str) -> bool:
    """Check ``X-Twilio-Signature`` on the media stream's WebSocket upgrade (signed over the URL).

    Args:
        auth_token: The account's auth token.
        url: The full public ``wss://`` URL from our TwiML.
        signature: The ``X-Twilio-Signature`` header value ("" when missing).
    """
    return validate_webhook_signature(auth_token, url, {}, signature)


def compute_signature(auth_token: str, url: str, params: dict[str, str] | None = None) -> str:
    """The ``X-Twilio-Signature`` Twilio would send for ``url`` and ``params`` (tests, emulator)."""
    return str(RequestValidator(auth_token).compute_signature(url, params or {}))


async def read_stream_start(websocket: WebSocket, timeout_s: float) -> TwilioStreamStart:
    """Read Twilio's ``connected`` and ``start`` messages from an accepted WebSocket.

    Args:
        websocket: The accepted stream WebSocket (anything with an ASGI ``receive()``).
        timeout_s: Time allowed for both messages.

    Returns:
        The stream's ids, custom parameters and (checked) media format.

    Raises:
        StreamStartError: timeout, disconnect, malformed or unexpected messages, bad ids, or a
            media format other than μ-law 8 kHz mono. The message carries no caller data.
    """
    try:
        async with asyncio.timeout(timeout_s):
            for _ in range(3):
                message = await _receive_json(websocket)
                event = message.get("event")
                if event == "connected":
                    continue
                if event == "start":
                    return _parse_start(message)
                raise StreamStartError(f"expected a 'start' event, got {event_label(event)}")
    except TimeoutError:
        raise StreamStartError(f"no 'start' event within {timeout_s:g}s") from None
    raise StreamStartError("no 'start' event after 'connected'")


async def _receive_json(websocket: WebSocket) -> dict[str, Any]:
    message = await websocket.receive()
    if message.get("type") == "websocket.disconnect":
        raise StreamStartError("the WebSocket closed before the 'start' event")
    raw = message.get("text")
    if raw is None:
        raw = message.get("bytes")
    if raw is None:
        raise StreamStartError("empty WebSocket message before the 'start' event")
    if len(raw) > MAX_MESSAGE_BYTES:
        raise StreamStartError(f"oversized message ({len(raw)} bytes) before the 'start' event")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise StreamStartError(
            f"malformed JSON ({len(raw)} bytes) before the 'start' event"
        ) from None
    if not isinstance(data, dict):
        raise StreamStartError("a non-object JSON message before the 'start' event")
    return data


def _parse_start(message: dict[str, Any]) -> TwilioStreamStart:
    start = message.get("start")
    if not isinstance(start, dict):
        raise StreamStartError("the 'start' event has no 'start' object")
    stream_sid = _sid(start.get("streamSid") or message.get("streamSid"), "streamSid")
    call_sid = _sid(start.get("callSid"), "callSid")
    account_sid = _sid(start.get("accountSid"), "accountSid")

    fmt = start.get("mediaFormat")
    if not isinstance(fmt, dict):
        raise StreamStartError("the 'start' event has no mediaFormat")
    media_format = _parse_media_format(fmt)

    raw_params = start.get("customParameters") or {}
    if not isinstance(raw_params, dict):
        raise StreamStartError("the 'start' event's customParameters is not an object")
    custom = {str(k): str(v) for k, v in raw_params.items() if isinstance(v, str | int | float)}
    tracks = start.get("tracks") or ["inbound"]
    tracks_t = tuple(str(t) for t in tracks) if isinstance(tracks, list) else ("inbound",)
    return TwilioStreamStart(
        stream_sid=stream_sid,
        call_sid=call_sid,
        account_sid=account_sid,
        custom_parameters=custom,
        media_format=media_format,
        tracks=tracks_t,
    )


def _sid(value: object, name: str) -> str:
    if not isinstance(value, str) or not _SID.match(value):
        raise StreamStartError(f"the 'start' event has a missing or malformed {name}")
    return value


def _parse_media_format(fmt: dict[str, Any]) -> MediaFormat:
    encoding = fmt.get("encoding")
    try:
        rate = int(fmt.get("sampleRate", 0))
        channels = int(fmt.get("channels", 0))
    except (TypeError, ValueError):
        raise StreamStartError("the mediaFormat's sampleRate/channels are not numbers") from None
    if encoding != MEDIA_ENCODING or rate != PHONE_SAMPLE_RATE or channels != 1:
        shown = str(encoding)[:40] if isinstance(encoding, str) else type(encoding).__name__
        raise StreamStartError(
            f"unsupported media format {shown!r} {rate} Hz {channels} ch; "
            f"need {MEDIA_ENCODING} {PHONE_SAMPLE_RATE} Hz mono"
        )
    return MediaFormat(encoding, rate, channels)


def create_twilio_transport(
    websocket: WebSocket,
    start: TwilioStreamStart,
    *,
    account_sid: str,
    auth_token: str,
    rest_base_url: str | None,
    hang_up: bool,
    session_timeout_s: int = DEFAULT_SESSION_TIMEOUT_S,
    batching: BatchingPolicy | None = None,
) -> FastAPIWebsocketTransport:
    """The transport for one Twilio call on an accepted stream WebSocket.

    Audio runs at 8 kHz both ways (set the pipeline rates to 8000). Barge-in sends Twilio
    ``clear``; ``dtmf`` events become ``InputDTMFFrame``; ``stop`` ends the call; and,
    with ``hang_up``, ending the pipeline hangs the call up through the REST API.

    Args:
        websocket: The accepted WebSocket, after :func:`read_stream_start`.
        start: What the ``start`` message said.
        account_sid: Our Twilio account (falls back to the stream's own).
        auth_token: The account's auth token (REST hang-up).
        rest_base_url: Twilio REST API root; ``None`` for Twilio's own.
        hang_up: Hang the call up over REST when the pipeline ends.
        session_timeout_s: The call is ended (with hang-up) after this many seconds.
        batching: How many 20 ms media chunks make one audio frame (default: one).
    """
    if hang_up and not (auth_token and (account_sid or start.account_sid)):
        raise ValueError("hang_up needs the Twilio account SID and auth token")
    serializer = HardenedTwilioSerializer(
        start.stream_sid,
        start.call_sid,
        account_sid or start.account_sid,
        auth_token or None,
        base_url=rest_base_url or None,
        params=TwilioFrameSerializer.InputParams(
            twilio_sample_rate=PHONE_SAMPLE_RATE, auto_hang_up=hang_up
        ),
        batching=batching,
    )
    transport = FastAPIWebsocketTransport(
        websocket,
        FastAPIWebsocketParams(
            audio_in_enabled=True,
            audio_out_enabled=True,
            add_wav_header=False,
            serializer=serializer,
            session_timeout=session_timeout_s,
            # Twilio sends no Origin header; the stream is authenticated by its signature.
            allowed_origins=[],
        ),
    )

    @transport.event_handler("on_session_timeout")
    async def on_session_timeout(_transport: FastAPIWebsocketTransport, _ws: object) -> None:
        logger.bind(provider_call_id=start.call_sid).info(
            "Twilio session time limit reached, ending the call"
        )
        await transport.input().push_frame(EndWorkerFrame(reason="session timeout"))

    return transport

"""Twilio Media Streams, server side: TwiML, signatures, the stream handshake and the transport.

Takes plain values (the bot passes them from settings); reads no configuration
itself. Nothing here logs caller data: log lines carry Twilio ids, event names
and sizes only, never payloads, phone numbers, digits or parameters.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from fastapi import WebSocket
from loguru import logger
from pipecat.audio.dtmf.types import KeypadEntry
from pipecat.audio.utils import ulaw_to_pcm
from pipecat.frames.frames import (
    AudioRawFrame,
    CancelWorkerFrame,
    EndFrame,
    EndWorkerFrame,
    Frame,
    InputAudioRawFrame,
    InputDTMFFrame,
    InterruptionFrame,
)
from pipecat.serializers.twilio import TwilioFrameSerializer
from pipecat.transports.websocket.fastapi import FastAPIWebsocketParams, FastAPIWebsocketTransport
from twilio.request_validator import RequestValidator
from twilio.twiml.voice_response import Connect, Stream, VoiceResponse

from integrations.speech.audio import PHONE_SAMPLE_RATE
from transports.input_batching import AudioChunkJoiner, BatchingPolicy, NoBatching

MEDIA_ENCODING = "audio/x-mulaw"
MAX_MESSAGE_BYTES = 64 * 1024
"""Largest Twilio message accepted; a 20 ms media message is about 300 bytes."""
MAX_MEDIA_PAYLOAD_BYTES = PHONE_SAMPLE_RATE
"""Largest decoded media payload accepted (1 s of μ-law; Twilio sends 160 bytes)."""
DEFAULT_SESSION_TIMEOUT_S = 60 * 60
"""A call is ended (politely, with hang-up) after this long."""
MAX_HANG_UP_WAIT_S = 15.0
"""Longest wait for the last bot words to play at the phone before hanging up."""

_SID = re.compile(r"^[A-Za-z]{2}[A-Za-z0-9]{1,62}$")
_EVENT_NAME = re.compile(r"^[a-z_]{1,32}$")
_INBOUND_TRACKS = frozenset({"inbound", "inbound_track"})
_LOGGED_DROPS_PER_KIND = 5


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
                raise StreamStartError(f"expected a 'start' event, got {_event_label(event)}")
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


def _event_label(event: object) -> str:
    """An event name safe to log (peer-controlled strings are not echoed unless name-like)."""
    if isinstance(event, str) and _EVENT_NAME.match(event):
        return repr(event)
    return "an invalid event"


class HardenedTwilioSerializer(TwilioFrameSerializer):
    """Pipecat's Twilio serializer that drops bad input quietly and ends calls cleanly.

    Differences from the base class:

    * Malformed JSON, non-object messages, unknown events, bad base64, empty or oversized
      payloads and invalid DTMF digits are dropped, and logged with the call id, event name
      and sizes only (the base class logs the raw message on bad JSON). Nothing raises.
    * ``mark`` echoes are counted (``marks_received``) instead of ignored silently.
    * ``stop`` (the call is over) suppresses the REST hang-up. Twilio closes the socket right
      after it, and the transport's disconnect then ends the pipeline (``on_client_disconnected``);
      a peer that keeps the socket open gets a ``CancelWorkerFrame`` on its next message.
      (Cancelling at ``stop`` itself would race Twilio's close and log a close error.)
    * On ``EndFrame`` the REST hang-up waits until the bot's last words have played at the
      phone (the transport sends audio faster than real time, so Twilio buffers it).
    """

    def __init__(
        self,
        stream_sid: str,
        call_sid: str | None = None,
        account_sid: str | None = None,
        auth_token: str | None = None,
        *,
        base_url: str | None = None,
        params: TwilioFrameSerializer.InputParams | None = None,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        max_hang_up_wait_s: float = MAX_HANG_UP_WAIT_S,
        batching: BatchingPolicy | None = None,
    ):
        """Initialise the serializer.

        Args:
            stream_sid: The media stream id.
            call_sid: The call id (needed for hang-up).
            account_sid: The account id (needed for hang-up).
            auth_token: The auth token (needed for hang-up).
            base_url: Twilio REST API root (``https://api.twilio.com``, or a local fake).
            params: Base serializer parameters (``auto_hang_up`` etc.).
            max_message_bytes: Larger messages are dropped unread.
            max_hang_up_wait_s: Cap on waiting for buffered bot audio before hanging up.
            batching: How many 20 ms media chunks make one audio frame (default: one).
        """
        super().__init__(
            stream_sid, call_sid, account_sid, auth_token, base_url=base_url, params=params
        )
        self._max_message_bytes = max_message_bytes
        self._max_hang_up_wait_s = max_hang_up_wait_s
        # Logged lines carry Twilio's id of the call (ours comes from the call's log context).
        self._log = logger.bind(provider_call_id=call_sid or stream_sid)
        self._drops: Counter[str] = Counter()
        self._joiner = AudioChunkJoiner(batching or NoBatching())
        self._playout_end = 0.0
        self._speech_playout_end = 0.0
        self.marks_received = 0
        self.stopped = False
        self._cancel_sent = False

    @property
    def drops(self) -> dict[str, int]:
        """How many messages were dropped, by reason."""
        return dict(self._drops)

    async def serialize(self, frame: Frame) -> str | bytes | None:
        """Serialize a frame for Twilio, tracking how much audio is still playing at the phone."""
        if isinstance(frame, InterruptionFrame):
            now = time.monotonic()
            self._playout_end = self._speech_playout_end = now
        elif isinstance(frame, EndFrame) and self._params.auto_hang_up:
            if not self._hangup_attempted:
                await self._wait_for_playout()
        result = await super().serialize(frame)
        if result is not None and isinstance(frame, AudioRawFrame) and frame.sample_rate > 0:
            self._track_playout(frame)
        return result

    def _track_playout(self, frame: AudioRawFrame) -> None:
        now = time.monotonic()
        duration = len(frame.audio) / (2 * frame.sample_rate * max(frame.num_channels, 1))
        self._playout_end = max(self._playout_end, now) + duration
        if any(frame.audio):
            self._speech_playout_end = self._playout_end

    def speech_playout_remaining_s(self) -> float:
        """Seconds of bot speech sent but not yet played at the phone (Twilio buffers it)."""
        return max(0.0, self._speech_playout_end - time.monotonic())

    async def _wait_for_playout(self) -> None:
        remaining = self._speech_playout_end - time.monotonic()
        if remaining > 0:
            await asyncio.sleep(min(remaining + 0.2, self._max_hang_up_wait_s))

    async def deserialize(self, data: str | bytes) -> Frame | None:
        """Turn one Twilio message into a frame, or drop it (never raises, never logs content)."""
        try:
            return await self._deserialize(data)
        except Exception as e:  # defensive: a bad message must never end the call
            self._drop("error", f"{type(e).__name__} on a {len(data)}-byte message")
            return None

    async def _deserialize(self, data: str | bytes) -> Frame | None:
        if self.stopped:
            return self._after_stop()
        size = len(data)
        if size > self._max_message_bytes:
            self._drop("oversized", f"{size} bytes")
            return None
        try:
            message = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            self._drop("malformed_json", f"{size} bytes")
            return None
        if not isinstance(message, dict):
            self._drop("not_an_object", f"{size} bytes")
            return None

        event = message.get("event")
        if event == "media":
            return await self._media(message.get("media"))
        if event == "dtmf":
            return self._dtmf(message.get("dtmf"))
        if event == "mark":
            self.marks_received += 1
            return None
        if event == "stop":
            return self._stop()
        if event in ("connected", "start"):
            return None
        self._drop("unknown_event", f"event {_event_label(event)}, {size} bytes")
        return None

    async def _media(self, media: object) -> Frame | None:
        if not isinstance(media, dict):
            self._drop("bad_media", "no media object")
            return None
        track = media.get("track")
        if track is not None and track not in _INBOUND_TRACKS:
            self._drop("other_track", "media on a non-inbound track")
            return None
        encoded = media.get("payload")
        if not isinstance(encoded, str) or not encoded:
            self._drop("bad_media", "missing payload")
            return None
        try:
            payload = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            self._drop("bad_base64", f"{len(encoded)} characters")
            return None
        if not 0 < len(payload) <= MAX_MEDIA_PAYLOAD_BYTES:
            self._drop("bad_payload_size", f"{len(payload)} bytes")
            return None
        pcm = await ulaw_to_pcm(
            payload, self._twilio_sample_rate, self._sample_rate, self._input_resampler
        )
        if not pcm:
            return None
        audio = self._joiner.add(pcm)
        if audio is None:
            return None  # held for the next chunk (see transports/input_batching.py)
        return InputAudioRawFrame(audio=audio, num_channels=1, sample_rate=self._sample_rate)

    def _dtmf(self, dtmf: object) -> Frame | None:
        digit = dtmf.get("digit") if isinstance(dtmf, dict) else None
        try:
            if not isinstance(digit, str):
                raise TypeError("not a string")
            return InputDTMFFrame(KeypadEntry(digit))
        except (TypeError, ValueError):
            self._drop("bad_dtmf", "not a keypad digit")
            return None

    def _stop(self) -> Frame | None:
        self.stopped = True
        # Twilio ended the call (e.g. the caller hung up): nothing left to hang up over REST.
        self._hangup_attempted = True
        self._log.info("Twilio stream stopped by Twilio (call over)")
        return None

    def _after_stop(self) -> Frame | None:
        if self._cancel_sent:
            return None
        self._cancel_sent = True
        self._log.warning("Twilio stream: messages after 'stop'; ending the call")
        return CancelWorkerFrame(reason="twilio stream stopped")

    def _drop(self, kind: str, detail: str) -> None:
        self._drops[kind] += 1
        count = self._drops[kind]
        if count <= _LOGGED_DROPS_PER_KIND or count % 1000 == 0:
            self._log.warning(
                f"Twilio stream: dropped a message ({kind}: {detail}; {count} so far)"
            )


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

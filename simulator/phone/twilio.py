"""The Twilio Media Streams wire: places a call on a bidirectional Media Stream in real time.

It speaks Twilio's side of the protocol exactly (``connected``, ``start``, one 20 ms
``media`` frame every 20 ms, ``dtmf``, ``mark`` echoes, ``stop``) and plays the bot's
audio out at real time through the phone's playout buffer (:mod:`simulator.phone.base`).
What the caller hears, and when, is therefore measured where the caller is: ``clear``
drops buffered audio, ``mark`` is echoed once the audio queued before it has played (or
at once on ``clear``), and turn and barge-in latencies are taken on the phone's own
timeline.

Used by the tests, the benches and ``callagent simulate``. Times are seconds since the
stream started (``call.now()``). Nothing is logged but ids.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import xml.etree.ElementTree as ET
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import httpx
from loguru import logger
from twilio.request_validator import RequestValidator
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from integrations.speech.audio import PHONE_SAMPLE_RATE, mulaw_decode, mulaw_encode
from simulator.phone.base import PhoneCall
from simulator.phone.line import LineConditions
from simulator.phone.measure import DEFAULT_FROM, DEFAULT_TO, SPEECH_RMS, CallEndedError


def new_sid(prefix: str) -> str:
    """A random Twilio-shaped SID (``CA``, ``MZ``, ``AC`` + 32 hex digits)."""
    return prefix + secrets.token_hex(16)


@dataclass
class _Mark:
    position: int
    name: str


class TwilioCallEmulator(PhoneCall):
    """One phone call, emulated from Twilio's side of a bidirectional Media Stream.

    Example::

        async with TwilioCallEmulator("ws://127.0.0.1:7860/twilio/stream") as call:
            await call.wait_for_bot_speech_start(timeout=10)
            await call.wait_for_bot_silence(1.0, timeout=20)
            turn = await call.say(pcm16_8k)
            await call.wait_for_bot_speech_start(timeout=10, after=turn.caller_end_s)
            await call.hang_up()
    """

    _wire_closed = (ConnectionClosed,)

    def __init__(
        self,
        ws_url: str,
        *,
        call_sid: str | None = None,
        account_sid: str | None = None,
        stream_sid: str | None = None,
        from_number: str = DEFAULT_FROM,
        to_number: str = DEFAULT_TO,
        custom_parameters: Mapping[str, str] | None = None,
        auth_token: str | None = None,
        signature_url: str | None = None,
        speech_rms: float = SPEECH_RMS,
        segment_gap_s: float = 0.3,
        barge_in_silence_s: float = 0.3,
        jitter_buffer_ms: int = 0,
        background: Callable[[int], bytes] | None = None,
        line: LineConditions | None = None,
    ):
        """Prepare a call (nothing connects until :meth:`connect`).

        Args:
            ws_url: The stream WebSocket URL (``ws://host/twilio/stream``).
            call_sid: The call id (random ``CA...`` by default).
            account_sid: The account id (random ``AC...`` by default).
            stream_sid: The stream id (random ``MZ...`` by default).
            from_number: Caller number, sent as the ``From`` custom parameter by default.
            to_number: Called number, sent as the ``To`` custom parameter by default.
            custom_parameters: The ``<Parameter>`` values from the TwiML (default: From,
                To and CallSid, as callagent's TwiML has them).
            auth_token: Sign the upgrade request (``X-Twilio-Signature``) with this token.
            signature_url: The URL to sign (default ``ws_url``; the public one behind a proxy).
            speech_rms: RMS level above which a 20 ms frame counts as speech.
            segment_gap_s: Bot audio pauses shorter than this do not end a bot utterance.
            barge_in_silence_s: Silence after a barge-in that counts as the bot stopping.
            jitter_buffer_ms: Bot audio buffered before playout starts (after an underrun).
            background: Background sound at the caller's end: ``background(tick)`` gives the
                20 ms (320-byte PCM) chunk mixed under the caller's voice at that tick.
            line: Impairments (packet loss, jitter) of the media the phone sends.
        """
        super().__init__(
            speech_rms=speech_rms,
            segment_gap_s=segment_gap_s,
            barge_in_silence_s=barge_in_silence_s,
            jitter_buffer_ms=jitter_buffer_ms,
            background=background,
            line=line,
        )
        self.ws_url = ws_url
        self.call_sid = call_sid or new_sid("CA")
        self.account_sid = account_sid or new_sid("AC")
        self.stream_sid = stream_sid or new_sid("MZ")
        self.custom_parameters = dict(
            custom_parameters
            if custom_parameters is not None
            else {"From": from_number, "To": to_number, "CallSid": self.call_sid}
        )
        self._auth_token = auth_token
        self._signature_url = signature_url or ws_url
        self._ws: ClientConnection | None = None
        self._seq = 0
        self._chunk = 0
        self._marks: deque[_Mark] = deque()
        self._send_lock = asyncio.Lock()

    # Lifecycle

    async def __aenter__(self) -> TwilioCallEmulator:
        await self.connect()
        return self

    async def connect(self, timeout_s: float = 10.0) -> None:
        """Open the WebSocket, send ``connected`` and ``start``, and start the 20 ms clock."""
        headers = {}
        if self._auth_token:
            validator = RequestValidator(self._auth_token)
            headers["X-Twilio-Signature"] = validator.compute_signature(self._signature_url, {})
        self._ws = await asyncio.wait_for(
            connect(
                self.ws_url,
                additional_headers=headers,
                max_size=2**20,
                open_timeout=None,
                compression=None,  # Twilio's side does not offer permessage-deflate
            ),
            timeout_s,
        )
        await self._send({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        await self._send(
            {
                "event": "start",
                "sequenceNumber": self._next_seq(),
                "streamSid": self.stream_sid,
                "start": {
                    "accountSid": self.account_sid,
                    "streamSid": self.stream_sid,
                    "callSid": self.call_sid,
                    "tracks": ["inbound"],
                    "customParameters": self.custom_parameters,
                    "mediaFormat": {
                        "encoding": "audio/x-mulaw",
                        "sampleRate": PHONE_SAMPLE_RATE,
                        "channels": 1,
                    },
                },
            }
        )
        receive = asyncio.create_task(self._receive(), name=f"twilio-emulator-rx-{self.call_sid}")
        self._start_media([receive], f"twilio-emulator-{self.call_sid}")
        logger.debug(f"emulated Twilio call {self.call_sid}: stream {self.stream_sid} started")

    async def remote_hang_up(self) -> None:
        """Twilio ends the call (e.g. after a REST hang-up): send ``stop`` and close."""
        await self._end("network")

    async def _end(self, by: str) -> None:
        if self._ws is None or self._closed.is_set():
            await self._stop_tasks()
            return
        self.ended_by = by
        self._closing = True
        try:
            await self._send(
                {
                    "event": "stop",
                    "sequenceNumber": self._next_seq(),
                    "streamSid": self.stream_sid,
                    "stop": {"accountSid": self.account_sid, "callSid": self.call_sid},
                }
            )
            await self._ws.close()
        except ConnectionClosed:
            pass
        self._mark_closed()
        await self._stop_tasks()

    # Caller actions

    async def press(self, digits: str, gap_s: float = 0.25) -> None:
        """Press keys: one Twilio ``dtmf`` event per digit, ``gap_s`` apart."""
        await super().press(digits, gap_s)

    async def _send_digit(self, digit: str) -> None:
        await self._send(
            {
                "event": "dtmf",
                "streamSid": self.stream_sid,
                "sequenceNumber": self._next_seq(),
                "dtmf": {"track": "inbound_track", "digit": digit},
            }
        )

    # The wire

    def _next_seq(self) -> str:
        self._seq += 1
        return str(self._seq)

    async def _send(self, message: dict[str, object], *, stream_data: bool = False) -> None:
        if self._ws is None:
            raise CallEndedError("not connected")
        async with self._send_lock:
            if stream_data and self._closing:
                return  # like Twilio: nothing follows 'stop'
            await self._ws.send(json.dumps(message, separators=(",", ":")))

    def _require_open(self) -> None:
        if self._ws is None or self.closed:
            raise CallEndedError("the call is not connected")

    async def _send_frame(self, pcm16: bytes, frame_start_s: float) -> None:
        self._chunk += 1
        message: dict[str, object] = {
            "event": "media",
            "sequenceNumber": self._next_seq(),
            "streamSid": self.stream_sid,
            "media": {
                "track": "inbound",
                "chunk": str(self._chunk),
                "timestamp": str(int(frame_start_s * 1000)),
                "payload": base64.b64encode(mulaw_encode(pcm16)).decode("ascii"),
            },
        }
        await self._send(message, stream_data=True)

    async def _receive(self) -> None:
        assert self._ws is not None
        try:
            async for raw in self._ws:
                self._handle_server_message(raw)
        except ConnectionClosed:
            pass
        finally:
            if not self._closed.is_set() and not self._closing:
                self.ended_by = "server"
                self.close_code = self._ws.close_code
                logger.debug(f"emulated Twilio call {self.call_sid}: stream closed by the server")
                self._mark_closed()

    def _handle_server_message(self, raw: str | bytes) -> None:
        try:
            message = json.loads(raw)
        except ValueError:
            self.stats.other_events.append("<malformed>")
            return
        event = message.get("event") if isinstance(message, dict) else None
        if event == "media":
            payload = base64.b64decode(message.get("media", {}).get("payload", ""))
            self.stats.bytes_received += len(payload)
            self._receive_bot_pcm(mulaw_decode(payload))
        elif event == "mark":
            self.stats.marks_received += 1
            name = str(message.get("mark", {}).get("name", ""))
            self._marks.append(_Mark(self._ear.received_bytes, name))
            self._echo_played_marks()
        elif event == "clear":
            self.stats.clears_received += 1
            now = self._tick_time()
            self.clear_times.append(now)
            for b in self._voice.open_barge_ins:
                if b.clear_s is None:
                    b.clear_s = now
            self._drop_bot_audio()
            self._echo_played_marks()
        else:
            self.stats.other_events.append(str(event)[:32])

    def _after_playout(self) -> None:
        self._echo_played_marks()

    def _echo_played_marks(self) -> None:
        while self._marks and self._marks[0].position <= self._ear.played_bytes:
            mark = self._marks.popleft()
            self.stats.marks_echoed += 1
            message: dict[str, object] = {
                "event": "mark",
                "sequenceNumber": self._next_seq(),
                "streamSid": self.stream_sid,
                "mark": {"name": mark.name},
            }
            asyncio.ensure_future(self._send_quietly(message))

    async def _send_quietly(self, message: dict[str, object]) -> None:
        try:
            await self._send(message, stream_data=True)
        except (ConnectionClosed, CallEndedError):
            pass


@dataclass(frozen=True)
class StreamInstructions:
    """What the TwiML from a voice webhook tells Twilio to do."""

    stream_url: str
    parameters: dict[str, str]


def parse_stream_twiml(xml: str) -> StreamInstructions:
    """Read ``<Connect><Stream url=...><Parameter .../>`` out of TwiML.

    Raises:
        ValueError: the TwiML has no ``<Connect><Stream>``.
    """
    root = ET.fromstring(xml)
    stream = root.find("./Connect/Stream")
    if stream is None or not stream.get("url"):
        raise ValueError("the TwiML has no <Connect><Stream url=...>")
    params = {
        p.get("name", ""): p.get("value", "") for p in stream.findall("Parameter") if p.get("name")
    }
    return StreamInstructions(str(stream.get("url")), params)


async def place_call(
    base_url: str,
    *,
    auth_token: str | None = None,
    account_sid: str | None = None,
    from_number: str = DEFAULT_FROM,
    to_number: str = DEFAULT_TO,
    voice_path: str = "/twilio/voice",
    call_sid: str | None = None,
    timeout_s: float = 10.0,
    **emulator_kwargs: object,
) -> TwilioCallEmulator:
    """Place a call like Twilio does: POST the voice webhook, follow its TwiML, open the stream.

    Args:
        base_url: The server's base URL (``http://127.0.0.1:7860``).
        auth_token: Sign the webhook and the stream upgrade with this token.
        account_sid: The account id (random by default).
        from_number: The caller's number.
        to_number: The number called.
        voice_path: The voice webhook path.
        call_sid: The call id (random by default).
        timeout_s: Time allowed for the webhook and the WebSocket to open.
        **emulator_kwargs: Passed to :class:`TwilioCallEmulator`.

    Returns:
        The connected call.
    """
    call_sid = call_sid or new_sid("CA")
    account_sid = account_sid or new_sid("AC")
    form = {
        "CallSid": call_sid,
        "AccountSid": account_sid,
        "From": from_number,
        "To": to_number,
        "CallStatus": "ringing",
        "Direction": "inbound",
        "ApiVersion": "2010-04-01",
    }
    url = base_url.rstrip("/") + voice_path
    headers = {}
    if auth_token:
        headers["X-Twilio-Signature"] = RequestValidator(auth_token).compute_signature(url, form)
    async with httpx.AsyncClient(timeout=timeout_s) as client:
        response = await client.post(url, data=form, headers=headers)
    response.raise_for_status()
    instructions = parse_stream_twiml(response.text)
    call = TwilioCallEmulator(
        instructions.stream_url,
        call_sid=call_sid,
        account_sid=account_sid,
        custom_parameters=instructions.parameters,
        auth_token=auth_token,
        **emulator_kwargs,  # type: ignore[arg-type]
    )
    await call.connect(timeout_s)
    return call

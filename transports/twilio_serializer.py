"""The Twilio Media Streams serializer, hardened: bad input from the peer is dropped, never fatal.

A message that is not JSON, too large, of an unknown event, of another track, or whose
media payload is not base64 mu-law of a sane size is dropped and counted by kind; the
first few of each kind are logged with sizes and event names, never payloads. Hang-up
through Twilio's REST API is bounded in time.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
import time
from collections import Counter

from loguru import logger
from pipecat.audio.dtmf.types import KeypadEntry
from pipecat.audio.utils import ulaw_to_pcm
from pipecat.frames.frames import (
    AudioRawFrame,
    CancelWorkerFrame,
    EndFrame,
    Frame,
    InputAudioRawFrame,
    InputDTMFFrame,
    InterruptionFrame,
)
from pipecat.serializers.twilio import TwilioFrameSerializer

from integrations.speech.audio import PHONE_SAMPLE_RATE
from transports.input_batching import AudioChunkJoiner, BatchingPolicy, NoBatching

MAX_MESSAGE_BYTES = 64 * 1024
"""Largest Twilio message accepted; a 20 ms media message is about 300 bytes."""

MAX_MEDIA_PAYLOAD_BYTES = PHONE_SAMPLE_RATE
"""Largest decoded media payload accepted (1 s of μ-law; Twilio sends 160 bytes)."""

MAX_HANG_UP_WAIT_S = 15.0
"""Longest wait for the last bot words to play at the phone before hanging up."""

_EVENT_NAME = re.compile(r"^[a-z_]{1,32}$")

_INBOUND_TRACKS = frozenset({"inbound", "inbound_track"})

_LOGGED_DROPS_PER_KIND = 5


def event_label(event: object) -> str:
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
        self._drop("unknown_event", f"event {event_label(event)}, {size} bytes")
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

"""What a simulated phone measures on its own timeline: turns, barge-ins, voiced spans.

Times are seconds since the call's media started (``call.now()``), whatever the wire.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from integrations.speech.audio import PHONE_SAMPLE_RATE
from simulator.audio_codec import rms

FRAME_S = 0.02
FRAME_SAMPLES = round(PHONE_SAMPLE_RATE * FRAME_S)  # 160
FRAME_BYTES = FRAME_SAMPLES * 2
DEFAULT_FROM = "+15555550123"
DEFAULT_TO = "+15555550100"
DTMF_DIGITS = frozenset("0123456789*#ABCD")
SPEECH_RMS = 300.0
"""20 ms frames above this RMS level (16-bit) count as speech (about -40 dBFS)."""


class CallEndedError(RuntimeError):
    """The call ended (either side hung up) before the operation finished."""


@dataclass
class TurnMeasurement:
    """One caller turn, on the phone's timeline.

    Parameters:
        caller_onset_s: When the caller's voice started.
        caller_end_s: When the caller's voice ended (trailing silence excluded).
        bot_audio_s: When the bot's reply was first heard (an onset of bot audio after
            ``caller_end_s``); None until then.
    """

    caller_onset_s: float
    caller_end_s: float
    bot_audio_s: float | None = None

    @property
    def latency_s(self) -> float | None:
        """Caller end of speech to the first bot audio at the phone."""
        return None if self.bot_audio_s is None else self.bot_audio_s - self.caller_end_s


@dataclass
class BargeInMeasurement:
    """The caller started talking while the bot's audio was playing.

    Parameters:
        caller_onset_s: When the caller's voice started.
        bot_stopped_s: When the bot's audio stopped at the phone (start of the silence that
            followed); None while it keeps playing.
        clear_s: When the first Twilio ``clear`` arrived after the onset; None if none did
            (and always None over SIP, which has no such message: the audio just stops).
    """

    caller_onset_s: float
    bot_stopped_s: float | None = None
    clear_s: float | None = None

    @property
    def latency_s(self) -> float | None:
        """Caller onset to the bot's audio stopping at the phone."""
        return None if self.bot_stopped_s is None else self.bot_stopped_s - self.caller_onset_s


@dataclass
class EmulatorStats:
    """Counters of what went over the wire (the Twilio-only ones stay 0 over SIP)."""

    media_sent: int = 0
    media_received: int = 0
    bytes_received: int = 0
    marks_received: int = 0
    marks_echoed: int = 0
    clears_received: int = 0
    dtmf_sent: int = 0
    frames_lost: int = 0
    other_events: list[str] = field(default_factory=list)


def voiced_span(pcm16: bytes, threshold: float = SPEECH_RMS) -> tuple[float, float] | None:
    """Offsets (s) of the first and past-the-last voiced 20 ms frame of a clip, or None."""
    voiced = [
        i
        for i in range(0, len(pcm16) // FRAME_BYTES)
        if rms(pcm16[i * FRAME_BYTES : (i + 1) * FRAME_BYTES]) > threshold
    ]
    if not voiced:
        return None
    return voiced[0] * FRAME_S, (voiced[-1] + 1) * FRAME_S

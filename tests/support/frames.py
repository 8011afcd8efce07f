"""Small frames for processor and observer tests."""

from collections.abc import Iterable
from typing import TypeVar

from pipecat.frames.frames import (
    AudioRawFrame,
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    Frame,
    InterruptionFrame,
    TranscriptionFrame,
    TTSSpeakFrame,
    UserStartedSpeakingFrame,
)
from pipecat.tests.utils import SleepFrame

SILENCE_20MS = b"\x00\x00" * 160
"""20 ms of 8 kHz silence."""

A = TypeVar("A", bound=AudioRawFrame)


def audio(kind: type[A]) -> A:
    """A 20 ms frame of silence of ``kind`` (the caller's or the bot's audio)."""
    return kind(audio=SILENCE_20MS, sample_rate=8000, num_channels=1)


def transcript(text: str = "hello") -> TranscriptionFrame:
    """A caller's transcript."""
    return TranscriptionFrame(text=text, user_id="caller", timestamp="now")


def spoken(frames: Iterable[Frame]) -> list[str]:
    """The texts the bot was told to say, in order."""
    return [f.text for f in frames if isinstance(f, TTSSpeakFrame)]


def line_heard() -> list[Frame]:
    """The bot speaks its queued line to the end; nobody speaks over it."""
    return [
        SleepFrame(0.1),
        BotStartedSpeakingFrame(),
        SleepFrame(0.05),
        BotStoppedSpeakingFrame(),
        SleepFrame(0.3),
    ]


def line_cut_by_the_caller() -> list[Frame]:
    """The bot starts its line; the caller speaks over it at once."""
    return [
        SleepFrame(0.1),
        BotStartedSpeakingFrame(),
        SleepFrame(0.05),
        UserStartedSpeakingFrame(),
        InterruptionFrame(),
        BotStoppedSpeakingFrame(),
        SleepFrame(0.1),
    ]

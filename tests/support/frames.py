"""Small frames for processor and observer tests."""

from collections.abc import Iterable
from typing import TypeVar

from pipecat.frames.frames import AudioRawFrame, Frame, TranscriptionFrame, TTSSpeakFrame

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

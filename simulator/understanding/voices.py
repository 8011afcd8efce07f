"""The callers' voices of the understanding bench, and each request as a caller says it.

A voice is one of :mod:`simulator.voices.caller_voice`'s (a flite voice, or
``espeak:<espeak-ng voice>``, accented English included), optionally at another pace:
``NAME@RATE`` (``espeak:en-sc@1.2`` is a Scottish voice 20 % faster). A request of
several sentences is spoken one sentence at a time with a natural pause between them,
as a caller who adds context before the question does.
"""

from __future__ import annotations

import re

from simulator.voices import caller_voice
from simulator.voices.noise import normalize_active

SENTENCE_PAUSE_S = 0.6
"""Pause between two sentences of one request."""

DEFAULT_VOICES = ("slt", "rms", "awb", "espeak:en-gb-x-rp")
"""A handful of voices: two American (female, male), a Scottish and an English one."""

ALL_VOICES = (
    "slt",
    "rms",
    "awb",
    "kal",
    "slt@1.25",
    "rms@0.85",
    "espeak:en-us",
    "espeak:en-us+f3",
    "espeak:en-us-nyc",
    "espeak:en-gb",
    "espeak:en-gb-x-rp",
    "espeak:en-sc",
    "espeak:en-gb-x-gbclan",
    "espeak:en-gb-x-gbcwmd",
    "espeak:en-029",
    "espeak:en-us@1.3",
    "espeak:en-gb-x-rp+f2@0.85",
)
"""Every local voice and variant the simulator can make (``--voices all``)."""

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=\S)")


def parse_voice(spec: str) -> tuple[str, float]:
    """``NAME[@RATE]`` -> (voice, rate).

    Raises:
        ValueError: an unknown voice or a bad rate.
    """
    name, _, rate_text = spec.strip().partition("@")
    try:
        rate = float(rate_text) if rate_text else 1.0
    except ValueError:
        raise ValueError(f"voice {spec!r}: the rate after @ must be a number") from None
    problem = caller_voice.check_voice(name)
    if problem:
        raise ValueError(problem)
    if not 0.5 <= rate <= 2.0:
        raise ValueError(f"voice {spec!r}: the rate must be between 0.5 and 2")
    return name, rate


def voice_list(text: str) -> list[str]:
    """``--voices``: a comma-separated list, ``all`` or ``default``, checked."""
    if text.strip() == "all":
        specs = list(ALL_VOICES)
    elif text.strip() == "default":
        specs = list(DEFAULT_VOICES)
    else:
        specs = [s.strip() for s in text.split(",") if s.strip()]
    for spec in specs:
        parse_voice(spec)
    return list(dict.fromkeys(specs))


def sentences(text: str) -> list[str]:
    """The sentences of a request, in order."""
    return [s for s in _SENTENCE_END.split(text.strip()) if s]


def spoken(text: str, voice: str) -> bytes:
    """The request as a caller says it: 16-bit 8 kHz PCM at the simulation's speech level.

    Sentences are spoken one by one with :data:`SENTENCE_PAUSE_S` between them.
    """
    name, rate = parse_voice(voice)
    parts = [caller_voice.synthesize(s, voice=name, rate=rate) for s in sentences(text)]
    pcm = caller_voice.silence(SENTENCE_PAUSE_S).join(_trimmed(p) for p in parts)
    return normalize_active(pcm)


def _trimmed(pcm: bytes, floor: int = 200) -> bytes:
    """A clip without its leading and trailing near-silence (synthesisers pad both ends)."""
    import numpy as np

    samples = np.frombuffer(pcm, dtype="<i2")
    loud = np.flatnonzero(np.abs(samples) > floor)
    if loud.size == 0:
        return pcm
    return samples[loud[0] : loud[-1] + 1].tobytes()

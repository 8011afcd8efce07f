"""Hold music: a soft, looping synthesised melody, so a caller on hold never hears silence.

Generated (no audio files to license): a slow arpeggio of sine tones with gentle attack and
release, about -22 dBFS. :func:`hold_music_pcm` gives raw 16-bit mono PCM at any rate (played
in-stream while a transfer connects) and :func:`hold_music_wav` a WAV file (Twilio ``<Play>``).
"""

from __future__ import annotations

import io
import wave
from functools import cache

import numpy as np

from integrations.speech.audio import PHONE_SAMPLE_RATE

NOTE_S = 0.45
# A gentle I-vi-IV-V arpeggio in C major (Hz).
MELODY = (
    261.63,
    329.63,
    392.00,
    329.63,
    220.00,
    261.63,
    329.63,
    261.63,
    174.61,
    220.00,
    261.63,
    220.00,
    196.00,
    246.94,
    293.66,
    246.94,
)
AMPLITUDE = 0.08


@cache
def hold_music_pcm(sample_rate: int) -> bytes:
    """One loop of the hold melody (about 7 s): 16-bit little-endian mono PCM."""
    n = int(NOTE_S * sample_rate)
    t = np.arange(n) / sample_rate
    envelope = np.minimum(1.0, t / 0.04) * np.exp(-2.2 * t)
    notes = []
    for freq in MELODY:
        tone = np.sin(2 * np.pi * freq * t) + 0.3 * np.sin(2 * np.pi * 2 * freq * t)
        notes.append(tone * envelope)
    signal = np.concatenate(notes)
    # A soft pad under the melody keeps the level from dropping to silence between notes.
    pad = 0.25 * np.sin(2 * np.pi * 130.81 * np.arange(signal.size) / sample_rate)
    mixed = (signal + pad) * AMPLITUDE / 1.3
    return (np.clip(mixed, -1, 1) * 32767).astype("<i2").tobytes()


def hold_music_chunk(sample_rate: int, position: int, duration_s: float) -> tuple[bytes, int]:
    """``duration_s`` of the looping melody from byte ``position``; returns it and the next one."""
    loop = hold_music_pcm(sample_rate)
    size = int(duration_s * sample_rate) * 2
    out = bytearray()
    while len(out) < size:
        take = min(size - len(out), len(loop) - position)
        out += loop[position : position + take]
        position = (position + take) % len(loop)
    return bytes(out), position


@cache
def hold_music_wav(sample_rate: int = PHONE_SAMPLE_RATE, loops: int = 4) -> bytes:
    """A WAV file of the melody looped ``loops`` times (for Twilio's ``<Play>``)."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(sample_rate)
        f.writeframes(hold_music_pcm(sample_rate) * loops)
    return buffer.getvalue()

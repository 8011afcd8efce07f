"""Audio for and from the real SIP peers: tone WAVs to play, the pitch of what was heard."""

from __future__ import annotations

import math
import struct
import wave
from pathlib import Path

import numpy as np


def tone(seconds: float, hz: float = 440.0, level: int = 8000, rate: int = 8000) -> bytes:
    """A sine tone, 16-bit mono PCM (8 kHz unless ``rate`` says otherwise)."""
    n = int(rate * seconds)
    return struct.pack(
        f"<{n}h", *(int(level * math.sin(2 * math.pi * hz * i / rate)) for i in range(n))
    )


def write_tone_wav(path: Path, seconds: float = 1.0, hz: float = 440.0, rate: int = 8000) -> Path:
    """A sine tone WAV (mono 16-bit) for SIPp's rtp_stream or baresip's aufile."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(tone(seconds, hz, rate=rate))
    return path


def dominant_hz(pcm16: bytes, rate: int = 8000) -> float:
    """The strongest frequency in 16-bit mono PCM (0 for silence or nothing)."""
    audio = np.frombuffer(pcm16[: len(pcm16) // 2 * 2], dtype="<i2").astype(np.float64)
    if not audio.size:
        return 0.0
    spectrum = np.abs(np.fft.rfft(audio))
    spectrum[0] = 0.0
    return float(np.argmax(spectrum)) * rate / len(audio)

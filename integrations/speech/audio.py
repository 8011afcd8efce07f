"""Small PCM helpers for the speech engines, the phone emulator, their tests and benches.

The G.711 mu-law codec is the one Pipecat's ``ulaw_to_pcm``/``pcm_to_ulaw`` are built
on, ``audioop`` (the standard library's up to Python 3.12; from 3.13 the
``audioop-lts`` backport, which Pipecat requires there). Those two Pipecat helpers are
async and resample; the synchronous code here (the phone emulator, the simulated phone
line) calls the codec directly through :func:`mulaw_encode` and :func:`mulaw_decode`.
"""

from __future__ import annotations

import audioop

import numpy as np
import soxr

PHONE_SAMPLE_RATE = 8000
"""The telephone network's audio rate in Hz (G.711, Twilio Media Streams): the one constant."""


def pcm16_to_float(pcm16: bytes) -> np.ndarray:
    """16-bit little-endian PCM to float32 samples in [-1, 1)."""
    return np.frombuffer(pcm16[: len(pcm16) // 2 * 2], dtype="<i2").astype(np.float32) / 32768.0


def float_to_pcm16(audio: np.ndarray) -> bytes:
    """Float samples in [-1, 1] to 16-bit little-endian PCM (clipped)."""
    return (np.clip(audio, -1.0, 1.0) * 32767.0).round().astype("<i2").tobytes()


def resample_pcm16(pcm16: bytes, in_rate: int, out_rate: int) -> bytes:
    """Resample 16-bit mono PCM (whole clip, high quality)."""
    if in_rate == out_rate or not pcm16:
        return pcm16
    return float_to_pcm16(soxr.resample(pcm16_to_float(pcm16), in_rate, out_rate))


def mulaw_encode(pcm16: bytes) -> bytes:
    """G.711 mu-law encode 16-bit mono PCM, one byte per sample (a trailing odd byte is ignored)."""
    return audioop.lin2ulaw(pcm16[: len(pcm16) // 2 * 2], 2)


def mulaw_decode(ulaw: bytes) -> bytes:
    """G.711 mu-law decode to 16-bit mono PCM (same rate)."""
    return audioop.ulaw2lin(ulaw, 2)


def phone_channel(pcm16: bytes, sample_rate: int) -> bytes:
    """Pass audio through a simulated phone line: 8 kHz and a mu-law round trip.

    Args:
        pcm16: 16-bit mono PCM.
        sample_rate: Its rate in Hz.

    Returns:
        16-bit mono PCM at 8 kHz.

    """
    narrowband = resample_pcm16(pcm16, sample_rate, PHONE_SAMPLE_RATE)
    return mulaw_decode(mulaw_encode(narrowband))

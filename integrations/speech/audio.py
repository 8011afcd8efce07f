"""Small PCM helpers for the speech engines, their tests and the speech bench.

Pure numpy and soxr: no ``audioop`` (deprecated in Python 3.11, removed in 3.13).
"""

from __future__ import annotations

import numpy as np
import soxr

PHONE_SAMPLE_RATE = 8000

_MULAW_BIAS = 0x84
_MULAW_CLIP = 8159
_MULAW_SEGMENT_ENDS = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])


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
    """G.711 mu-law encode 16-bit PCM (one byte per sample), bit-exact with CCITT/audioop."""
    x = np.frombuffer(pcm16[: len(pcm16) // 2 * 2], dtype="<i2").astype(np.int32) >> 2
    mask = np.where(x < 0, 0x7F, 0xFF)
    magnitude = np.minimum(np.abs(x), _MULAW_CLIP) + (_MULAW_BIAS >> 2)
    segment = np.searchsorted(_MULAW_SEGMENT_ENDS, magnitude)
    value = (segment << 4) | ((magnitude >> (segment + 1)) & 0x0F)
    value = np.where(segment >= 8, 0x7F, value)  # beyond the last segment: full scale
    return (value ^ mask).astype(np.uint8).tobytes()


def mulaw_decode(ulaw: bytes) -> bytes:
    """G.711 mu-law decode to 16-bit PCM."""
    b = ~np.frombuffer(ulaw, dtype=np.uint8).astype(np.int32) & 0xFF
    exponent = (b >> 4) & 0x07
    magnitude = (((b & 0x0F) << 3) + _MULAW_BIAS) << exponent
    x = np.where(b & 0x80, _MULAW_BIAS - magnitude, magnitude - _MULAW_BIAS)
    return x.astype("<i2").tobytes()


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

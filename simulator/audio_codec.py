"""G.711 μ-law codec and small PCM helpers in numpy (no ``audioop``, deprecated since 3.11).

The encoder follows the ITU-T G.711 / Sun reference (the one ``audioop.lin2ulaw``
implements), so both produce the same bytes; the decoder is a 256-entry table.
"""

from __future__ import annotations

import numpy as np

_BIAS = 0x84
_CLIP = 32636  # 8159 in the 14-bit domain


def _decode_table() -> np.ndarray:
    codes = ~np.arange(256, dtype=np.int32) & 0xFF
    sign = codes & 0x80
    exponent = (codes >> 4) & 0x07
    mantissa = codes & 0x0F
    magnitude = (((mantissa << 3) + _BIAS) << exponent) - _BIAS
    return np.where(sign != 0, -magnitude, magnitude).astype(np.int16)


_DECODE = _decode_table()


def ulaw_decode(data: bytes) -> bytes:
    """Decode μ-law bytes to 16-bit little-endian mono PCM (same rate)."""
    codes = np.frombuffer(data, dtype=np.uint8)
    return _DECODE[codes].astype("<i2").tobytes()


def ulaw_encode(pcm16: bytes) -> bytes:
    """Encode 16-bit little-endian mono PCM to μ-law bytes (same rate).

    A trailing odd byte is ignored.
    """
    usable = len(pcm16) - (len(pcm16) % 2)
    samples = np.frombuffer(pcm16[:usable], dtype="<i2").astype(np.int32)
    # G.711 works on 14-bit magnitudes: the reference drops the 2 low bits first.
    samples = samples >> 2
    mask = np.where(samples < 0, 0x7F, 0xFF)
    magnitude = np.minimum(np.abs(samples), _CLIP >> 2) + (_BIAS >> 2)
    segment = np.zeros_like(magnitude)
    for level in range(1, 9):
        segment += magnitude >= (0x40 << (level - 1))
    mantissa = (magnitude >> (segment + 1)) & 0x0F
    code = np.where(segment >= 8, 0x7F, (segment << 4) | mantissa) ^ mask
    return code.astype(np.uint8).tobytes()


def rms(pcm16: bytes) -> float:
    """Root-mean-square level of 16-bit PCM (0 for empty input)."""
    usable = len(pcm16) - (len(pcm16) % 2)
    if usable == 0:
        return 0.0
    samples = np.frombuffer(pcm16[:usable], dtype="<i2").astype(np.float64)
    return float(np.sqrt(np.mean(samples * samples)))

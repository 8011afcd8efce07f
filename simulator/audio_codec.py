"""Small PCM helpers for the phone emulator and its tests.

The G.711 μ-law codec itself is :func:`integrations.speech.audio.mulaw_encode` and
:func:`~integrations.speech.audio.mulaw_decode` (the codec Pipecat's own helpers use).
"""

from __future__ import annotations

import numpy as np


def rms(pcm16: bytes) -> float:
    """Root-mean-square level of 16-bit PCM (0 for empty input)."""
    usable = len(pcm16) - (len(pcm16) % 2)
    if usable == 0:
        return 0.0
    samples = np.frombuffer(pcm16[:usable], dtype="<i2").astype(np.float64)
    return float(np.sqrt(np.mean(samples * samples)))

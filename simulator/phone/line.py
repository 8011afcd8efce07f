"""The caller's line: packet loss and jitter on what the phone sends, background mixing."""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LineConditions:
    """Impairments of the caller's line, applied to the media the phone sends.

    Parameters:
        packet_loss: Fraction of 20 ms frames lost (0-1). A lost frame's audio is
            replaced by silence (the stream keeps its timing, as behind a jitter buffer).
        loss_burst: Mean length of a loss burst in frames (1 = independent losses).
        jitter_ms: Each media message leaves up to this much later than its 20 ms slot
            (uniform); order is kept, as over TCP, so late messages arrive in bursts.
        seed: Random seed (the same seed gives the same losses and delays).
    """

    packet_loss: float = 0.0
    loss_burst: float = 1.0
    jitter_ms: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.packet_loss < 1.0:
            raise ValueError("packet_loss must be at least 0 and below 1")
        if self.loss_burst < 1.0:
            raise ValueError("loss_burst must be at least 1 frame")
        if self.jitter_ms < 0:
            raise ValueError("jitter_ms must not be negative")

    @property
    def impaired(self) -> bool:
        """Whether anything is impaired at all."""
        return self.packet_loss > 0 or self.jitter_ms > 0


class _Line:
    """Draws losses (a two-state Gilbert model) and delays for each frame."""

    def __init__(self, conditions: LineConditions):
        self.conditions = conditions
        self._rng = random.Random(conditions.seed)
        self._losing = False
        p = conditions.packet_loss
        # Stationary loss rate p with mean burst length b: leave a burst with 1/b,
        # enter one with p / (b (1 - p)).
        self._leave = 1.0 / conditions.loss_burst
        self._enter = p / (conditions.loss_burst * (1.0 - p)) if p > 0 else 0.0
        self._last_due = 0.0
        self.lost = 0

    @property
    def packet_loss_enabled(self) -> bool:
        return self.conditions.packet_loss > 0

    def frame_lost(self) -> bool:
        if self._losing:
            self._losing = self._rng.random() >= self._leave
        else:
            self._losing = self._rng.random() < self._enter
        self.lost += self._losing
        return self._losing

    def send_time(self, slot_s: float) -> float:
        delay = self._rng.uniform(0.0, self.conditions.jitter_ms / 1000.0)
        self._last_due = max(self._last_due, slot_s + delay)
        return self._last_due


def mix_pcm16(a: bytes, b: bytes) -> bytes:
    """Sum two equally long 16-bit PCM chunks, clipping at full scale."""
    x = np.frombuffer(a, dtype="<i2").astype(np.int32) + np.frombuffer(b, dtype="<i2")
    return np.clip(x, -32768, 32767).astype("<i2").tobytes()

"""Early transcription: start recognising while the VAD is still confirming the pause.

The VAD reports the end of speech only after ``stop_secs`` (0.2 s) of silence.
When the caller's audio has already been quiet for part of that wait, the
segment so far is very likely the whole utterance: transcribing it then, instead
of when the VAD confirms, takes that part of the wait off the reply's latency.
If the caller speaks again, the early result is discarded and the segment is
transcribed as usual.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class EarlyTranscriptionPolicy:
    """When an early transcription starts.

    Parameters:
        quiet_secs: Quiet audio after the last loud frame before starting.
        relative_level: A frame is loud above this fraction of the segment's loudest frame.
        min_level: ...and above this absolute RMS (16-bit scale).
    """

    quiet_secs: float = 0.1
    relative_level: float = 0.12
    min_level: float = 150.0


class QuietTracker:
    """Follows one speech segment's loudness to tell when its audio has gone quiet."""

    def __init__(self, policy: EarlyTranscriptionPolicy, sample_rate: int):
        """Create the tracker for audio at ``sample_rate``."""
        self._policy = policy
        self._quiet_bytes = int(policy.quiet_secs * sample_rate) * 2
        self.reset()

    def reset(self) -> None:
        """Forget the segment (a new one starts)."""
        self._peak = 0.0
        self._last_loud_end = 0
        self._started_at: int | None = None

    @property
    def last_loud_end(self) -> int:
        """Segment length (bytes) at the end of the last loud frame."""
        return self._last_loud_end

    def observe(self, chunk: bytes, segment_len: int) -> int | None:
        """Account for a chunk that made the segment ``segment_len`` bytes long.

        Returns:
            The segment length to transcribe early, when an early transcription
            should start now; otherwise None.
        """
        samples = np.frombuffer(chunk[: len(chunk) - len(chunk) % 2], dtype=np.int16)
        if samples.size == 0:
            return None
        rms = float(np.sqrt(np.mean(samples.astype(np.float32) ** 2)))
        self._peak = max(self._peak, rms)
        if rms >= max(self._policy.min_level, self._policy.relative_level * self._peak):
            self._last_loud_end = segment_len
            self._started_at = None
            return None
        if (
            self._started_at is None
            and self._last_loud_end > 0
            and segment_len - self._last_loud_end >= self._quiet_bytes
        ):
            self._started_at = segment_len
            return segment_len
        return None

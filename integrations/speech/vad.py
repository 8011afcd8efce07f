"""Voice activity detection for phone calls: Silero, faster to react, deaf to background chatter.

Pipecat's :class:`SileroVADAnalyzer` is tuned for clean microphones. On a phone line two
things hurt: the loudness gate reacts slowly (its volume is smoothed with a factor of
0.2 per 32 ms window, which alone adds 100-200 ms before speech counts, and hides short
words like "yes"), and Silero happily takes background voices (a café, a TV) for the
caller, so babble interrupts the bot. :class:`PhoneVADAnalyzer`

- smooths the volume less (0.5 per window: short answers are heard, speech is confirmed
  about 100-150 ms sooner, which is most of a barge-in's latency);
- gates Silero with an adaptive **noise floor**: a window only counts as speech when it
  is ``start_margin_db`` above the background level (``hold_margin_db`` once speech has
  started, so soft syllables do not end a turn), the background being the median level of
  the last six seconds;
- shares one Silero ONNX session between all calls (each call keeps its own recurrent
  state), so a call no longer loads the model (about 60-100 ms and a few MB each).
"""

from __future__ import annotations

import bisect
import math
import threading
from collections import deque
from typing import Any

import numpy as np
import onnxruntime
from pipecat.audio.vad.silero import SileroOnnxModel, SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADAnalyzer, VADParams, VADState

DEFAULT_VOLUME_SMOOTHING = 0.5
MIN_FLOOR_DB = -60.0
"""The floor never goes below this (dBFS): digital silence is not a background level."""


def level_db(pcm16: bytes) -> float:
    """RMS level of 16-bit PCM in dBFS (-120 for silence)."""
    samples = np.frombuffer(pcm16[: len(pcm16) - len(pcm16) % 2], dtype=np.int16)
    if samples.size == 0:
        return -120.0
    rms = float(np.sqrt(np.mean(samples.astype(np.float32) ** 2)))
    return 20.0 * math.log10(rms / 32768.0) if rms > 0 else -120.0


class NoiseFloor:
    """Tracks the background level: a percentile of recent window levels.

    Over the last ``window_s`` seconds, the ``percentile``-th percentile (the median by
    default) of the 32 ms window levels (dBFS), fed only while the caller is not speaking
    (see :class:`PhoneVADAnalyzer`): a steady background (babble, hum, hiss) sets it within
    seconds. Digital silence counts as :data:`MIN_FLOOR_DB`.
    """

    def __init__(self, *, window_s: float = 6.0, percentile: float = 50.0):
        """Track over ``window_s`` seconds at the ``percentile``-th percentile."""
        self.window_s = window_s
        self.percentile = percentile
        self._levels: deque[float] = deque()
        self._sorted: list[float] = []
        """The same levels kept in order: the percentile is a lookup, not a sort per window."""
        self._max = 0
        self.db = MIN_FLOOR_DB

    def update(self, level: float, seconds: float) -> float:
        """Account for a window of ``seconds`` at ``level`` dBFS; returns the floor.

        Runs on the event loop for every 32 ms window of every call, so it costs a
        binary search and a short list move (``np.percentile`` here took a quarter of
        the loop's time with eight calls).
        """
        if not self._max:
            self._max = max(1, round(self.window_s / seconds))
        level = max(level, MIN_FLOOR_DB)
        self._levels.append(level)
        bisect.insort(self._sorted, level)
        if len(self._levels) > self._max:
            del self._sorted[bisect.bisect_left(self._sorted, self._levels.popleft())]
        # numpy's default ("linear") percentile
        position = (len(self._sorted) - 1) * self.percentile / 100.0
        low = math.floor(position)
        high = min(low + 1, len(self._sorted) - 1)
        fraction = position - low
        self.db = self._sorted[low] + (self._sorted[high] - self._sorted[low]) * fraction
        return self.db


class _SharedSileroModel(SileroOnnxModel):
    """Silero with its own recurrent state over a session shared by every call."""

    def __init__(self, session: onnxruntime.InferenceSession):
        self.session = session
        self.reset_states()
        self.sample_rates = [8000, 16000]


_session_lock = threading.Lock()
_session: onnxruntime.InferenceSession | None = None


def shared_silero_session() -> onnxruntime.InferenceSession:
    """The process-wide Silero ONNX session (loaded on first use; thread-safe to run)."""
    global _session
    with _session_lock:
        if _session is None:
            model = SileroVADAnalyzer()._model  # loads the bundled model file once
            _session = model.session
        return _session


class PhoneVADAnalyzer(SileroVADAnalyzer):
    """Silero VAD with a fast volume gate, an adaptive noise gate and a shared session."""

    def __init__(
        self,
        *,
        params: VADParams | None = None,
        sample_rate: int | None = None,
        volume_smoothing: float = DEFAULT_VOLUME_SMOOTHING,
        noise_gate: bool = True,
        start_margin_db: float = 6.0,
        hold_margin_db: float = 3.0,
        floor_window_s: float = 6.0,
        floor_percentile: float = 50.0,
        share_session: bool = True,
    ):
        """Create the analyzer for one call.

        Args:
            params: Pipecat VAD parameters (confidence, start/stop times, min volume).
            sample_rate: 8000 or 16000 (or set later by the pipeline).
            volume_smoothing: Weight of the newest window in the smoothed volume (Pipecat
                uses 0.2).
            noise_gate: Require speech to stand out of the background level.
            start_margin_db: How far above the background a window must be to start speech.
            hold_margin_db: ...and to keep it going once started.
            floor_window_s: How much recent audio the background level is taken over.
            floor_percentile: Which percentile of its window levels the background is.
            share_session: Use the process-wide Silero session (else load one).
        """
        if share_session:
            VADAnalyzer.__init__(self, sample_rate=sample_rate, params=params)
            self._model = _SharedSileroModel(shared_silero_session())
            self._windows_since_reset = 0
            self._low_confidence_windows = 0
        else:
            super().__init__(sample_rate=sample_rate, params=params)
        self._smoothing_factor = volume_smoothing
        self._noise_gate = noise_gate
        self._start_margin_db = start_margin_db
        self._hold_margin_db = hold_margin_db
        self._floor = NoiseFloor(window_s=floor_window_s, percentile=floor_percentile)
        self.gated_windows = 0
        """Windows Silero took for speech that the noise gate refused."""

    @property
    def noise_floor_db(self) -> float:
        """The current background level estimate (dBFS)."""
        return self._floor.db

    def voice_confidence(self, buffer: Any) -> float:
        """Silero's confidence, or 0 for a window that does not stand out of the background."""
        confidence = float(np.asarray(super().voice_confidence(buffer)).reshape(-1)[0])
        if not self._noise_gate:
            return confidence
        level = level_db(bytes(buffer))
        seconds = self.num_frames_required() / (self.sample_rate or 8000)
        speaking = self._vad_state in (VADState.SPEAKING, VADState.STOPPING)
        # The caller's own speech must not raise the background estimate.
        floor = self._floor.db if speaking else self._floor.update(level, seconds)
        margin = self._hold_margin_db if speaking else self._start_margin_db
        if level < floor + margin:
            if confidence >= self._params.confidence:
                self.gated_windows += 1
            return 0.0
        return confidence

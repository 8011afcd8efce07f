"""One transcription of a whole caller turn that the VAD split into several segments.

The segmented STT transcribes each VAD segment on its own. When the caller pauses inside
a request ("I booked a checkup for next week. [pause] But I can't make it...") or babble
splits the speech, the recogniser hears each piece without the other's context and the
turn's text is the pieces joined. Transcribing the turn's audio as one piece -- from the
first segment's start to the last one's end, long pauses shortened -- gives the
recogniser that context back (``callagent bench noise-path``: see
:mod:`processors.whole_turn` for the figures).

:func:`turn_spans` says which stretches of the call's audio make up the turn (the bench
and the call cut the same way); :func:`recognize_turn` transcribes them as
:class:`~integrations.speech.stt.LocalSTTService` transcribes a segment.
"""

from __future__ import annotations

from collections.abc import Sequence

from integrations.speech.base import SpeechRecognizer
from integrations.speech.nbest import NBestRecognizer, Recognition
from integrations.speech.stt import trim_lead_in

PREROLL_SECS = 1.0
"""Audio kept before the first segment's start (as Pipecat's segmented STT keeps)."""

SPEECH_LEAD_SECS = 0.3
"""How long before the VAD's start a later segment's speech may have begun.

The VAD fires after ``vad_start_secs`` (0.064 s) of speech, and a soft onset is quieter
still: 0.3 s before the start is kept with each later segment, the rest of the gap before
it is pause.
"""

MAX_PAUSE_SECS = 0.4
"""Longest pause kept between two segments (the middle of a longer one is cut out).

A pause already ends in ``vad_stop_secs`` (0.2 s) of quiet after the last word and
starts ``SPEECH_LEAD_SECS`` before the next segment's start, so 0.4 s more of it is
enough to mark a sentence break; kept whole, a long pause is seconds of babble the
recogniser reads words into. ``callagent bench noise-path`` (dev set, slt), WER of the turn
text in 10 dB babble / clean: pauses kept (up to 5 s) 86.7 / -, 0.4 s 86.5 / 18.6 %, 0.2 s
86.1 / 18.8 % (segments joined: 91.4 / 19.7 %); within a few words of each other.
"""

LEADING_SILENCE_SECS = 0.1
TRAILING_SILENCE_SECS = 0.2
"""Silence around the turn's audio, as the segmented STT pads a segment."""


def turn_spans(
    segments: Sequence[tuple[float, float]],
    *,
    preroll: float,
    speech_lead: float,
    max_pause: float,
    floor: float = 0.0,
) -> list[tuple[float, float]]:
    """The stretches of audio that make up a turn of several segments, in order.

    Works in any unit of time (seconds in the bench, bytes in the call) as long as every
    argument uses the same one.

    Args:
        segments: The turn's VAD segments (start: when the VAD said speech started; end:
            when it said speech stopped), in order.
        preroll: Audio kept before the first segment's start.
        speech_lead: Audio kept before each later segment's start (its speech onset).
        max_pause: Longest stretch kept of the gap between a segment's end and the next
            one's onset (its middle is cut out).
        floor: The earliest audio available (the turn never starts before it).

    Returns:
        Non-overlapping ``(start, end)`` stretches; joined, they are the turn's audio.
    """
    if not segments:
        return []
    spans: list[tuple[float, float]] = []
    start = max(floor, segments[0][0] - preroll)
    end = segments[0][1]
    for seg_start, seg_end in segments[1:]:
        onset = max(end, seg_start - speech_lead)
        if onset - end > max_pause:
            spans.append((start, end + max_pause / 2))
            start = onset - max_pause / 2
        end = max(end, seg_end)
    spans.append((start, end))
    return spans


def prepare_turn_audio(pcm16: bytes, sample_rate: int) -> bytes:
    """A turn's audio as the recogniser hears it best (as the STT prepares a segment)."""
    lead = bytes(int(sample_rate * LEADING_SILENCE_SECS) * 2)
    trail = bytes(int(sample_rate * TRAILING_SILENCE_SECS) * 2)
    return lead + trim_lead_in(pcm16, sample_rate) + trail


def recognize_turn(recognizer: SpeechRecognizer, pcm16: bytes, sample_rate: int) -> Recognition:
    """Transcribe a turn's joined audio into its best readings (blocking: run it off the loop).

    Args:
        recognizer: The embedded recogniser (N-best when it can).
        pcm16: The turn's stretches joined (see :func:`turn_spans`), 16-bit mono PCM.
        sample_rate: Rate of ``pcm16`` in Hz.
    """
    audio = prepare_turn_audio(pcm16, sample_rate)
    if isinstance(recognizer, NBestRecognizer):
        return recognizer.recognize(audio, sample_rate)
    return Recognition.of_text(recognizer.transcribe(audio, sample_rate))

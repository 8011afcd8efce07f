"""A turn the VAD split into segments gets its text from one transcription of all its audio."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pipecat.frames.frames import (
    Frame,
    InputAudioRawFrame,
    LLMContextFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.tests.utils import SleepFrame, run_test

from integrations.speech.nbest import TurnReadings
from integrations.speech.whole_turn import prepare_turn_audio, turn_spans
from processors.user_turn import user_text
from processors.whole_turn import WholeTurnTranscriber
from tests.fakes.speech import ScriptedRecognizer

RATE = 8000
FRAME = RATE // 50  # 20 ms


def test_a_long_pause_keeps_its_ends_and_loses_its_middle() -> None:
    spans = turn_spans(
        [(2.0, 3.0), (6.0, 7.0)], preroll=1.0, speech_lead=0.3, max_pause=0.4, floor=0.0
    )
    # 1 s before the first start; 0.2 s after its end; 0.2 s before the next onset (5.7 s)
    assert spans == [(1.0, 3.2), (5.5, 7.0)]


def test_short_pauses_are_kept_whole_and_the_preroll_stops_at_the_floor() -> None:
    spans = turn_spans([(0.5, 1.0), (1.5, 2.0)], preroll=1.0, speech_lead=0.3, max_pause=0.4)
    assert spans == [(0.0, 2.0)]
    assert turn_spans([(3.0, 4.0)], preroll=1.0, speech_lead=0.3, max_pause=0.4, floor=2.5) == [
        (2.5, 4.0)
    ]
    assert turn_spans([], preroll=1.0, speech_lead=0.3, max_pause=0.4) == []


def _audio(seconds: float, *, loud: bool) -> list[Frame]:
    value = 3000 if loud else 0
    chunk = np.full(FRAME, value, dtype="<i2").tobytes()
    return [
        InputAudioRawFrame(audio=chunk, sample_rate=RATE, num_channels=1)
        for _ in range(round(seconds * 50))
    ]


def _segment(seconds: float) -> list[Frame]:
    """A VAD segment: speech, the VAD's start, more speech, the VAD's stop after quiet."""
    return [
        *_audio(0.1, loud=True),
        VADUserStartedSpeakingFrame(start_secs=0.1),
        *_audio(seconds - 0.1, loud=True),
        *_audio(0.2, loud=False),
        VADUserStoppedSpeakingFrame(stop_secs=0.2),
    ]


def _turn_end(text: str) -> list[Frame]:
    context = LLMContext(messages=[{"role": "system", "content": "persona"}])
    if text:
        context.add_message({"role": "user", "content": text})
    return [UserStoppedSpeakingFrame(), LLMContextFrame(context=context)]


async def _run(
    frames: Sequence[Frame], answer: str = "I booked a checkup but I can't make it"
) -> tuple[list[LLMContextFrame], ScriptedRecognizer, TurnReadings]:
    recognizer = ScriptedRecognizer(answer)
    readings = TurnReadings()
    processor = WholeTurnTranscriber(recognizer=recognizer, readings=readings)
    down, _ = await run_test(processor, frames_to_send=list(frames))
    contexts = [f for f in down if isinstance(f, LLMContextFrame)]
    return contexts, recognizer, readings


async def test_a_split_turn_is_transcribed_whole_with_the_pause_shortened() -> None:
    frames = [
        *_audio(2.0, loud=False),  # the greeting played; the caller listened
        UserStartedSpeakingFrame(),
        *_segment(0.6),
        *_audio(2.0, loud=False),  # the caller paused mid-request
        *_segment(0.8),
        *_turn_end("I booked a check up. But I can make it."),
    ]
    contexts, recognizer, readings = await _run(frames)
    assert [user_text(c) for c in contexts] == ["I booked a checkup but I can't make it"]
    assert len(recognizer.calls) == 1  # the run started at the second stop was used
    pcm, rate = recognizer.calls[0]
    samples = np.frombuffer(pcm, dtype="<i2")
    assert rate == RATE
    assert np.count_nonzero(samples) == round(1.4 * RATE)  # every word of both segments
    padding = prepare_turn_audio(b"", RATE)
    # 0.15 s lead-in, 0.6 s of words, 0.2 s of the VAD's quiet + 0.4 s of the 2 s pause +
    # 0.2 s of quiet before the next words (0.3 s before the VAD's start), 0.8 s, 0.2 s quiet
    assert samples.size == round((0.15 + 0.6 + 0.8 + 0.8 + 0.2) * RATE) + len(padding) // 2
    # the NLU finds the whole turn's readings under its new text
    assert len(readings) == 1
    heard = readings.take("I booked a checkup but I can't make it")
    assert heard is not None and heard.text == "I booked a checkup but I can't make it"


async def test_a_single_segment_turn_passes_through_untouched() -> None:
    frames = [
        *_audio(1.0, loud=False),
        UserStartedSpeakingFrame(),
        *_segment(1.0),
        *_turn_end("Can I book a cleaning?"),
    ]
    contexts, recognizer, _ = await _run(frames)
    assert [user_text(c) for c in contexts] == ["Can I book a cleaning?"]
    assert recognizer.calls == []


async def test_turns_are_counted_apart() -> None:
    frames = [
        UserStartedSpeakingFrame(),
        *_segment(0.5),
        *_turn_end("Hi."),
        UserStartedSpeakingFrame(),
        *_segment(0.5),  # one segment in this turn: the previous one is not part of it
        *_turn_end("Can I book a cleaning?"),
    ]
    contexts, recognizer, _ = await _run(frames)
    assert [user_text(c) for c in contexts] == ["Hi.", "Can I book a cleaning?"]
    assert recognizer.calls == []


async def test_an_empty_turn_or_an_unheard_whole_keeps_the_segments_text() -> None:
    split = [UserStartedSpeakingFrame(), *_segment(0.5), *_audio(1.0, loud=False), *_segment(0.5)]
    contexts, _, _ = await _run([*split, *_turn_end("")])
    assert [user_text(c) for c in contexts] == [""]  # no user message: nothing to rewrite
    contexts, recognizer, _ = await _run([*split, *_turn_end("Um. Cleaning.")], answer="")
    assert [user_text(c) for c in contexts] == ["Um. Cleaning."]
    assert len(recognizer.calls) == 1


async def test_a_turn_ended_before_its_last_vad_stop_keeps_that_segment() -> None:
    # the aggregator's turn end can pass the VAD's stop (which goes through its queue)
    first = [
        UserStartedSpeakingFrame(),
        *_audio(0.1, loud=True),
        VADUserStartedSpeakingFrame(start_secs=0.1),
        *_audio(0.9, loud=True),
        *_audio(0.1, loud=False),
        *_turn_end("Hi, is my car ready yet?"),
        VADUserStoppedSpeakingFrame(stop_secs=0.2),
    ]
    second = [
        *_audio(1.0, loud=False),
        UserStartedSpeakingFrame(),
        *_segment(0.5),
        *_audio(1.0, loud=False),
        *_segment(0.7),
        *_turn_end("I dropped it off. This morning."),
    ]
    contexts, recognizer, _ = await _run([*first, *second], answer="I dropped it off this morning")
    assert [user_text(c) for c in contexts] == [
        "Hi, is my car ready yet?",
        "I dropped it off this morning",
    ]
    assert len(recognizer.calls) == 1
    samples = np.frombuffer(recognizer.calls[0][0], dtype="<i2")
    assert np.count_nonzero(samples) == round(1.2 * RATE)  # the second turn's words only


def _context_first(text: str) -> list[Frame]:
    """A turn's end as a call's pipeline delivers it here: its context before its stop.

    (Sent with pauses: ``run_test`` queues frames at once, and system frames overtake.)
    """
    stop, context = _turn_end(text)
    return [SleepFrame(0.05), context, SleepFrame(0.05), stop, SleepFrame(0.05)]


async def test_a_split_turn_whose_context_comes_before_its_stop_is_transcribed_whole() -> None:
    frames = [
        UserStartedSpeakingFrame(),
        *_segment(0.6),
        *_audio(1.0, loud=False),
        *_segment(0.8),
        *_context_first("Yeah. Hi, my family is looking for a new dentist."),
        # the caller goes on at once, in one segment: this turn's text is its own
        UserStartedSpeakingFrame(),
        *_segment(0.8),
        *_context_first("Do you have room for us?"),
    ]
    contexts, recognizer, _ = await _run(
        frames, answer="Yes, hi, my family is looking for a new dentist."
    )
    assert [user_text(c) for c in contexts] == [
        "Yes, hi, my family is looking for a new dentist.",
        "Do you have room for us?",
    ]
    assert len(recognizer.calls) == 1


async def test_a_context_with_no_turn_to_end_leaves_the_next_turn_alone() -> None:
    keyed = LLMContext(messages=[{"role": "user", "content": "DTMF: 1"}])
    frames = [
        LLMContextFrame(context=keyed),  # a keyed turn: no speech, no stop follows
        SleepFrame(0.05),
        UserStartedSpeakingFrame(),
        *_segment(0.5),
        *_audio(1.0, loud=False),
        *_segment(0.5),
        *_turn_end("Um. Cleaning."),
    ]
    contexts, recognizer, _ = await _run(frames, answer="Um, cleaning.")
    assert [user_text(c) for c in contexts] == ["DTMF: 1", "Um, cleaning."]
    assert len(recognizer.calls) == 1


# A late segment transcript the aggregator sends on its own after the turn it belonged to

SEGMENTS_TEXT = "Yeah. Hi, my family is looking for a new dentist."
WHOLE = "Yes, hi, my family is looking for a new dentist. Do you have room for us?"


def _split_turn() -> list[Frame]:
    context = LLMContext(messages=[{"role": "system", "content": "persona"}])
    context.add_message({"role": "user", "content": SEGMENTS_TEXT})
    return [
        UserStartedSpeakingFrame(),
        *_segment(0.6),
        *_audio(1.0, loud=False),
        *_segment(0.8),
        SleepFrame(0.05),
        UserStoppedSpeakingFrame(),
        LLMContextFrame(context=context),
    ]


def _late(text: str) -> tuple[LLMContext, list[Frame]]:
    """The aggregator's context for a transcript that came after its turn ended (no start, stop).

    (The aggregator's context is one object whose messages grow; here each frame has its
    own, as it was when sent.)
    """
    context = LLMContext(messages=[{"role": "system", "content": "persona"}])
    context.add_message({"role": "user", "content": WHOLE})
    context.add_message({"role": "user", "content": text})
    return context, [SleepFrame(0.05), LLMContextFrame(context=context)]


async def test_a_late_transcript_of_words_the_turn_had_whole_is_dropped() -> None:
    late, frames = _late("Do you have room for a?")
    contexts, _, _ = await _run([*_split_turn(), *frames], answer=WHOLE)
    assert [user_text(c) for c in contexts] == [WHOLE]  # no turn the caller never took
    users = [m for m in late.get_messages() if m.get("role") == "user"]  # type: ignore[union-attr]
    assert [m["content"] for m in users] == [WHOLE]  # type: ignore[index]


async def test_a_late_transcript_with_words_the_turn_did_not_have_goes_on() -> None:
    _, frames = _late("And I need a cleaning.")
    contexts, _, _ = await _run([*_split_turn(), *frames], answer=WHOLE)
    assert [user_text(c) for c in contexts] == [WHOLE, "And I need a cleaning."]


async def test_a_new_turn_saying_the_same_again_goes_on() -> None:
    _, frames = _late("Do you have room for us?")
    again = [  # the caller spoke again: a turn of its own
        SleepFrame(0.1),  # system frames overtake data frames: the first turn ends first
        UserStartedSpeakingFrame(),
        *_segment(0.8),
        SleepFrame(0.05),
        UserStoppedSpeakingFrame(),
    ]
    contexts, _, _ = await _run([*_split_turn(), *again, *frames], answer=WHOLE)
    assert [user_text(c) for c in contexts] == [WHOLE, "Do you have room for us?"]

"""A turn's recogniser readings reach the NLU although the user aggregator passes on text only."""

from __future__ import annotations

import math
from datetime import datetime

import pytest
from pipecat.frames.frames import LLMContextFrame
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.tests.utils import run_test

from integrations.nlu.base import NLUThresholds
from integrations.nlu.entities import EntityExtractor, default_parsers
from integrations.speech.nbest import Hypothesis, Recognition, TurnReadings, join_recognitions
from integrations.speech.stt import LocalSTTService
from processors.frames import Band, NLUResultFrame
from processors.nlu_router import NLURouter
from tests.fakes.classifier import ScriptedClassifier, prediction
from tests.fakes.speech import ScriptedRecognizer


def heard(*texts: str, logprob: float = -0.1) -> Recognition:
    return Recognition(tuple(Hypothesis(t, token_logprob=logprob) for t in texts))


def test_one_segment_keeps_its_readings() -> None:
    segment = heard("book a cleaning", "look a cleaning")
    assert join_recognitions([segment]) == segment


def test_segments_join_best_first_and_swap_the_least_sure_segment_first() -> None:
    first = heard("hi", "high", logprob=-0.1)
    second = heard("look a cleaning", "book a cleaning", logprob=-1.0)
    turn = join_recognitions([first, Recognition(), second])
    assert turn.text == "hi look a cleaning"
    assert turn.alternatives == ("hi book a cleaning", "high look a cleaning")
    # word-weighted: one word sure, three words unsure
    assert turn.confidence == pytest.approx(math.exp((1 * -0.1 + 3 * -1.0) / 4))


def test_nothing_heard_joins_to_nothing() -> None:
    assert join_recognitions([Recognition(), Recognition()]) == Recognition()


def test_a_turn_takes_its_segments_and_those_before() -> None:
    log = TurnReadings()
    log.add(heard("Mhm."))  # a backchannel no turn took
    log.add(heard("Hi, um,"))
    log.add(heard("Do you take Delta?", "Do you take Dell?"))
    log.add(heard("Next turn."))
    turn = log.take("hi um do you take delta")
    assert turn is not None
    assert turn.text == "Hi, um, Do you take Delta?"
    assert turn.alternatives == ("Hi, um, Do you take Dell?",)
    assert len(log) == 1  # the next turn's segment stays
    assert log.take("Next turn.") is not None
    assert len(log) == 0


def test_a_turn_whose_text_no_segments_make_takes_nothing() -> None:
    log = TurnReadings()
    log.add(heard("book a cleaning"))
    assert log.take("something else") is None
    assert log.take("") is None
    assert len(log) == 1


def test_only_the_latest_segments_are_kept() -> None:
    log = TurnReadings(max_segments=2)
    for text in ("one", "two", "three"):
        log.add(heard(text))
    assert len(log) == 2
    assert log.take("one") is None


class _Recognizer(ScriptedRecognizer):
    def recognize(self, pcm16: bytes, sample_rate: int) -> Recognition:
        return heard("look a cleaning", "book a cleaning")


async def test_the_stt_logs_each_segments_readings() -> None:
    log = TurnReadings()
    stt = LocalSTTService(recognizer=_Recognizer("look a cleaning"), readings=log, sample_rate=8000)
    stt._sample_rate = 8000  # pyright: ignore[reportPrivateUsage] - no pipeline here
    frames = [f async for f in stt.run_stt(bytes(3200))]
    assert frames
    assert len(log) == 1
    assert log.take("look a cleaning") is not None


async def test_a_context_turn_is_decided_on_its_other_readings() -> None:
    classifier = ScriptedClassifier(
        answers={
            "look a cleaning": prediction("book_appointment", 0.55),
            "book a cleaning": prediction("book_appointment", 0.97),
        }
    )
    extractor = EntityExtractor(default_parsers(clock=lambda: datetime(2026, 11, 21, 10, 0)))
    log = TurnReadings()
    log.add(heard("look a cleaning", "book a cleaning"))
    router = NLURouter(classifier, None, NLUThresholds(), extractor, readings=log)
    context = LLMContextFrame(LLMContext(messages=[{"role": "user", "content": "look a cleaning"}]))
    down, _ = await run_test(
        router, frames_to_send=[context], expected_down_frames=[NLUResultFrame, LLMContextFrame]
    )
    result = down[0]
    assert isinstance(result, NLUResultFrame)
    assert (result.intent, result.text) == ("book_appointment", "book a cleaning")
    assert result.band is Band.CLARIFY  # another reading is never acted on without asking
    assert len(log) == 0

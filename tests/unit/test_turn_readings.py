"""A turn's recogniser readings reach the NLU although the user aggregator passes on text only."""

from __future__ import annotations

import math
from datetime import datetime

import pytest
from pipecat.frames.frames import LLMContextFrame, TTSSpeakFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.tests.utils import SleepFrame, run_test

from integrations.nlu.base import NLUThresholds
from integrations.nlu.entities import EntityExtractor, default_parsers
from integrations.speech.nbest import Hypothesis, Recognition, TurnReadings, join_recognitions
from integrations.speech.stt import LocalSTTService
from processors.dialogue import DialoguePolicy, DialogueProcessor
from processors.frames import OUT_OF_SCOPE, Band, BotReplyFrame, NLUResultFrame
from processors.nlu_router import NLURouter
from tests.fakes.classifier import ScriptedClassifier, prediction
from tests.fakes.speech import ScriptedRecognizer
from tests.support.frames import spoken


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


def test_peeking_at_a_turn_leaves_its_readings_for_the_nlu() -> None:
    log = TurnReadings()
    log.add(heard("Hi, um,"))
    log.add(heard("Do you take Sinner?", "Do you take Sina?"))
    seen = log.peek("hi um do you take sinner")
    assert seen is not None
    assert seen.alternatives == ("Hi, um, Do you take Sina?",)
    assert len(log) == 2
    assert log.take("hi um do you take sinner") == seen
    assert log.peek("anything") is None


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
    assert result.band is Band.CLARIFY  # another reading of a booking is asked about first
    assert len(log) == 0


# The recogniser's doubt: garbled words in noise are repaired (the keypad offered), not
# answered as a clearly heard out-of-scope request.

GARBLED = "life don't sell on you guys everywhere"
GARBLED_TOO = "the fairly decoded offender threw a move"


def oos_router(log: TurnReadings | None = None, unsure_below: float = 0.5) -> NLURouter:
    classifier = ScriptedClassifier(
        answers={
            GARBLED: prediction(OUT_OF_SCOPE, 0.9),
            GARBLED_TOO: prediction(OUT_OF_SCOPE, 0.9),
        }
    )
    extractor = EntityExtractor(default_parsers(clock=lambda: datetime(2026, 11, 21, 10, 0)))
    return NLURouter(
        classifier, None, NLUThresholds(), extractor, readings=log, unsure_below=unsure_below
    )


async def test_words_the_recogniser_doubts_are_unsure_whatever_the_classifier_says() -> None:
    router = oos_router()
    doubted = await router.decide(GARBLED, heard_confidence=0.3)
    assert doubted.unsure
    assert doubted.heard_confidence == pytest.approx(0.3)
    clear = await router.decide(GARBLED, heard_confidence=0.9)
    assert not clear.unsure  # a clearly heard request out of scope
    unknown = await router.decide(GARBLED)
    assert not unknown.unsure and unknown.heard_confidence is None


async def test_the_recogniser_doubt_is_off_at_zero() -> None:
    router = oos_router(unsure_below=0.0)
    assert not (await router.decide(GARBLED, heard_confidence=0.05)).unsure


async def test_doubted_words_in_noise_are_repaired_and_then_offered_the_keypad(agent) -> None:
    log = TurnReadings()
    frames = []
    for text in (GARBLED, GARBLED_TOO):
        log.add(heard(text, logprob=math.log(0.3)))
        frames.append(LLMContextFrame(LLMContext(messages=[{"role": "user", "content": text}])))
        frames.append(SleepFrame(0.05))
    down, _ = await run_test(
        Pipeline([oos_router(log), DialogueProcessor(DialoguePolicy(agent))]),
        frames_to_send=frames,
        expected_down_frames=[NLUResultFrame, BotReplyFrame, TTSSpeakFrame] * 2,
    )
    decisions = [f for f in down if isinstance(f, NLUResultFrame)]
    assert all(d.unsure and d.heard_confidence == pytest.approx(0.3) for d in decisions)
    first, second = spoken(down)
    assert first == agent.repair[0]  # not the out-of-scope reply
    assert second == f"{agent.repair[1]} {agent.keypad_offer}"


async def test_a_clearly_heard_request_no_intent_comes_near_gets_the_honest_answer(agent) -> None:
    hiring = "Are you hiring any dental hygienists at the moment?"
    classifier = ScriptedClassifier(answers={hiring: prediction("book_appointment", 0.46)})
    extractor = EntityExtractor(default_parsers(clock=lambda: datetime(2026, 11, 21, 10, 0)))
    log = TurnReadings()
    log.add(heard(hiring, logprob=math.log(0.97)))
    router = NLURouter(classifier, None, NLUThresholds(), extractor, readings=log, unsure_below=0.5)
    down, _ = await run_test(
        Pipeline([router, DialogueProcessor(DialoguePolicy(agent))]),
        frames_to_send=[
            LLMContextFrame(LLMContext(messages=[{"role": "user", "content": hiring}]))
        ],
        expected_down_frames=[NLUResultFrame, BotReplyFrame, TTSSpeakFrame],
    )
    decision = down[0]
    assert isinstance(decision, NLUResultFrame)
    assert (decision.intent, decision.unsure) == (OUT_OF_SCOPE, False)
    assert spoken(down) == [agent.declined_line()]  # not "Sorry, could you say that again?"

"""Words the recogniser doubts are asked about or repaired, never acted on.

In 10 dB babble a garbled turn ("Rates casual", "Check again today") can read to the
classifier as a clear request; the recogniser's own per-word confidence tells it apart
from a request whose edges the babble garbled but whose words were heard.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime

import pytest
from pipecat.frames.frames import Frame, LLMContextFrame, TTSSpeakFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.frame_processor import FrameProcessor
from pipecat.tests.utils import SleepFrame, run_test

from integrations.nlu.base import NLUThresholds
from integrations.nlu.entities import EntityExtractor, default_parsers
from integrations.speech.nbest import Hypothesis, Recognition, TurnReadings
from processors.act_guard import HeardDoubt, words_that_matter
from processors.agent_definition import AgentDefinition
from processors.dialogue import DialoguePolicy, DialogueProcessor
from processors.frames import Band, BotReplyFrame, NLUResultFrame
from processors.nlu_router import NLURouter
from tests.fakes.classifier import ScriptedClassifier, prediction
from tests.support.frames import spoken

GARBLED = "Rates casual"
"""A reschedule request in babble, read as a clear question about prices."""
EDGES_GARBLED = "You yeah I need to cancel my appointment"
"""A cancellation whose first words the babble garbled."""


def heard(text: str, confidences: list[float]) -> Recognition:
    """One reading whose words were heard with these confidences (the turn's: their mean)."""
    logprobs = tuple(math.log(c) for c in confidences)
    mean = sum(logprobs) / len(logprobs)
    return Recognition((Hypothesis(text, token_logprob=mean, word_logprobs=logprobs),))


def test_the_words_that_matter_leave_out_fillers_and_function_words() -> None:
    confidences = [0.01, 0.02, 0.9, 0.8, 0.95, 0.9, 0.9, 0.85]
    assert words_that_matter(EDGES_GARBLED, confidences) == [0.8, 0.9, 0.85]
    assert words_that_matter("Yeah.", [0.04]) == [0.04]  # a lone "yeah" is all it says


@pytest.mark.parametrize(
    ("text", "confidences", "forbids"),
    [
        (GARBLED, [0.01, 0.08], True),  # every word doubted
        (EDGES_GARBLED, [0.001, 0.01, 0.9, 0.8, 0.95, 0.9, 0.9, 0.85], False),  # request heard
        ("Yeah.", [0.04], True),  # a doubted lone yes
        ("Underneath and underneath your body", [0.01, 0.27, 0.78, 0.4, 0.99], True),
    ],
)
def test_a_doubted_turn_acts_only_when_its_words_that_matter_were_heard(
    text: str, confidences: list[float], forbids: bool
) -> None:
    doubt = HeardDoubt(unsure_below=0.5)
    turn = heard(text, confidences)
    assert turn.confidence < 0.5
    assert doubt.forbids_acting(text, turn.confidence, turn.word_confidences) is forbids


def test_an_irreversible_decision_has_the_stricter_bar() -> None:
    doubt = HeardDoubt.with_bar(0.5)
    words = [0.6, 0.55]  # "Race schedule." heard clean, taken for a booking
    assert not doubt.forbids_acting("Race schedule.", 0.57, words)
    assert doubt.forbids_acting("Race schedule.", 0.57, words, irreversible=True)
    assert not doubt.forbids_acting("Race schedule.", 0.7, words, irreversible=True)
    assert HeardDoubt.with_bar(0.0) == HeardDoubt()  # the doubt off turns both bars off


def test_a_sure_or_unscored_turn_is_not_doubted() -> None:
    doubt = HeardDoubt(unsure_below=0.5)
    assert not doubt.forbids_acting(GARBLED, 0.8, [0.01, 0.08])  # the turn bar comes first
    assert not doubt.forbids_acting(GARBLED, None, ())  # a recogniser without scores
    assert doubt.forbids_acting(GARBLED, 0.2, ())  # per-word scores unknown: the turn decides
    assert not HeardDoubt(unsure_below=0.0).forbids_acting(GARBLED, 0.01, [0.01, 0.08])


def router(readings: TurnReadings) -> NLURouter:
    classifier = ScriptedClassifier(
        answers={
            GARBLED: prediction("pricing", 0.97),
            EDGES_GARBLED: prediction("cancel_appointment", 0.97),
            "Yeah.": prediction("affirm", 0.99),
            "Yes please.": prediction("affirm", 0.99),
        }
    )
    extractor = EntityExtractor(default_parsers(clock=lambda: datetime(2026, 11, 21, 10, 0)))
    return NLURouter(
        classifier, None, NLUThresholds(act=0.75), extractor, readings=readings, unsure_below=0.5
    )


async def decide_turns(
    turns: list[tuple[str, list[float]]], *, agent: AgentDefinition | None = None
) -> tuple[list[NLUResultFrame], Sequence[Frame]]:
    log = TurnReadings()
    frames = []
    for text, confidences in turns:
        log.add(heard(text, confidences))
        frames.append(LLMContextFrame(LLMContext(messages=[{"role": "user", "content": text}])))
        frames.append(SleepFrame(0.05))
    processors: list[FrameProcessor] = [router(log)]
    expected: list[type] = [NLUResultFrame, LLMContextFrame] * len(turns)
    if agent is not None:
        processors.append(DialogueProcessor(DialoguePolicy(agent)))
        expected = [NLUResultFrame, BotReplyFrame, TTSSpeakFrame] * len(turns)
    down, _ = await run_test(
        Pipeline(processors), frames_to_send=frames, expected_down_frames=expected
    )
    return [f for f in down if isinstance(f, NLUResultFrame)], down


async def test_a_garbled_turn_is_asked_about_not_acted_on(agent) -> None:
    [decision], down = await decide_turns([(GARBLED, [0.01, 0.08])], agent=agent)
    assert decision.intent == "pricing" and decision.confidence == pytest.approx(0.97)
    assert decision.band is Band.CLARIFY and decision.unsure
    # the caller can still say yes to a right reading
    assert spoken(down) == ["Did you want to know our prices?"]


async def test_a_request_heard_through_garbled_edges_still_acts() -> None:
    confidences = [0.001, 0.01, 0.9, 0.8, 0.95, 0.9, 0.9, 0.85]
    [decision], _ = await decide_turns([(EDGES_GARBLED, confidences)])
    assert decision.unsure  # the turn as a whole is doubted ...
    assert decision.band is Band.ACT  # ... but the request's own words were heard


async def test_a_doubted_yes_is_repaired_not_taken_as_an_answer() -> None:
    [request, answer], _ = await decide_turns(
        [("what time do you open", [0.9] * 5), ("Yeah.", [0.04])]
    )
    assert answer.intent == "affirm" and answer.band is Band.REPAIR and answer.unsure


async def test_a_doubted_yes_to_a_question_leaves_it_open_for_a_clear_one(agent) -> None:
    decisions, down = await decide_turns(
        [(GARBLED, [0.01, 0.08]), ("Yeah.", [0.04]), ("Yes please.", [0.95, 0.9])], agent=agent
    )
    assert [d.band for d in decisions] == [Band.CLARIFY, Band.REPAIR, Band.ACT]
    asked, repaired, answered = spoken(down)
    assert asked == "Did you want to know our prices?"
    assert repaired == agent.repair[0]  # the doubted yes confirmed nothing
    assert answered not in (asked, *agent.repair)  # the clear yes answers the question

"""The turn-end check: a request ends the turn on its words alone only when read surely."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

from bot.agent import load_agent
from bot.call.nlu import make_completeness_check, make_misheard_answer_check
from integrations.speech.nbest import Hypothesis, Recognition, TurnReadings
from tests.fakes.classifier import ScriptedClassifier, prediction

AGENT = load_agent(
    Path(__file__).resolve().parents[2] / "bot" / "agents" / "dental_front_desk.yaml"
)


def check(act: float, turn_end: float, confidence: float) -> bool:
    nlu = replace(AGENT.nlu, act_threshold=act, turn_end_threshold=turn_end)
    classifier = ScriptedClassifier(default=prediction("book_appointment", confidence))
    runtime = SimpleNamespace(classifier=classifier, agent=replace(AGENT, nlu=nlu))
    return make_completeness_check(runtime)("I booked a checkup for next week")  # type: ignore[arg-type]


def test_acting_bar_below_the_turn_end_bar_does_not_end_turns():
    assert not check(act=0.75, turn_end=0.85, confidence=0.8)
    assert check(act=0.75, turn_end=0.85, confidence=0.9)


def test_a_stricter_acting_bar_still_applies():
    assert not check(act=0.9, turn_end=0.85, confidence=0.87)


def test_backchannels_are_whole_turns():
    nlu = replace(AGENT.nlu, turn_end_threshold=0.99)
    runtime = SimpleNamespace(
        classifier=ScriptedClassifier(default=prediction("affirm", 0.1)),
        agent=replace(AGENT, nlu=nlu),
    )
    assert make_completeness_check(runtime)("mhm")  # type: ignore[arg-type]


def test_a_sure_yes_or_no_is_a_whole_turn_only_when_the_bot_asked_for_one():
    # the call's opening "So, uh," heard as "Don't." read as a sure no: the caller goes on
    runtime = SimpleNamespace(
        classifier=ScriptedClassifier(default=prediction("deny", 0.97)), agent=AGENT
    )
    asked = False
    turn_check = make_completeness_check(runtime, answers_expected=lambda: asked)  # type: ignore[arg-type]
    assert not turn_check("Don't.")
    asked = True
    assert turn_check("Don't.")
    assert make_completeness_check(runtime)("Don't.")  # type: ignore[arg-type]  # barge-in


def reading_check(best: str, other: str, intent: str, *, logprob: float = -0.1) -> bool:
    """The turn-end check on ``best`` when the recogniser's other reading is ``other``."""
    readings = TurnReadings()
    readings.add(Recognition((Hypothesis(best, token_logprob=logprob), Hypothesis(other))))
    classifier = ScriptedClassifier(
        answers={other: prediction(intent, 0.95)}, default=prediction("insurance", 0.4)
    )
    runtime = SimpleNamespace(
        classifier=classifier,
        agent=AGENT,
        settings=SimpleNamespace(asr_unsure_confidence=0.5),
    )
    return make_completeness_check(runtime, readings=readings)(best)  # type: ignore[arg-type]


def test_a_question_the_agent_only_answers_ends_the_turn_on_another_reading():
    # "do you take cigna" heard "Do you take Sinner?" (unsure) or "Do you take Sina?" (sure)
    assert reading_check("Do you take Sinner?", "Do you take Sina?", "insurance")


def test_another_reading_of_anything_else_does_not_end_the_turn():
    # the router only asks about a booking or a hand-off read on another reading
    assert not reading_check("Look a cleaning.", "Book a cleaning.", "book_appointment")
    assert not reading_check("Get me a person.", "Get me a person", "talk_to_human")


def test_another_reading_of_garbled_words_does_not_end_the_turn():
    # exp(-1.0) = 0.37: under the recogniser's unsure bar (babble); the garbled hold stands
    assert not reading_check("Do you take Sinner?", "Do you take Sina?", "insurance", logprob=-1.0)


def misheard_answer(best: str, other: str, readings_of: dict[str, str], logprob: float) -> bool:
    """The misheard-answer check on ``best`` (other reading ``other``), heard at ``logprob``."""
    readings = TurnReadings()
    readings.add(Recognition((Hypothesis(best, token_logprob=logprob), Hypothesis(other))))
    classifier = ScriptedClassifier(
        answers={text: prediction(intent, 0.95) for text, intent in readings_of.items()},
        default=prediction("out_of_scope", 0.6),
    )
    runtime = SimpleNamespace(
        classifier=classifier,
        agent=AGENT,
        settings=SimpleNamespace(asr_unsure_confidence=0.5),
    )
    return make_misheard_answer_check(runtime, readings)(best)  # type: ignore[arg-type]


MISHEARD = -0.46  # exp: 0.63, "can I spread the cost" on a bench latency call
CLEAR = -0.1  # 0.90
GARBLED = -1.0  # 0.37


def test_misheard_words_surely_a_question_answered_outright():
    spread = {"Canon, I spread the cost.": "kb:payment_plans"}
    assert misheard_answer(
        "Canon, I spread the cost.", "Canon, I spread the cost,", spread, MISHEARD
    )
    # the router reads the other reading: "Doing a treat, kid." is the children answer
    kids = {"Doing a treat, kid.": "kb:children"}
    assert misheard_answer("Doing a treat, good.", "Doing a treat, kid.", kids, MISHEARD)


def test_clear_or_garbled_words_or_other_intents_are_not_misheard_answers():
    told = {"I have coverage through my employer.": "insurance"}
    # heard clearly: the caller's own sentence that sets the scene keeps its hold
    assert not misheard_answer("I have coverage through my employer.", "x", told, CLEAR)
    assert not misheard_answer("I have coverage through my employer.", "x", told, GARBLED)
    # a booking or an emergency is never answered outright
    booked = {"I'll check up for next week.": "book_appointment"}
    assert not misheard_answer("I'll check up for next week.", "x", booked, MISHEARD)
    hurt = {"My tooth is broken.": "emergency"}
    assert not misheard_answer("My tooth is broken.", "x", hurt, MISHEARD)

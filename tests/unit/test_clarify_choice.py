"""What a clarifying question offers: the decision's intent, or it and a close runner-up."""

import pytest

from processors.clarify_choice import ClarifyChoice
from processors.frames import OUT_OF_SCOPE, Band, NLUResultFrame

KNOWN = frozenset({"book_appointment", "cancel_appointment", "affirm", "deny"})


def decision(
    runner_up: str | None,
    margin: float,
    band: Band = Band.CLARIFY,
    intent: str = "book_appointment",
) -> NLUResultFrame:
    return NLUResultFrame(
        text="...", intent=intent, confidence=0.6, runner_up=runner_up, margin=margin, band=band
    )


def test_a_close_runner_up_is_offered_after_the_decision():
    choice = ClarifyChoice(0.5, KNOWN)
    assert choice.offered(decision("cancel_appointment", 0.2)) == (
        "book_appointment",
        "cancel_appointment",
    )


@pytest.mark.parametrize(
    ("nlu", "why"),
    [
        (decision("cancel_appointment", 0.5), "the lead is not under the bar"),
        (decision("cancel_appointment", 0.2, Band.ACT), "not a clarification"),
        (decision("cancel_appointment", 0.2, Band.REPAIR), "not a clarification"),
        (decision("affirm", 0.1), "a yes is not a request to offer"),
        (decision(OUT_OF_SCOPE, 0.1), "out of scope is not offered"),
        (decision("reschedule_appointment", 0.1), "not one of the agent's intents"),
        (decision("book_appointment", 0.0), "the same intent"),
        (decision(None, 0.0), "no runner-up"),
        (decision("cancel_appointment", 0.1, intent="deny"), "a no is asked about alone"),
    ],
)
def test_otherwise_the_decision_s_intent_alone(nlu: NLUResultFrame, why: str):
    assert ClarifyChoice(0.5, KNOWN).offered(nlu) == (nlu.intent,), why


def test_a_bar_of_zero_never_offers_the_runner_up():
    assert ClarifyChoice(0.0, KNOWN).offered(decision("cancel_appointment", 0.0)) == (
        "book_appointment",
    )


def test_the_agent_file_sets_the_bar(agent):
    choice = ClarifyChoice.for_agent(agent)
    assert choice.runner_up_within == agent.nlu.clarify_runner_up_within
    assert "cancel_appointment" in choice.known and "kb:whitening" in choice.known

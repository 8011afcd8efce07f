import dataclasses

from pipecat.frames.frames import EndWorkerFrame, LLMContextFrame, TTSSpeakFrame
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.tests.utils import run_test

from processors.agent_definition import IntentAction
from processors.call_events import CallEventObserver
from processors.dialogue import DialoguePolicy, DialogueProcessor
from processors.frames import OUT_OF_SCOPE, Band, BotReplyFrame, DecisionPath, NLUResultFrame
from tests.support.frames import spoken


def nlu(intent, band=Band.ACT, conf=0.95, **entities):
    return NLUResultFrame(text="...", intent=intent, confidence=conf, band=band, entities=entities)


def test_faq_intent_answers_from_the_agent_file(agent):
    reply = DialoguePolicy(agent).decide(nlu("opening_hours"))
    assert "Monday to Friday" in reply.text


def test_knowledge_base_entry_answers(agent):
    reply = DialoguePolicy(agent).decide(nlu("kb:children"))
    assert "children" in reply.text


def test_slot_is_asked_for_then_filled(agent):
    policy = DialoguePolicy(agent)
    ask = policy.decide(nlu("book_appointment"))
    assert ask.text == agent.intent("book_appointment").slots[0].prompt
    done = policy.decide(
        nlu(OUT_OF_SCOPE, Band.REPAIR, 0.2, datetime={"spoken": "Tuesday at 3 PM"})
    )
    assert "Tuesday at 3 PM" in done.text


def test_slot_filled_in_the_same_turn(agent):
    reply = DialoguePolicy(agent).decide(nlu("reschedule_appointment", datetime="Friday at 10 AM"))
    assert "Friday at 10 AM" in reply.text


def test_medium_confidence_clarifies_and_yes_acts(agent):
    policy = DialoguePolicy(agent)
    question = policy.decide(nlu("cancel_appointment", Band.CLARIFY, 0.6))
    assert question.text == "Did you want to cancel your appointment?"
    ask = policy.decide(nlu("affirm"))  # unknown caller: which appointment?
    assert ask.text == agent.intent("cancel_appointment").slots[0].prompt
    assert (
        "cancelled"
        in policy.decide(nlu(OUT_OF_SCOPE, Band.REPAIR, 0.2, datetime="Friday at 10 AM")).text
    )


def test_medium_confidence_clarifies_and_no_offers_help(agent):
    policy = DialoguePolicy(agent)
    policy.decide(nlu("cancel_appointment", Band.CLARIFY, 0.6))
    assert agent.fallback in policy.decide(nlu("deny")).text


def either(first, second, conf=0.55, margin=0.2):
    """A clarify-band decision whose runner-up is close."""
    return NLUResultFrame(
        text="...", intent=first, confidence=conf, band=Band.CLARIFY, runner_up=second,
        margin=margin,
    )  # fmt: skip


def test_a_close_runner_up_is_offered_too_and_naming_it_acts_on_it(agent):
    policy = DialoguePolicy(agent)
    question = policy.decide(either("book_appointment", "cancel_appointment"))
    assert question.text == "Did you want to book an appointment, or cancel your appointment?"
    assert question.offered == ("book_appointment", "cancel_appointment")
    # "Cancel." alone: a fragment the router asks about, here the caller's choice
    chosen = policy.decide(nlu("cancel_appointment", Band.CLARIFY, 0.8))
    assert chosen.intent == "cancel_appointment"
    assert chosen.text == agent.intent("cancel_appointment").slots[0].prompt  # which one?


def test_a_yes_to_two_offered_intents_asks_again_and_a_no_offers_help(agent):
    policy = DialoguePolicy(agent)
    asked = policy.decide(either("book_appointment", "cancel_appointment"))
    again = policy.decide(nlu("affirm"))
    assert again.text == asked.text and again.offered == asked.offered
    assert agent.fallback in policy.decide(nlu("deny")).text


def test_a_doubtful_or_other_answer_to_two_offered_intents_is_not_taken_as_the_choice(agent):
    policy = DialoguePolicy(agent)
    policy.decide(either("book_appointment", "cancel_appointment"))
    doubtful = dataclasses.replace(nlu("cancel_appointment", Band.CLARIFY, 0.8), unsure=True)
    reply = policy.decide(doubtful)
    assert reply.text == "Did you want to cancel your appointment?"  # asked about, not acted
    other = DialoguePolicy(agent)
    other.decide(either("book_appointment", "cancel_appointment"))
    assert "Monday to Friday" in other.decide(nlu("opening_hours")).text


def test_a_far_runner_up_is_not_offered(agent):
    question = DialoguePolicy(agent).decide(
        either("book_appointment", "cancel_appointment", conf=0.8, margin=0.7)
    )
    assert question.text == "Did you want to book an appointment?"
    assert question.offered == ("book_appointment",)


def test_low_confidence_repairs_and_counts_failures(agent):
    policy = DialoguePolicy(agent)
    first = policy.decide(nlu(OUT_OF_SCOPE, Band.REPAIR, 0.1))
    second = policy.decide(nlu("insurance", Band.REPAIR, 0.3))
    assert first.text in agent.repair and second.text in agent.repair and first.text != second.text
    assert policy.consecutive_failures == 2
    policy.decide(nlu("location"))
    assert policy.consecutive_failures == 0


def test_out_of_scope_goes_to_the_llm_only_when_there_is_one(agent):
    assert (
        DialoguePolicy(agent, llm_available=True).decide(nlu(OUT_OF_SCOPE, Band.REPAIR, 0.1))
        is None
    )
    assert DialoguePolicy(agent).decide(nlu(OUT_OF_SCOPE, Band.REPAIR, 0.1)) is not None


def test_goodbye_and_transfer_actions(agent):
    assert DialoguePolicy(agent).decide(nlu("goodbye")).action is IntentAction.END_CALL
    transfer = DialoguePolicy(agent).decide(nlu("talk_to_human"))
    assert transfer.action is IntentAction.TRANSFER
    assert transfer.text == agent.transfer.handoff_line


async def test_processor_speaks_the_reply_and_consumes_the_context(agent):
    context = LLMContextFrame(LLMContext(messages=[{"role": "user", "content": "hours?"}]))
    down, _ = await run_test(
        DialogueProcessor(DialoguePolicy(agent)),
        frames_to_send=[nlu("opening_hours"), context],
        expected_down_frames=[NLUResultFrame, BotReplyFrame, TTSSpeakFrame],
    )
    assert "Monday" in down[2].text


async def test_the_reply_frame_and_the_event_stream_say_what_a_question_offered(agent):
    down, _ = await run_test(
        DialogueProcessor(DialoguePolicy(agent)),
        frames_to_send=[either("book_appointment", "cancel_appointment")],
        expected_down_frames=[NLUResultFrame, BotReplyFrame, TTSSpeakFrame],
    )
    reply = down[1]
    assert reply.offered == ("book_appointment", "cancel_appointment")
    event = CallEventObserver(lambda _kind, _data: None).event_for(reply)
    assert event == (
        "reply",
        {
            "intent": "book_appointment",
            "ends_call": False,
            "hands_off": False,
            "offered": ["book_appointment", "cancel_appointment"],
        },
    )


async def test_processor_forwards_the_context_to_the_llm(agent):
    context = LLMContextFrame(LLMContext(messages=[{"role": "user", "content": "weather?"}]))
    await run_test(
        DialogueProcessor(DialoguePolicy(agent, llm_available=True)),
        frames_to_send=[nlu(OUT_OF_SCOPE, Band.REPAIR, 0.1), context],
        expected_down_frames=[NLUResultFrame, LLMContextFrame],
    )


async def test_goodbye_ends_the_call_after_speaking(agent):
    await run_test(
        DialogueProcessor(DialoguePolicy(agent)),
        frames_to_send=[nlu("goodbye")],
        expected_down_frames=[NLUResultFrame, BotReplyFrame, TTSSpeakFrame, EndWorkerFrame],
    )


def test_keyed_menu_choice_acts(agent):
    reply = DialoguePolicy(agent).decide(nlu("dtmf_entry", digits="1"))
    assert "Monday to Friday" in reply.text


def test_unknown_key_repairs_with_the_menu(agent):
    policy = DialoguePolicy(agent)
    reply = policy.decide(nlu("dtmf_entry", digits="9"))
    assert "press 1" in reply.text and policy.consecutive_failures == 1


# Issue 15: confirm before acting, honest out-of-scope answers, the keypad in noise


def heard(text, intent=OUT_OF_SCOPE, band=Band.REPAIR, conf=0.7, unsure=False, **kw):
    return NLUResultFrame(
        text=text, intent=intent, confidence=conf, band=band, unsure=unsure, entities=kw
    )


async def test_a_checked_goodbye_ends_the_call_only_on_yes(agent):
    down, _ = await run_test(
        DialogueProcessor(DialoguePolicy(agent)),
        frames_to_send=[
            heard("Bye.", "goodbye", Band.CLARIFY, 0.99),
            heard("Yes.", "affirm", Band.ACT),
        ],
        expected_down_frames=[NLUResultFrame, BotReplyFrame, TTSSpeakFrame] * 2 + [EndWorkerFrame],
    )
    assert spoken(down)[0] == "Did you want to end the call?"
    assert "goodbye" in spoken(down)[1]
    down, _ = await run_test(
        DialogueProcessor(DialoguePolicy(agent)),
        frames_to_send=[
            heard("Bye.", "goodbye", Band.CLARIFY, 0.99),
            heard("No.", "deny", Band.ACT),
        ],
        expected_down_frames=[NLUResultFrame, BotReplyFrame, TTSSpeakFrame] * 2,
    )
    assert agent.fallback in spoken(down)[1]


def test_a_confirmed_booking_still_asks_for_the_day(agent):
    policy = DialoguePolicy(agent)
    assert policy.decide(heard("book", "book_appointment", Band.CLARIFY)).text == (
        "Did you want to book an appointment?"
    )
    assert policy.decide(heard("Yes.", "affirm", Band.ACT)).text == (
        agent.intent("book_appointment").slots[0].prompt
    )


def test_a_stray_yes_is_repaired(agent):
    reply = DialoguePolicy(agent).decide(heard("Um, yeah.", "affirm", Band.REPAIR, 0.99, True))
    assert reply.text in agent.repair and reply.intent is None


async def test_out_of_scope_gets_an_honest_answer_not_a_repair(agent):
    down, _ = await run_test(
        DialogueProcessor(DialoguePolicy(agent)),
        frames_to_send=[heard("Is my car ready?")],
        expected_down_frames=[NLUResultFrame, BotReplyFrame, TTSSpeakFrame],
    )
    assert spoken(down) == [agent.out_of_scope_reply]
    assert "can't help with that" in spoken(down)[0] and "person" in spoken(down)[0]
    # Words the recogniser garbled are not a request: ask again.
    policy = DialoguePolicy(agent)
    assert policy.decide(heard("the of and a the", conf=1.0, unsure=True)).text in agent.repair
    # With an LLM configured, it still gets the turn first.
    assert DialoguePolicy(agent, llm_available=True).decide(heard("Is my car ready?")) is None


def test_default_out_of_scope_reply_offers_what_the_agent_can_do(agent):
    plain = dataclasses.replace(agent, out_of_scope_reply="")
    reply = DialoguePolicy(plain).decide(heard("Is my car ready?"))
    assert reply.text.startswith("I'm sorry, I can't help with that here.")
    assert agent.fallback in reply.text


async def test_repairs_in_noise_offer_the_keypad(agent):
    garbled = [heard("uh the", conf=0.3, unsure=True), heard("and of", conf=0.3, unsure=True)]
    down, _ = await run_test(
        DialogueProcessor(DialoguePolicy(agent)),
        frames_to_send=garbled,
        expected_down_frames=[NLUResultFrame, BotReplyFrame, TTSSpeakFrame] * 2,
    )
    first, second = spoken(down)
    assert first == agent.repair[0]  # one repair: just ask again
    assert second == f"{agent.repair[1]} {agent.keypad_offer}"
    assert "press 1" in second and "0 for a person" in second
    # Voice but no words at all: the keypad at once.
    empty = NLUResultFrame(path=DecisionPath.EMPTY, band=Band.REPAIR, unsure=True)
    assert agent.keypad_offer in DialoguePolicy(agent).decide(empty).text


def test_default_keypad_offer_is_made_from_the_keypad_map(agent):
    plain = dataclasses.replace(agent, keypad_offer="")
    line = plain.keypad_line()
    assert "press 1 to know our opening hours" in line and "0 to speak to a person" in line
    assert dataclasses.replace(plain, keypad={}).keypad_line() == ""

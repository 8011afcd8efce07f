"""Hear the caller out (issue 15): openers and preambles do not end a turn as a request.

The policy's text rules; the Smart Turn and semantic stop strategies holding such turns
open; and the joiner that makes a fragment and the caller's continuation one turn.
"""

import asyncio

import pytest
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    LLMContextFrame,
    TranscriptionFrame,
    UserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.tests.utils import SleepFrame, run_test

from integrations.speech.nbest import Hypothesis, Recognition
from integrations.speech.stt import SegmentTranscribedFrame
from processors.answer_hold import AnswerAtOnce, HearAnswerOut, is_bare_yes_no
from processors.bot_question import asks_yes_no
from processors.fragment_join import FragmentJoiner
from processors.frames import TurnJoinedFrame
from processors.segment_turn_stop import SegmentTranscriptTurnStopStrategy
from processors.semantic_turn import SemanticCompletionStopStrategy
from processors.turn_hold import TurnHoldPolicy
from processors.turn_words import (
    is_opener,
    is_statement,
    reads_as_preamble,
    reads_as_telling,
    tells_of_caller,
)
from processors.user_turn import user_text
from tests.fakes.smart_turn import ScriptedSmartTurn
from tests.support.turn_strategies import start_strategy
from tests.unit.test_segment_turn_stop import (
    RATE,
    keep_quiet,
    pause_without_transcript,
    speak,
    speak_and_pause,
)
from tests.unit.test_semantic_turn import transcript

UNDERSTOOD = {
    "What are your opening hours?",
    "I'd like to set up a cleaning.",
    "I booked a checkup for next week.",  # the classifier acts on it: the form must not
    "No.",  # a no to a yes/no question
    "My car broke down.",  # read as an emergency: the form must hold it
    "I need to move my appointment.",
}


def understood(text: str) -> bool:
    return any(text.strip().endswith(request) for request in UNDERSTOOD)


def policy(*, question: bool = False, **kwargs) -> TurnHoldPolicy:
    return TurnHoldPolicy(understood=understood, question_pending=lambda: question, **kwargs)


# The text rules


@pytest.mark.parametrize(
    "text",
    [
        "Um.",
        "Uh",
        "Yeah.",
        "Hi,",
        "Hello?",
        "So",
        "Okay.",
        "Well,",
        "Hi, um.",
        "Um, yeah.",
        "I,",
        "I'm.",
    ],
)
def test_a_lone_filler_greeting_or_backchannel_is_an_opener(text):
    assert is_opener(text)
    assert policy().text_pause(text) > 0


@pytest.mark.parametrize(
    "text",
    [
        "Um, yeah, I'd like to set up a cleaning.",
        "Hi, where are you?",
        "No thanks, bye.",
        "I see.",
    ],
)
def test_openers_followed_by_a_request_are_not(text):
    assert not is_opener(text)


@pytest.mark.parametrize(
    "text",
    [
        "Hi, I booked a checkup for next week.",
        "I'm calling about my appointment.",
        "Hi, this is Maria.",
        "I have a quick question.",
        "My appointment is on Tuesday, and",
    ],
)
def test_a_sentence_that_sets_the_scene_reads_as_a_preamble(text):
    assert reads_as_preamble(text)


@pytest.mark.parametrize(
    "text",
    [
        "I booked a checkup for next week. But I can't make it, can I move it?",
        "I'm calling about my appointment. I need to cancel it.",
        "I'm calling to cancel my appointment.",
        "What are your opening hours?",
    ],
)
def test_a_request_does_not(text):
    assert not reads_as_preamble(text)


@pytest.mark.parametrize(
    "text",
    [
        "My car broke down.",
        "I fell off my bike this morning.",
        "Um, my daughter is three.",
        "I have coverage through my employer.",
        "I need a crown on my back tooth.",
        "Cool, I think that covers it.",
        "Hi, is my car ready yet? I dropped it off this morning.",
    ],
)
def test_a_sentence_that_tells_waits_even_when_the_agent_could_act_on_it(text):
    assert reads_as_telling(text)
    assert policy().text_pause(text) == policy().statement_pause_s
    assert policy().pause(text) >= policy().statement_pause_s  # more if not understood


@pytest.mark.parametrize(
    "text",
    [
        "I'd like to set up a cleaning.",
        "I need to move my appointment.",
        "Something came up and I need a different day.",
        "I was hoping to grab a slot this month.",
        "Cancel my appointment for Friday.",
        "Confirm my appointment time.",
        "And look up my appointment.",  # "Can you look up ...?" as the recogniser heard it
        "Please just connect me with someone.",
        "Toothache, really bad.",  # terse
        "Where's the building exactly",  # a question without its question mark
        "I'm new to the area can I join your practice",  # its mark not written either
        "My car broke down. Can I come in on Friday instead?",
    ],
)
def test_a_request_in_any_form_does_not_wait_for_being_a_statement(text):
    assert not reads_as_telling(text)
    assert policy().text_pause(text) == 0


def test_a_request_in_statement_form_the_agent_understands_ends_at_once():
    assert policy().pause("I need to move my appointment.") == 0
    assert policy().pause("I'd like to set up a cleaning.") == 0


def test_an_answer_to_the_bots_question_is_not_held_for_telling():
    assert policy(question=True).text_pause("That works for me.") == 0
    assert policy(question=True).text_pause("I won't be able to make it.") == 0
    assert policy(question=False).text_pause("I won't be able to make it.") > 0


def test_misheard_words_surely_a_question_answered_are_not_held_for_telling():
    # "Can I spread the cost?" heard "Canon, I spread the cost." at 0.63, read as the payment
    # plans: the telling form is the recogniser's, not the caller's (bench latency)
    heard = "Canon, I spread the cost."
    assert reads_as_telling(heard)
    misheard = TurnHoldPolicy(
        understood=lambda text: text == heard or understood(text),  # as the call's check
        misheard_answer=lambda text: text == heard,
    )
    assert misheard.text_pause(heard) == 0
    assert misheard.pause(heard, confidence=0.63) == 0
    # a sentence heard clearly that sets the scene keeps its hold (the check says no)
    told = "I have coverage through my employer."
    assert misheard.text_pause(told) == misheard.statement_pause_s
    # misheard, read surely as insurance, but the caller's own telling: the question follows
    own = "I don't have any dental coverage right now."
    assert tells_of_caller(own)
    sure = TurnHoldPolicy(understood=lambda _: True, misheard_answer=lambda _: True)
    assert sure.text_pause(own) == sure.statement_pause_s
    assert sure.text_pause("Um, hi, my teeth are pretty yellow from coffee.") > 0
    assert sure.text_pause(heard) == 0


def test_a_statement_the_agent_does_not_understand_keeps_its_longer_wait():
    assert policy().pause("My tooth is sort of weird.") == policy().unsure_pause_s
    assert policy().pause("My tooth is sort of weird.", confidence=0.3) == (
        policy().garbled_pause_s
    )


def test_a_sentence_ending_on_a_title_is_not_finished():
    # "... seen by Dr. | Patel on the fourteenth?": the voice pauses after "Dr."
    assert reads_as_preamble("Is there any chance of getting seen by Dr.")
    assert reads_as_preamble("Can I get in with the")
    assert not reads_as_preamble("Can I come in?")
    assert not is_statement("Where's the building exactly")


@pytest.mark.parametrize("text", ["That's", "Um, it's", "I'm.", "Yeah, there's"])
def test_a_sentence_ending_on_a_pronoun_and_its_verb_is_not_finished(text):
    # "Uh, | no thank you" heard as "That's" | "No thank you": not a yes to act on
    assert reads_as_preamble(text)
    assert policy(question=True).text_pause(text) >= policy().context_pause_s
    assert policy(question=True).is_fragment(text)


@pytest.mark.parametrize("text", ["That's it.", "I think we're good.", "That's all."])
def test_a_sentence_ending_after_the_pronoun_and_verb_is(text):
    assert not reads_as_preamble(text)


def test_a_bare_yes_after_a_yes_no_question_waits_the_answer_pause():
    # "Yes, | I'll be there.": the callee may be pausing at the comma
    assert policy(question=True).text_pause("Um, yeah.") == HearAnswerOut().pause_s
    assert policy(question=True).text_pause("Sure.") == HearAnswerOut().pause_s
    assert policy(question=False).text_pause("Um, yeah.") == policy().opener_pause_s
    assert policy(question=True).text_pause("Hi, um.") == policy().opener_pause_s  # no answer
    assert HearAnswerOut().pause_s < policy().opener_pause_s


@pytest.mark.parametrize("text", ["Yes, that works.", "Yep, see you Friday.", "No, I can't."])
def test_an_answer_with_more_words_ends_at_once(text):
    assert policy(question=True).text_pause(text) == 0


def test_the_answer_at_once_strategy_ends_on_a_bare_yes():
    assert policy(question=True, answer=AnswerAtOnce()).text_pause("Um, yeah.") == 0
    assert policy(question=True, answer=HearAnswerOut(0.5)).text_pause("No.") == 0.5


@pytest.mark.parametrize(
    ("text", "bare"),
    [
        ("Yes.", True),
        ("Uh, no.", True),
        ("Nope, sorry.", True),
        ("Oh yes.", True),
        ("Uh-huh, yes.", True),
        ("Mm-hmm.", True),
        ("Not really.", True),
        ("Nah, not at all.", True),
        ("Of course.", True),
        ("Definitely.", True),
        ("Not,", True),  # "nah," as the recogniser hears it
        ("Certainly not.", True),
        ("Hmm.", False),
        ("Not yet.", False),
        ("Of course I can come.", False),
        ("Yes, I'll be there.", False),
        ("Bye.", False),
        ("Okay.", False),
        ("No problem.", False),
    ],
)
def test_a_bare_yes_or_no(text, bare):
    assert is_bare_yes_no(text) is bare


def test_a_backchannel_over_the_bot_is_whole():
    assert policy().text_pause("Mhm.", over_bot=True) == 0
    assert policy().text_pause("Mhm.") > 0


def test_a_statement_the_agent_does_not_understand_waits():
    assert policy().pause("My tooth is sort of weird.") == policy().unsure_pause_s
    assert policy().pause("What are your opening hours?") == 0  # understood


@pytest.mark.parametrize(
    "text",
    [
        "Is this the vet?",  # "... | My dog needs his shots."
        "Is there any way someone can see me today?",  # "... | The pain is unbearable."
        "Hi, is my car ready yet?",  # after openers
        "Yes, hello. Is there any chance of getting seen by Dr. Patel?",
        "do you do teeth whitening",  # no question mark written
    ],
)
def test_a_yes_no_question_the_agent_does_not_understand_waits_for_the_reason(text):
    assert policy().pause(text) == policy().unsure_question_pause_s
    assert policy().pause(text, confidence=0.9) == policy().unsure_question_pause_s
    assert policy().text_pause(text) == 0  # not for its form: understood, it would be fast


@pytest.mark.parametrize(
    "text",
    [
        "What are your prizes?",  # names what it asks for (misheard "prices")
        "I need a crown on my back tooth. Roughly what does that cost?",
        "I need a crown on my back tooth. Is that expensive?",  # the question ends it
    ],
)
def test_a_question_that_names_its_ask_or_ends_the_request_is_not_held(text):
    assert policy().pause(text) == 0


def test_a_question_the_agent_understands_is_not_held():
    assert policy().pause("Can I reschedule? I need to move my appointment.") == 0
    assert policy().pause("What are your opening hours?") == 0


def test_a_misheard_question_is_not_held():
    assert policy().pause("Is this event for my dog's shots?", confidence=0.5) == 0


@pytest.mark.parametrize("text", ["Who? Who? Ah.", "And you had?", "Do look.", "Is this event?"])
def test_a_short_question_the_agent_cannot_place_waits_like_misheard_words(text):
    # misheard openers ("So, uh," -> "Who? Who?", "Um, yeah," -> "And you had?") read as
    # short questions: a repair can wait the misheard pause for the caller to go on
    assert policy().pause(text, confidence=0.6) == policy().misheard_pause_s
    assert policy().pause(text, confidence=0.3) == policy().garbled_pause_s


def test_all_right_opens_a_turn_like_alright():
    # "All right, | so I wanted to ask ...": the recogniser writes "alright" either way
    assert is_opener("All right.") and is_opener("Alright.")
    assert policy().pause("All right.") == policy().opener_pause_s
    assert not policy(question=True).is_fragment("All right.")  # it answers the question


def test_a_sentence_ending_on_of_is_not_finished():
    assert policy().pause("Yeah, hi, what part of?") == policy().context_pause_s
    assert policy().pause("Who am I speaking to?") == 0


@pytest.mark.parametrize(
    "text",
    [
        "Is this Dr. Patel's office?",
        "Hi, is this the dental office?",
        "Am I speaking to Springfield Dental?",
        "Have I reached the right number?",
    ],
)
def test_a_question_whether_the_caller_reached_the_right_place_is_held(text):
    always = TurnHoldPolicy(understood=lambda _: True)  # even when the agent would answer
    assert always.text_pause(text) == always.unsure_question_pause_s
    assert always.pause(text) == always.unsure_question_pause_s
    assert always.is_fragment(text)


def test_a_quick_question_followed_by_the_question_is_no_preamble():
    assert reads_as_preamble("Quick question.")
    assert reads_as_preamble("I have a question about my bill.")
    assert not reads_as_preamble("Quick question, do you take walk-ins?")
    assert not reads_as_preamble("I have a quick question, what are your hours?")


def test_a_question_the_agent_does_not_understand_is_a_fragment():
    assert policy().is_fragment("Is this the vet?")
    assert not policy().is_fragment("What are your opening hours?")


def test_a_misheard_statement_waits_less_than_one_heard_clearly():
    misheard = "Junior Brigitte's widening."  # "Do you do teeth whitening?" on a bad line
    assert policy().pause(misheard, confidence=0.5) == policy().misheard_pause_s
    assert policy().pause(misheard, confidence=0.9) == policy().unsure_pause_s
    assert policy().pause(misheard) == policy().unsure_pause_s  # no confidence given
    assert policy().misheard_pause_s < policy().unsure_pause_s
    assert policy().pause("Do you do these widening?", confidence=0.5) == 0  # a question


def test_a_misheard_sentence_that_tells_waits_as_one_heard_clearly():
    # "My cat hasn't eaten in two days. | Do you have a vet on staff?" heard at 0.749
    told = "My cat hadn't eaten in two days."
    assert policy().pause(told, confidence=0.7) == policy().statement_pause_s
    assert policy().statement_pause_s > policy().misheard_pause_s


def test_garbled_words_wait_the_long_pause():
    # babble: the recogniser barely heard anything, and the caller may be going on under it
    garbled = "Cross of it."  # too short to read as a sentence that tells
    assert policy().pause(garbled, confidence=0.3) == policy().garbled_pause_s
    assert policy().garbled_pause_s > policy().misheard_pause_s
    assert policy(garbled_below=0.2).pause(garbled, confidence=0.3) == (policy().misheard_pause_s)


def test_misheard_openers_and_preambles_are_still_held():
    assert policy().pause("Um, yeah.", confidence=0.4) == policy().opener_pause_s
    assert policy().pause("I'm calling about my appointment.", confidence=0.4) > 0


@pytest.mark.parametrize(
    ("text", "answer_pause"),
    [("No.", True), ("Nope,", True), ("Um, no.", True), ("Bye.", False), ("And bye.", False)],
)
def test_a_bare_no_or_bye_is_an_opener_unless_it_answers_a_question(text, answer_pause):
    assert policy(question=False).text_pause(text) == policy().opener_pause_s
    expected = HearAnswerOut().pause_s if answer_pause else 0  # a goodbye ends at once
    assert policy(question=True).text_pause(text) == expected
    assert not is_opener("No, that's not what I meant.")
    assert not is_opener("Okay, thanks, bye.")


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("Shall I book that for you?", True),
        ("Great. Did you want to cancel your appointment?", True),
        ("Hi, thanks for calling. How can I help you today?", False),
        ("We're open nine to five.", False),
    ],
)
def test_a_yes_no_question_from_the_bot(line, expected):
    assert asks_yes_no(line) is expected


# The Smart Turn strategy (its verdict: finished) holds the turn for the pause


async def make_segment_strategy(verdicts, **policy_kwargs):
    hold = policy(opener_pause_s=0.6, context_pause_s=0.4, unsure_pause_s=0.3, **policy_kwargs)
    strategy = SegmentTranscriptTurnStopStrategy(
        turn_analyzer=ScriptedSmartTurn(verdicts), second_look_s=0, hold=hold
    )
    stopped = await start_strategy(strategy, audio_in_sample_rate=RATE)
    return strategy, stopped


async def test_a_lone_filler_keeps_the_turn_open_then_ends_it_after_the_longer_pause():
    strategy, stopped = await make_segment_strategy([1])
    await speak_and_pause(strategy, "Um, yeah.")
    await keep_quiet(strategy, 0.3)
    assert stopped == []  # Smart Turn called it finished; the words say otherwise
    await keep_quiet(strategy, 0.5)
    assert stopped == [True]  # the caller said nothing more: the turn ends after all
    assert strategy.turns_held == 1


async def test_the_caller_going_on_after_a_filler_makes_one_turn():
    strategy, stopped = await make_segment_strategy([1, 1])
    await speak_and_pause(strategy, "Um, yeah.")
    await keep_quiet(strategy, 0.2)
    await speak_and_pause(strategy, "I'd like to set up a cleaning.")
    await keep_quiet(strategy, 0.2)
    assert stopped == [True]  # one turn, ended once the request was complete


async def test_a_preamble_waits_for_the_rest_of_the_request():
    strategy, stopped = await make_segment_strategy([1])
    await speak_and_pause(strategy, "Hi, I booked a checkup for next week.")
    await keep_quiet(strategy, 0.2)
    assert stopped == []
    await keep_quiet(strategy, 0.4)
    assert stopped == [True]


async def test_a_sentence_that_tells_waits_for_the_rest_even_when_understood():
    strategy, stopped = await make_segment_strategy([1], statement_pause_s=0.4)
    await speak_and_pause(strategy, "My car broke down.")
    await keep_quiet(strategy, 0.2)
    assert stopped == []  # Smart Turn and the classifier would end it; the caller may go on
    await keep_quiet(strategy, 0.4)
    assert stopped == [True]


async def test_the_caller_going_on_after_a_sentence_that_tells_makes_one_turn():
    strategy, stopped = await make_segment_strategy([1, 1], statement_pause_s=0.4)
    await speak_and_pause(strategy, "My car broke down.")
    await keep_quiet(strategy, 0.2)
    await speak_and_pause(strategy, "I need to move my appointment.")
    await keep_quiet(strategy, 0.1)
    assert stopped == [True]  # one turn, ended once the request was said


async def test_a_statement_the_agent_does_not_understand_waits_for_the_pause():
    strategy, stopped = await make_segment_strategy([1])
    await speak_and_pause(strategy, "My tooth is sort of weird.")
    await keep_quiet(strategy, 0.1)
    assert stopped == []  # heard clearly, not understood: the caller may go on
    await keep_quiet(strategy, 0.4)
    assert stopped == [True]


async def test_a_statement_the_recogniser_misheard_waits_the_shorter_pause():
    strategy, stopped = await make_segment_strategy([1], misheard_pause_s=0.1)
    await pause_without_transcript(strategy)
    heard = Recognition((Hypothesis("Junior Brigitte's widening.", token_logprob=-0.5),))
    await strategy.process_frame(
        TranscriptionFrame(heard.text, "caller", "t", finalized=True, result=heard)
    )
    await strategy.process_frame(SegmentTranscribedFrame(has_text=True))
    await keep_quiet(strategy, 0.2)
    assert stopped == [True]  # before the 0.3 s a clearly heard statement waits


async def test_a_complete_request_ends_at_once():
    strategy, stopped = await make_segment_strategy([1])
    await speak_and_pause(strategy, "What are your opening hours?")
    await asyncio.sleep(0.05)
    assert stopped == [True]
    assert strategy.turns_held == 0


async def test_speech_during_the_hold_keeps_the_turn_open():
    strategy, stopped = await make_segment_strategy([1, 0])
    await speak_and_pause(strategy, "Hi, um.")
    await keep_quiet(strategy, 0.2)
    await speak(strategy)
    await keep_quiet(strategy, 0.6)  # the caller speaks on past the hold
    assert stopped == []


# The semantic strategy never ends a turn on an opener or a preamble


async def make_semantic_strategy(*, question: bool = False, **policy_kwargs):
    strategy = SemanticCompletionStopStrategy(
        lambda text: True, grace_secs=0.05, hold=policy(question=question, **policy_kwargs)
    )
    stopped = await start_strategy(strategy)
    return strategy, stopped


@pytest.mark.parametrize(
    "text", ["Um, yeah.", "Hi, um.", "I'm calling about my appointment.", "My car broke down."]
)
async def test_the_semantic_end_never_fires_on_a_fragment(text):
    strategy, stopped = await make_semantic_strategy()
    await strategy.process_frame(VADUserStoppedSpeakingFrame())
    await strategy.process_frame(transcript(text))
    await asyncio.sleep(0.2)
    assert stopped == []


async def test_the_semantic_end_fires_on_a_yes_to_a_yes_no_question_answered_at_once():
    strategy, stopped = await make_semantic_strategy(question=True, answer=AnswerAtOnce())
    await strategy.process_frame(VADUserStoppedSpeakingFrame())
    await strategy.process_frame(transcript("Yeah."))
    await asyncio.sleep(0.2)
    assert stopped == [True]


async def test_the_semantic_end_leaves_a_bare_yes_to_the_answer_hold():
    strategy, stopped = await make_semantic_strategy(question=True)
    await strategy.process_frame(VADUserStoppedSpeakingFrame())
    await strategy.process_frame(transcript("Yeah."))
    await asyncio.sleep(0.2)
    assert stopped == []  # the Smart Turn strategy ends it once the answer pause has lasted


async def test_the_semantic_end_fires_on_a_complete_short_answer():
    strategy, stopped = await make_semantic_strategy(question=True)
    await strategy.process_frame(VADUserStoppedSpeakingFrame())
    await strategy.process_frame(transcript("Yeah, that works."))
    await asyncio.sleep(0.2)
    assert stopped == [True]


async def test_the_semantic_end_fires_on_a_backchannel_over_the_bot():
    strategy = SemanticCompletionStopStrategy(lambda text: True, grace_secs=0.05, hold=policy())
    stopped = await start_strategy(strategy)
    await strategy.process_frame(BotStartedSpeakingFrame())
    await strategy.handle_user_turn_started()  # the caller's "mhm" cut the bot
    await strategy.process_frame(VADUserStoppedSpeakingFrame())
    await strategy.process_frame(transcript("Mhm."))
    await asyncio.sleep(0.2)
    assert stopped == [True]


# The joiner: a continuation after the bot began to answer a fragment is the same turn


def context(*messages: tuple[str, str]) -> LLMContextFrame:
    ctx = LLMContext(messages=[{"role": "system", "content": "persona"}])
    for role, content in messages:
        ctx.add_message({"role": role, "content": content})  # type: ignore[arg-type]
    return LLMContextFrame(context=ctx)


def last_turn(frames) -> str:
    turn = frames[-1]
    assert isinstance(turn, LLMContextFrame)
    return user_text(turn)


def joiner() -> FragmentJoiner:
    return FragmentJoiner(is_fragment=policy().is_fragment, window_s=2.0)


async def test_the_caller_going_on_after_a_fragment_is_one_turn_and_the_answer_is_dropped():
    fragment = context(("user", "Um, yeah."))
    going_on = context(
        ("user", "Um, yeah."),
        ("assistant", "Great, I'll"),
        ("user", "I'd like to set up a cleaning."),
    )
    down, _ = await run_test(
        joiner(),
        frames_to_send=[
            fragment,
            SleepFrame(sleep=0.1),  # system frames overtake data frames: keep the order
            BotStartedSpeakingFrame(),
            UserStartedSpeakingFrame(),  # cuts the answer to the fragment
            BotStoppedSpeakingFrame(),
            going_on,
        ],
        expected_down_frames=[
            LLMContextFrame,
            BotStartedSpeakingFrame,
            UserStartedSpeakingFrame,
            BotStoppedSpeakingFrame,
            TurnJoinedFrame,  # the dialogue withdraws its decision on the fragment
            LLMContextFrame,
        ],
    )
    turn = down[-1]
    assert isinstance(turn, LLMContextFrame)
    assert user_text(turn) == "Um, yeah. I'd like to set up a cleaning."
    roles = [m["role"] for m in turn.context.get_messages()]  # type: ignore[index]
    assert roles == ["system", "user"]  # one request, no answer to the fragment


async def test_a_continuation_before_the_answer_starts_is_joined_too():
    down, _ = await run_test(
        joiner(),
        frames_to_send=[
            context(("user", "I'm calling about my appointment.")),
            SleepFrame(sleep=0.1),
            UserStartedSpeakingFrame(),
            context(
                ("user", "I'm calling about my appointment."),
                ("user", "I need to cancel it."),
            ),
        ],
        expected_down_frames=[
            LLMContextFrame,
            UserStartedSpeakingFrame,
            TurnJoinedFrame,
            LLMContextFrame,
        ],
    )
    assert last_turn(down) == "I'm calling about my appointment. I need to cancel it."


async def test_a_new_question_cutting_the_answer_to_a_complete_request_stays_separate():
    down, _ = await run_test(
        joiner(),
        frames_to_send=[
            context(("user", "What are your opening hours?")),
            SleepFrame(sleep=0.1),
            BotStartedSpeakingFrame(),
            UserStartedSpeakingFrame(),
            context(
                ("user", "What are your opening hours?"),
                ("assistant", "We're open"),
                ("user", "Sorry, where exactly are you located?"),
            ),
        ],
        expected_down_frames=[
            LLMContextFrame,
            BotStartedSpeakingFrame,
            UserStartedSpeakingFrame,
            LLMContextFrame,
        ],
    )
    assert last_turn(down) == "Sorry, where exactly are you located?"


async def test_a_turn_after_the_answer_to_a_fragment_was_heard_in_full_stays_separate():
    down, _ = await run_test(
        joiner(),
        frames_to_send=[
            context(("user", "Hi, um.")),
            SleepFrame(sleep=0.1),
            BotStartedSpeakingFrame(),
            BotStoppedSpeakingFrame(),  # the caller heard the whole answer
            UserStartedSpeakingFrame(),
            context(
                ("user", "Hi, um."),
                ("assistant", "Hi! How can I help?"),
                ("user", "What are your opening hours?"),
            ),
        ],
        expected_down_frames=[
            LLMContextFrame,
            BotStartedSpeakingFrame,
            BotStoppedSpeakingFrame,
            UserStartedSpeakingFrame,
            LLMContextFrame,
        ],
    )
    assert last_turn(down) == "What are your opening hours?"


async def test_a_late_continuation_stays_separate():
    down, _ = await run_test(
        FragmentJoiner(is_fragment=policy().is_fragment, window_s=0.1),
        frames_to_send=[
            context(("user", "Um.")),
            SleepFrame(sleep=0.3),
            UserStartedSpeakingFrame(),
            context(("user", "Um."), ("user", "What are your opening hours?")),
        ],
        expected_down_frames=[LLMContextFrame, UserStartedSpeakingFrame, LLMContextFrame],
    )
    assert last_turn(down) == "What are your opening hours?"


# A bare yes or no to the bot's yes/no question: the callee may be pausing at the comma


async def test_a_bare_no_to_a_question_waits_the_answer_pause_then_ends():
    strategy, stopped = await make_segment_strategy([1], question=True, answer=HearAnswerOut(0.5))
    await speak_and_pause(strategy, "No.")
    await keep_quiet(strategy, 0.2)
    assert stopped == []  # "No," | "I need to cancel it."
    await keep_quiet(strategy, 0.4)
    assert stopped == [True]  # nothing more: the bare no is the answer


async def test_a_callee_going_on_after_yes_makes_one_turn():
    strategy, stopped = await make_segment_strategy(
        [1, 1], question=True, answer=HearAnswerOut(0.5)
    )
    await speak_and_pause(strategy, "Yes.")
    await keep_quiet(strategy, 0.3)  # the pause at the comma
    await speak_and_pause(strategy, "I'd like to set up a cleaning.")
    await keep_quiet(strategy, 0.1)
    assert stopped == [True]  # one turn, ended once the whole answer was said


async def test_a_bare_no_answered_at_once_cuts_the_callee_off():
    # the behaviour before: the turn ended on "No." and "I need to cancel it" came after
    strategy, stopped = await make_segment_strategy([1], question=True, answer=AnswerAtOnce())
    await speak_and_pause(strategy, "No.")
    await asyncio.sleep(0.05)
    assert stopped == [True]


async def test_a_callee_going_on_after_the_bot_began_to_answer_a_bare_no_is_one_turn():
    down, _ = await run_test(
        FragmentJoiner(is_fragment=policy(question=True).is_fragment, window_s=2.0),
        frames_to_send=[
            context(("assistant", "Will you be able to make it?"), ("user", "No.")),
            SleepFrame(sleep=0.1),
            BotStartedSpeakingFrame(),
            UserStartedSpeakingFrame(),  # cuts "No problem. Would you like to move it...?"
            BotStoppedSpeakingFrame(),
            context(
                ("assistant", "Will you be able to make it?"),
                ("user", "No."),
                ("assistant", "No problem."),
                ("user", "I need to cancel it."),
            ),
        ],
        expected_down_frames=[
            LLMContextFrame,
            BotStartedSpeakingFrame,
            UserStartedSpeakingFrame,
            BotStoppedSpeakingFrame,
            TurnJoinedFrame,
            LLMContextFrame,
        ],
    )
    assert last_turn(down) == "No. I need to cancel it."

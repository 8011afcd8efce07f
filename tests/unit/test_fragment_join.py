"""The fragment joiner: a caller going on at once after a whole-seeming part of a request.

(Its fragment cases, where the first part was an opener or a preamble, are in
``test_turn_hold.py`` beside the hold policy that reads fragments.)
"""

import pytest
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    LLMContextFrame,
    UserStartedSpeakingFrame,
)
from pipecat.tests.utils import SleepFrame, run_test

from processors.barge_in import ReplyResumedFrame
from processors.continuation import JoinWhenGoingOnAtOnce
from processors.fragment_join import FragmentJoiner
from processors.frames import TurnJoinedFrame
from tests.unit.test_turn_hold import context, last_turn, policy

FIRST = "I'd like to set up a cleaning."  # a whole request the agent acts on
ANSWER = ("assistant", "Sure, what")  # the first words of its answer, cut by the caller


DECIDED_ALONE = [
    LLMContextFrame,
    BotStartedSpeakingFrame,
    UserStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    LLMContextFrame,
]
"""What goes down when the caller's going on is decided on its own: no TurnJoinedFrame."""


def joiner(join: JoinWhenGoingOnAtOnce | None = None) -> FragmentJoiner:
    return FragmentJoiner(is_fragment=policy().is_fragment, window_s=2.0, join=join)


def going_on(then: str) -> list:
    """The answer to FIRST starts, the caller goes on at once with ``then``."""
    return [
        context(("user", FIRST)),
        SleepFrame(sleep=0.1),  # system frames overtake data frames: keep the order
        BotStartedSpeakingFrame(),
        UserStartedSpeakingFrame(),  # cuts the answer
        BotStoppedSpeakingFrame(),
        context(("user", FIRST), ANSWER, ("user", then)),
    ]


async def test_words_that_do_not_stand_alone_said_at_once_go_on_with_the_turn_before():
    # "Yes, hi, my family is looking for a new dentist." | "Do you have room for us?"
    down, _ = await run_test(
        joiner(),
        frames_to_send=going_on("For my two kids."),
        expected_down_frames=[
            LLMContextFrame,
            BotStartedSpeakingFrame,
            UserStartedSpeakingFrame,
            BotStoppedSpeakingFrame,
            TurnJoinedFrame,  # the dialogue withdraws its decision on the first part
            LLMContextFrame,
        ],
    )
    assert last_turn(down) == f"{FIRST} For my two kids."
    turn = down[-1]
    assert isinstance(turn, LLMContextFrame)
    roles = [m["role"] for m in turn.context.get_messages()]  # type: ignore[index]
    assert roles == ["system", "user"]  # one request, no half-said answer


@pytest.mark.parametrize(
    "then",
    [
        "I need to move my appointment.",  # a request that stands alone
        "No wait, um.",  # a correction
    ],
)
async def test_a_new_request_said_at_once_is_decided_on_its_own(then: str):
    down, _ = await run_test(
        joiner(), frames_to_send=going_on(then), expected_down_frames=DECIDED_ALONE
    )
    assert last_turn(down) == then


async def test_words_after_part_of_the_answer_was_heard_are_an_answer_to_it():
    slow = JoinWhenGoingOnAtOnce(quick_s=0.05, heard_s=0.05)  # "at once" shrunk for the test
    down, _ = await run_test(
        joiner(slow),
        frames_to_send=[
            context(("user", FIRST)),
            SleepFrame(sleep=0.1),
            BotStartedSpeakingFrame(),
            SleepFrame(sleep=0.2),  # the caller heard the start of the answer
            UserStartedSpeakingFrame(),
            BotStoppedSpeakingFrame(),
            context(("user", FIRST), ANSWER, ("user", "For my two kids.")),
        ],
        expected_down_frames=DECIDED_ALONE,
    )
    assert last_turn(down) == "For my two kids."


async def test_words_after_the_whole_answer_are_a_new_turn():
    down, _ = await run_test(
        joiner(),
        frames_to_send=[
            context(("user", FIRST)),
            SleepFrame(sleep=0.1),
            BotStartedSpeakingFrame(),
            BotStoppedSpeakingFrame(),  # the caller heard the whole answer
            UserStartedSpeakingFrame(),
            context(
                ("user", FIRST), ("assistant", "Sure, what day?"), ("user", "For my two kids.")
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
    assert last_turn(down) == "For my two kids."


# A turn the caller's going on dropped upstream before it was decided


async def test_a_turn_never_decided_is_joined_to_the_next_without_withdrawing_anything():
    # "Yes, hi, my family is looking for a new dentist." was still being transcribed whole
    # when the caller went on: the interruption dropped its context before the NLU
    first = "Yes, hi, my family is looking for a new dentist."
    down, _ = await run_test(
        joiner(),
        frames_to_send=[
            context(("user", "What are your opening hours?")),
            SleepFrame(sleep=0.1),
            BotStartedSpeakingFrame(),
            BotStoppedSpeakingFrame(),  # answered in full
            UserStartedSpeakingFrame(),
            context(
                ("user", "What are your opening hours?"),
                ("assistant", "We're open eight to five."),
                ("user", first),
                ("user", "Do you have room for us?"),
            ),
        ],
        expected_down_frames=[  # no TurnJoinedFrame: the hours answer stands
            LLMContextFrame,
            BotStartedSpeakingFrame,
            BotStoppedSpeakingFrame,
            UserStartedSpeakingFrame,
            LLMContextFrame,
        ],
    )
    assert last_turn(down) == f"{first} Do you have room for us?"


async def test_the_first_turn_of_a_call_never_decided_is_joined_too():
    down, _ = await run_test(
        joiner(),
        frames_to_send=[
            UserStartedSpeakingFrame(),
            context(("user", "Hi, my family is looking for a dentist."), ("user", "Any room?")),
        ],
        expected_down_frames=[UserStartedSpeakingFrame, LLMContextFrame],
    )
    assert last_turn(down) == "Hi, my family is looking for a dentist. Any room?"


async def test_a_turn_consumed_as_a_backchannel_is_not_joined():
    down, _ = await run_test(
        joiner(),
        frames_to_send=[
            context(("user", FIRST)),
            SleepFrame(sleep=0.1),
            ReplyResumedFrame(),  # the caller's "mhm" over the answer was dropped upstream
            SleepFrame(sleep=0.1),
            context(("user", FIRST), ("user", "Mhm."), ("user", "For my two kids.")),
        ],
        expected_down_frames=[LLMContextFrame, ReplyResumedFrame, LLMContextFrame],
    )
    assert last_turn(down) == "For my two kids."


async def test_a_correction_after_a_turn_never_decided_is_decided_alone():
    down, _ = await run_test(
        joiner(),
        frames_to_send=[
            context(("user", FIRST)),
            SleepFrame(sleep=0.1),
            BotStartedSpeakingFrame(),
            BotStoppedSpeakingFrame(),
            context(
                ("user", FIRST),
                ("assistant", "Sure, what day?"),
                ("user", "Tuesday."),
                ("user", "Actually, what are your opening hours?"),
            ),
        ],
        expected_down_frames=[
            LLMContextFrame,
            BotStartedSpeakingFrame,
            BotStoppedSpeakingFrame,
            LLMContextFrame,
        ],
    )
    assert last_turn(down) == "Actually, what are your opening hours?"


async def test_a_turn_joined_after_this_joiner_counts_as_decided():
    # the action withdrawal (after the joiner) joined "Cancel it." to the turn before; the
    # caller spoke again before the answer started: nothing is undecided
    booked = "I booked a checkup for next week."
    down, _ = await run_test(
        joiner(),
        frames_to_send=[
            context(("user", booked)),
            SleepFrame(sleep=0.1),
            context(("user", booked), ("assistant", "Okay."), ("user", "Cancel it.")),
            SleepFrame(sleep=0.1),
            context(
                ("user", f"{booked} Cancel it."),
                ("user", "What are your opening hours?"),
            ),
        ],
        expected_down_frames=[LLMContextFrame, LLMContextFrame, LLMContextFrame],
    )
    assert last_turn(down) == "What are your opening hours?"

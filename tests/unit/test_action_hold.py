"""A hand-off or a goodbye waits for its line; the caller going on over it withdraws it."""

from collections.abc import Sequence
from typing import Any

import pytest
from pipecat.frames.frames import (
    EndWorkerFrame,
    Frame,
    LLMContextFrame,
    TTSSpeakFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.tests.utils import SleepFrame, run_test

from processors.action_hold import ActionHold, ActionWithdrawal
from processors.barge_in import ReplyResumedFrame
from processors.call_recorder import CallRecorder
from processors.continuation import (
    Continuation,
    JoinRule,
    JoinWhenGoingOnAtOnce,
    NeverJoin,
    opens_with_correction,
)
from processors.dialogue import DialoguePolicy, DialogueProcessor
from processors.escalation import EscalationProcessor
from processors.frames import (
    END_CALL,
    OUT_OF_SCOPE,
    WRITE_BACK,
    ActionHeldFrame,
    ActionReleasedFrame,
    ActionWithdrawnFrame,
    Band,
    BotReplyFrame,
    EscalationFrame,
    NLUResultFrame,
    TurnJoinedFrame,
    WriteBackFrame,
)
from processors.irreversible_actions import Goodbye, HandOff, WriteBack
from processors.transfer import TransferMethod, TransferOutcome, TransferProcessor
from processors.user_turn import user_text
from tests.support.frames import line_cut_by_the_caller, line_heard

GRACE_S = 0.05

BROKE = "My tooth broke."
GOING_ON = "Last year, and the crown feels loose now, can I get it checked?"

READINGS = {
    BROKE: ("emergency", Band.ACT),
    "Bye.": ("goodbye", Band.ACT),
    f"Bye. {BROKE}": ("emergency", Band.ACT),
    "I'd like to talk to a person.": ("talk_to_human", Band.ACT),
    f"{BROKE} {GOING_ON}": ("book_appointment", Band.CLARIFY),
    GOING_ON: ("book_appointment", Band.CLARIFY),
    "Bye. I was hoping to stop by for a cleaning.": ("book_appointment", Band.CLARIFY),
    "No wait, actually, what are your opening hours?": ("opening_hours", Band.ACT),
}


class ScriptedNLU(FrameProcessor):
    """The NLU router's part: each turn's text has its decision (the texts decided kept)."""

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.decided: list[str] = []

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if direction is FrameDirection.DOWNSTREAM and isinstance(frame, LLMContextFrame):
            text = user_text(frame)
            self.decided.append(text)
            intent, band = READINGS.get(text, (OUT_OF_SCOPE, Band.REPAIR))
            await self.push_frame(
                NLUResultFrame(text=text, intent=intent, confidence=0.9, band=band)
            )
        await self.push_frame(frame, direction)


class Recording(TransferMethod):
    name = "recording"

    def __init__(self) -> None:
        self.transfers: list[str] = []

    async def transfer(self, handoff, push):
        self.transfers.append(handoff.trigger)
        return TransferOutcome(True)


def context(*turns: tuple[str, str]) -> LLMContextFrame:
    return LLMContextFrame(
        context=LLMContext(messages=[{"role": r, "content": t} for r, t in turns])  # type: ignore[misc]
    )


def call(agent, join: JoinRule | None = None):
    """The processors from the fragment joiner's place to the transfer, around a scripted NLU."""
    nlu = ScriptedNLU()
    method = Recording()
    hold = ActionHold((HandOff(), Goodbye(grace_s=GRACE_S)))
    withdrawal = ActionWithdrawal(join=join)
    pipeline = Pipeline(
        [
            withdrawal,
            nlu,
            DialogueProcessor(DialoguePolicy(agent)),
            EscalationProcessor(
                agent.escalation,
                handoff_line=agent.transfer.handoff_line,
                transfer_intents=frozenset({"talk_to_human", "emergency"}),
                sentiment=None,
                call_id="t1",
            ),
            hold,
            TransferProcessor(method, agent.transfer, call_id="t1"),
        ]
    )
    return pipeline, nlu, method, hold, withdrawal


def of(kind: type[Frame], frames: Sequence[Frame]) -> list[Any]:
    return [f for f in frames if isinstance(f, kind)]


# The whole path: decided, held, withdrawn, decided again


async def test_a_hand_off_decided_on_a_fragment_is_withdrawn_when_the_caller_goes_on(agent):
    pipeline, nlu, method, hold, _ = call(agent)
    down, _ = await run_test(
        pipeline,
        frames_to_send=[
            context(("user", BROKE)),
            *line_cut_by_the_caller(),
            context(("user", BROKE), ("assistant", "I'm"), ("user", GOING_ON)),
            SleepFrame(0.3),
        ],
    )
    assert method.transfers == []  # no transfer started
    assert not of(EscalationFrame, down)
    assert hold.withdrawn == 1
    assert nlu.decided == [BROKE, f"{BROKE} {GOING_ON}"]  # one decision on the joined words
    assert of(TurnJoinedFrame, down) and of(ActionWithdrawnFrame, down)


async def test_the_hand_off_goes_on_once_its_line_is_heard(agent):
    pipeline, _, method, hold, _ = call(agent)
    down, _ = await run_test(pipeline, frames_to_send=[context(("user", BROKE)), *line_heard()])
    assert method.transfers == ["out_of_scope"]
    assert of(EscalationFrame, down)[0].line_heard
    assert hold.withdrawn == 0


async def test_a_backchannel_over_the_hand_off_line_lets_the_hand_off_go_on(agent):
    pipeline, _, method, hold, _ = call(agent)
    await run_test(
        pipeline,
        frames_to_send=[
            context(("user", "I'd like to talk to a person.")),
            *line_cut_by_the_caller(),
            # the backchannel filter dropped the "mhm" turn and resumes the line
            ReplyResumedFrame(),
            TTSSpeakFrame("a member of our team."),
            SleepFrame(0.3),
        ],
    )
    assert method.transfers == ["explicit_request"]
    assert hold.withdrawn == 0


async def test_a_bare_okay_turn_over_the_hand_off_line_lets_the_hand_off_go_on(agent):
    pipeline, nlu, method, hold, _ = call(agent)
    await run_test(
        pipeline,
        frames_to_send=[
            context(("user", "I'd like to talk to a person.")),
            *line_cut_by_the_caller(),
            context(("user", "I'd like to talk to a person."), ("user", "Okay.")),
            SleepFrame(0.3),
        ],
    )
    assert method.transfers == ["explicit_request"]
    assert hold.withdrawn == 0


async def test_a_goodbye_decided_then_the_caller_going_on_does_not_end_the_call(agent):
    pipeline, nlu, _, hold, _ = call(agent)
    down, _ = await run_test(
        pipeline,
        frames_to_send=[
            context(("user", "Bye.")),
            *line_cut_by_the_caller(),
            context(
                ("user", "Bye."),
                ("assistant", "Thanks"),
                ("user", "I was hoping to stop by for a cleaning."),
            ),
            SleepFrame(0.3),
        ],
    )
    assert not of(EndWorkerFrame, down)  # the call is not ended
    assert hold.withdrawn == 1
    assert nlu.decided == ["Bye.", "Bye. I was hoping to stop by for a cleaning."]
    assert of(BotReplyFrame, down)[-1].intent == "book_appointment"


async def test_a_new_request_over_the_hand_off_line_withdraws_it_and_stands_alone(agent):
    pipeline, nlu, method, hold, withdrawal = call(agent)
    new = "No wait, actually, what are your opening hours?"
    down, _ = await run_test(
        pipeline,
        frames_to_send=[
            context(("user", "I'd like to talk to a person.")),
            *line_cut_by_the_caller(),
            context(("user", "I'd like to talk to a person."), ("assistant", "Let"), ("user", new)),
            SleepFrame(0.3),
        ],
    )
    assert method.transfers == []
    assert withdrawal.joined == 0 and not of(TurnJoinedFrame, down)
    assert nlu.decided[-1] == new  # decided on its own, as any barge-in
    assert of(BotReplyFrame, down)[-1].intent == "opening_hours"  # answered: watching again


async def test_words_over_the_hand_off_line_that_neither_go_on_nor_correct_let_it_go_on(agent):
    # "Please hurry." said over an emergency's hand-off line, not as a continuation of the
    # turn: the caller must still reach a person
    pipeline, nlu, method, hold, withdrawal = call(agent, NeverJoin())
    down, _ = await run_test(
        pipeline,
        frames_to_send=[
            context(("user", BROKE)),
            *line_cut_by_the_caller(),
            context(("user", BROKE), ("assistant", "I'm"), ("user", "Please hurry.")),
            SleepFrame(0.3),
        ],
    )
    assert method.transfers == ["out_of_scope"]
    assert hold.withdrawn == 0 and withdrawal.withdrawn == 0
    assert not of(ActionWithdrawnFrame, down)
    assert nlu.decided == [BROKE, "Please hurry."]


async def test_any_words_over_the_goodbye_line_withdraw_it(agent):
    pipeline, _, _, hold, _ = call(agent, NeverJoin())
    down, _ = await run_test(
        pipeline,
        frames_to_send=[
            context(("user", "Bye.")),
            *line_cut_by_the_caller(),
            context(("user", "Bye."), ("assistant", "Thanks"), ("user", "Please hurry.")),
            SleepFrame(0.3),
        ],
    )
    assert not of(EndWorkerFrame, down)
    assert hold.withdrawn == 1


async def test_after_a_withdrawn_hand_off_a_new_request_for_a_person_is_handed_off(agent):
    pipeline, _, method, _, _ = call(agent)
    person = "I'd like to talk to a person."
    await run_test(
        pipeline,
        frames_to_send=[
            context(("user", BROKE)),
            *line_cut_by_the_caller(),
            context(("user", BROKE), ("assistant", "I'm"), ("user", GOING_ON)),
            SleepFrame(0.2),
            context(("user", f"{BROKE} {GOING_ON}"), ("assistant", "Did you"), ("user", person)),
            *line_heard(),
        ],
    )
    assert method.transfers == ["explicit_request"]


# The hold alone


def escalation() -> EscalationFrame:
    return EscalationFrame(trigger="explicit_request", reason="asked")


async def test_the_hold_tells_upstream_what_it_holds_and_releases():
    down, up = await run_test(
        ActionHold((HandOff(), Goodbye(grace_s=GRACE_S))),
        frames_to_send=[TTSSpeakFrame("Let me get someone."), escalation(), *line_heard()],
    )
    assert [type(f) for f in up] == [ActionHeldFrame, ActionReleasedFrame]
    assert of(EscalationFrame, down)[0].line_heard


async def test_a_write_back_is_released_to_the_crm_once_its_line_is_heard():
    down, up = await run_test(
        ActionHold(),
        frames_to_send=[
            TTSSpeakFrame("Your appointment is cancelled."),
            WriteBackFrame(),
            *line_heard(),
        ],
    )
    assert [(type(f), f.action) for f in up] == [
        (ActionHeldFrame, WRITE_BACK),
        (ActionReleasedFrame, WRITE_BACK),
    ]
    assert not of(WriteBackFrame, down)  # the release is the message


async def test_a_hand_off_the_server_decided_is_not_held():
    down, up = await run_test(
        ActionHold((HandOff(), Goodbye(grace_s=GRACE_S))),
        frames_to_send=[EscalationFrame(trigger="server_stopping")],
    )
    assert of(EscalationFrame, down) and not up


async def test_an_end_of_call_that_no_goodbye_announced_is_not_held():
    down, up = await run_test(
        ActionHold((HandOff(), Goodbye(grace_s=GRACE_S))),
        frames_to_send=[TTSSpeakFrame("Are you still there?"), SleepFrame(0.05), EndWorkerFrame()],
        expected_down_frames=[TTSSpeakFrame, EndWorkerFrame],
    )
    assert not of(ActionHeldFrame, up)


async def test_a_withdrawn_hand_off_is_dropped():
    hold = ActionHold((HandOff(), Goodbye(grace_s=GRACE_S)))
    down, _ = await run_test(
        hold,
        frames_to_send=[
            TTSSpeakFrame("Let me get someone."),
            escalation(),
            *line_cut_by_the_caller(),
            ActionWithdrawnFrame(),
            *line_heard(),
        ],
    )
    assert not of(EscalationFrame, down) and hold.withdrawn == 1


# When the caller's words go on with the acted turn


@pytest.mark.parametrize(
    ("text", "after_s", "heard_s", "joined"),
    [
        (GOING_ON, 0.6, 0.2, True),  # at once
        (GOING_ON, 1.8, 0.1, True),  # the answer had barely begun
        (GOING_ON, 2.5, 2.0, False),  # after hearing the line: a new turn
        ("No wait, actually, I need a cleaning.", 0.6, 0.0, False),  # a correction
        ("Um, sorry, I meant next week.", 0.5, 0.0, False),
        (GOING_ON, 6.0, 0.0, False),  # past the continuation window
    ],
)
def test_the_join_rule(text, after_s, heard_s, joined):
    assert JoinWhenGoingOnAtOnce().joins(text, Continuation(after_s, heard_s)) is joined
    assert not NeverJoin().joins(text, Continuation(after_s, heard_s))


def test_corrections():
    assert opens_with_correction("Oh, wait.")
    assert opens_with_correction("hold on, that's not it")
    assert not opens_with_correction("Nothing else, thanks")
    assert not opens_with_correction(GOING_ON)


async def test_a_goodbye_heard_in_full_ends_the_call(agent):
    pipeline, _, _, hold, _ = call(agent)
    down, _ = await run_test(pipeline, frames_to_send=[context(("user", "Bye.")), *line_heard()])
    assert of(EndWorkerFrame, down) and hold.withdrawn == 0


async def test_the_record_of_a_withdrawn_goodbye_is_neither_resolved_nor_escalated(
    agent, call_store
):
    recorder = CallRecorder(call_store, call_id="w1", transport="test")
    pipeline, _, _, _, _ = call(agent)
    await run_test(
        pipeline,
        frames_to_send=[
            context(("user", "Bye.")),
            *line_cut_by_the_caller(),
            context(("user", "Bye."), ("assistant", "Thanks"), ("user", BROKE)),
            *line_cut_by_the_caller(),
            context(("user", f"Bye. {BROKE}"), ("assistant", "I'm"), ("user", GOING_ON)),
            SleepFrame(0.2),
        ],
        observers=[recorder],
    )
    call_store.flush()
    record = call_store.get_call("w1")
    assert record["outcome"] not in ("resolved", "escalated")
    assert record["end_reason"] != "caller said goodbye"
    # the hand-off stored when it was decided is marked withdrawn, not left as if under way
    assert record["escalation"]["transfer_result"] == "withdrawn"


async def test_words_that_withdraw_a_goodbye_leave_a_write_back_held_with_it():
    # "Thank you so much." over "You're all confirmed. Goodbye.": the call goes on, the
    # confirmation stands
    withdrawal = ActionWithdrawal(join=NeverJoin())
    down, _ = await run_test(
        withdrawal,
        frames_to_send=[
            ActionHeldFrame(action=END_CALL),
            ActionHeldFrame(action=WRITE_BACK),
            context(("user", "Thank you so much.")),
        ],
    )
    withdrawn = of(ActionWithdrawnFrame, down)
    assert [w.actions for w in withdrawn] == [frozenset({END_CALL})]


async def test_a_hold_withdraws_only_the_actions_named():
    hold = ActionHold((WriteBack(), Goodbye(grace_s=GRACE_S)))
    down, up = await run_test(
        hold,
        frames_to_send=[
            BotReplyFrame(text="You're all confirmed. Goodbye.", ends_call=True),
            TTSSpeakFrame("You're all confirmed. Goodbye."),
            WriteBackFrame(),
            EndWorkerFrame(),
            *line_cut_by_the_caller(),
            ActionWithdrawnFrame(actions=frozenset({END_CALL})),
            NLUResultFrame(text="Thank you so much.", intent=OUT_OF_SCOPE, confidence=0.9),
            *line_heard(),
        ],
    )
    assert not of(EndWorkerFrame, down) and hold.withdrawn == 1
    assert (ActionReleasedFrame, WRITE_BACK) in [(type(f), getattr(f, "action", "")) for f in up]

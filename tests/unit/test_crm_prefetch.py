"""The CRM prefetch never delays the greeting; a record arriving in time personalises it."""

import asyncio
from datetime import datetime, timedelta

from pipecat.frames.frames import TTSSpeakFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.processors.frame_processor import FrameDirection
from pipecat.processors.frameworks.rtvi import RTVIClientMessageFrame
from pipecat.tests.utils import SleepFrame, run_test

from integrations.crm.base import Appointment, CallerRecord
from processors.action_hold import ActionHold
from processors.crm_prefetch import CrmPrefetchProcessor
from processors.dialogue import DialoguePolicy, DialogueProcessor
from processors.frames import (
    ActionWithdrawnFrame,
    Band,
    CallerRecordFrame,
    CrmAction,
    CrmUpdateFrame,
    GreetingFrame,
    NLUResultFrame,
    PrefetchStatus,
    TransferResultFrame,
)
from tests.fakes.crm import FakeCRM
from tests.support.frames import line_heard, spoken

MARIA = CallerRecord(
    customer_id="cus_1",
    first_name="Maria",
    appointments=(
        Appointment("apt_1", datetime.now() + timedelta(days=3), "cleaning", "Dr. Patel"),
    ),
)


def call(agent, crm, caller="+15555550123", budget_ms=500):
    prefetch = CrmPrefetchProcessor(crm, caller, call_id="t1", budget_ms=budget_ms)
    return prefetch, Pipeline([prefetch, DialogueProcessor(DialoguePolicy(agent))])


async def test_fast_crm_greets_by_name(agent):
    prefetch, pipeline = call(agent, FakeCRM(MARIA))
    down, _ = await run_test(pipeline, frames_to_send=[SleepFrame(0.05), GreetingFrame()])
    records = [f for f in down if isinstance(f, CallerRecordFrame)]
    assert records[0].status is PrefetchStatus.FOUND and not records[0].late
    assert spoken(down) == [
        "Hi Maria, thanks for calling Brightside Dental, this is Riley. How can I help you today?"
    ]
    assert prefetch.latency_ms is not None and prefetch.latency_ms < 500


async def test_a_greeting_that_comes_first_waits_briefly_for_the_record(agent):
    _, pipeline = call(agent, FakeCRM(MARIA, delay_s=0.06))
    down, _ = await run_test(pipeline, frames_to_send=[GreetingFrame(), SleepFrame(0.3)])
    kinds = [type(f).__name__ for f in down if isinstance(f, TTSSpeakFrame | CallerRecordFrame)]
    assert kinds == ["CallerRecordFrame", "TTSSpeakFrame"]
    assert spoken(down)[0].startswith("Hi Maria,")


async def test_slow_crm_does_not_delay_the_greeting_and_a_late_record_is_still_used(agent):
    prefetch, pipeline = call(agent, FakeCRM(MARIA, delay_s=0.8), budget_ms=300)
    down, _ = await run_test(
        pipeline,
        frames_to_send=[
            GreetingFrame(),
            SleepFrame(1.0),
            NLUResultFrame(
                text="when is my appointment",
                intent="next_appointment",
                confidence=0.95,
                band=Band.ACT,
            ),
        ],
    )
    kinds = [type(f).__name__ for f in down if isinstance(f, TTSSpeakFrame | CallerRecordFrame)]
    assert kinds[0] == "TTSSpeakFrame"  # the greeting went out before the record arrived
    assert spoken(down)[0] == agent.greeting
    record = next(f for f in down if isinstance(f, CallerRecordFrame))
    assert record.late and record.elapsed_ms >= 300
    assert "cleaning" in spoken(down)[1] and "Dr. Patel" in spoken(down)[1]


async def test_failing_crm_greets_generically_and_the_call_goes_on(agent):
    prefetch, pipeline = call(agent, FakeCRM(MARIA, fail=True))
    down, _ = await run_test(
        pipeline,
        frames_to_send=[
            GreetingFrame(),
            SleepFrame(0.05),
            NLUResultFrame(text="hours", intent="opening_hours", confidence=0.95, band=Band.ACT),
        ],
    )
    assert spoken(down)[0] == agent.greeting and "Monday" in spoken(down)[1]
    assert next(f for f in down if isinstance(f, CallerRecordFrame)).status is PrefetchStatus.ERROR


async def test_unknown_caller_and_no_identity(agent):
    _, pipeline = call(agent, FakeCRM(MARIA), caller="+15555550999")
    down, _ = await run_test(pipeline, frames_to_send=[SleepFrame(0.05), GreetingFrame()])
    assert (
        next(f for f in down if isinstance(f, CallerRecordFrame)).status is PrefetchStatus.NOT_FOUND
    )
    prefetch, pipeline = call(agent, FakeCRM(MARIA), caller=None)
    down, _ = await run_test(pipeline, frames_to_send=[GreetingFrame()])
    assert not any(isinstance(f, CallerRecordFrame) for f in down)
    assert prefetch.latency_ms is None


async def test_identity_from_a_client_message_starts_the_lookup(agent):
    prefetch, pipeline = call(agent, FakeCRM(MARIA), caller=None)
    down, _ = await run_test(
        pipeline,
        frames_to_send=[
            RTVIClientMessageFrame(
                msg_id="1", type="caller-identity", data={"caller": "+15555550123"}
            ),
            SleepFrame(0.05),
        ],
    )
    assert prefetch.record is MARIA


async def test_write_backs_and_outcome_log():
    crm = FakeCRM(MARIA)
    await run_test(
        CrmPrefetchProcessor(crm, "+15555550123", call_id="t1"),
        frames_to_send=[
            SleepFrame(0.05),
            CrmUpdateFrame(
                action=CrmAction.MOVE_APPOINTMENT,
                customer_id="cus_1",
                params={"appointment_id": "apt_1", "starts_at": "2031-01-02T15:00"},
            ),
            CrmUpdateFrame(action=CrmAction.REQUEST_CALLBACK, customer_id="cus_1"),
            TransferResultFrame(trigger="explicit_request", ok=True),
            SleepFrame(0.05),
        ],
        frames_to_send_direction=FrameDirection.UPSTREAM,
    )
    await asyncio.sleep(0.05)
    assert ("move", "cus_1", "apt_1", "2031-01-02T15:00:00") in crm.writes
    assert ("action", "cus_1", "callback") in crm.writes
    assert ("log_call", "cus_1", "transferred") in crm.writes


def cancel() -> NLUResultFrame:
    return NLUResultFrame(
        text="cancel my appointment", intent="cancel_appointment", confidence=0.97, band=Band.ACT
    )


async def test_a_cancel_the_caller_went_on_from_is_never_written(agent):
    # "Cancel it." | "... no wait, can I move it instead?" over "Your appointment is cancelled."
    crm = FakeCRM(MARIA)
    _, pipeline = call(agent, crm)
    down, _ = await run_test(
        pipeline,
        frames_to_send=[
            SleepFrame(0.1),
            cancel(),
            SleepFrame(0.1),  # the line starts; the caller goes on over it
            ActionWithdrawnFrame(),
            SleepFrame(0.1),
        ],
    )
    assert any("cancel" in line.lower() for line in spoken(down))  # the line was said
    await asyncio.sleep(0.05)
    assert not [w for w in crm.writes if w[0] == "cancel"]
    assert ("log_call", "cus_1", "completed") in crm.writes


async def test_a_cancel_whose_line_was_heard_is_written(agent):
    crm = FakeCRM(MARIA)
    _, pipeline = call(agent, crm)
    await run_test(
        Pipeline([pipeline, ActionHold()]),
        frames_to_send=[SleepFrame(0.1), cancel(), *line_heard()],
    )
    await asyncio.sleep(0.05)
    assert ("cancel", "cus_1", "apt_1") in crm.writes

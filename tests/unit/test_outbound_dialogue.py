"""The dialogue on a call the agent placed: opening, outcomes, CRM confirm, opt-out."""

import asyncio
import sqlite3
from pathlib import Path

import pytest
from pipecat.frames.frames import EndWorkerFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.tests.utils import SleepFrame, run_test

from bot.agent import load_agent
from integrations.crm.sqlite_crm import SQLiteCRM
from processors.action_hold import ActionHold
from processors.agent_definition import AgentDefinition
from processors.caller_verification import CallerVerificationProcessor
from processors.crm_prefetch import CrmPrefetchProcessor
from processors.dialogue import DialoguePolicy, DialogueProcessor
from processors.frames import (
    ActionWithdrawnFrame,
    Band,
    DoNotCallFrame,
    GreetingFrame,
    NLUResultFrame,
    OutcomeFrame,
    TurnJoinedFrame,
)
from processors.irreversible_actions import Goodbye, WriteBack
from processors.outbound_script import OutboundScript
from tests.support.frames import line_cut_by_the_caller, line_heard, spoken

REMINDERS = Path(__file__).parents[2] / "bot" / "agents" / "appointment_reminders.yaml"
MARIA = "+15555550123"  # demo customer cus_1001: PIN 4729, cleaning apt_2001 in three days
VARIABLES = {"first_name": "Maria", "appointment": "Friday at 10 AM"}


@pytest.fixture(scope="module")
def reminders() -> AgentDefinition:
    return load_agent(REMINDERS)


@pytest.fixture
def crm(tmp_path: Path) -> SQLiteCRM:
    return SQLiteCRM(tmp_path / "crm.db", seed_demo=True)


def nlu(intent, band=Band.ACT, conf=0.95, **entities):
    return NLUResultFrame(text="...", intent=intent, confidence=conf, band=band, entities=entities)


def call(agent: AgentDefinition, crm: SQLiteCRM | None = None) -> Pipeline:
    """The processors of an outbound call from the CRM prefetch to the write-backs' hold."""
    assert agent.outbound is not None
    script = OutboundScript(agent.outbound, VARIABLES)
    return Pipeline(
        [
            CrmPrefetchProcessor(crm, MARIA if crm else None, call_id="t1"),
            CallerVerificationProcessor(agent.verification, call_id="t1"),
            DialogueProcessor(DialoguePolicy(agent, script=script)),
            ActionHold((WriteBack(), Goodbye(grace_s=0.05))),
        ]
    )


def status(crm: SQLiteCRM, appointment_id: str = "apt_2001") -> str:
    with sqlite3.connect(crm.path) as db:
        return db.execute(
            "SELECT status FROM appointments WHERE id = ?", (appointment_id,)
        ).fetchone()[0]


def outcomes(frames) -> list[tuple[str, str | None]]:
    return [(f.disposition, f.intent) for f in frames if isinstance(f, OutcomeFrame)]


async def test_the_opening_says_the_contacts_variables(reminders):
    down, _ = await run_test(call(reminders), frames_to_send=[GreetingFrame()])
    assert spoken(down) == [
        "Hi Maria, this is Riley from Brightside Dental calling about your appointment on "
        "Friday at 10 AM. Will you be able to make it?"
    ]


async def test_an_opening_missing_a_variable_falls_back_to_the_greeting(reminders):
    assert reminders.outbound is not None
    policy = DialoguePolicy(reminders, script=OutboundScript(reminders.outbound, {}))
    assert policy.greeting() == reminders.greeting


async def test_yes_to_the_opening_confirms_writes_back_and_ends(reminders, crm):
    down, _ = await run_test(
        call(reminders, crm),
        frames_to_send=[SleepFrame(0.2), GreetingFrame(), nlu("affirm"), *line_heard()],
    )
    said = spoken(down)
    assert said[1].startswith("Great, Maria, you're all confirmed for Friday at 10 AM")
    assert outcomes(down) == [("confirmed", "confirm_appointment")]
    assert isinstance(down[-1], EndWorkerFrame)
    await asyncio.sleep(0.1)
    assert status(crm) == "confirmed"
    record = await crm.lookup(MARIA)
    assert record is not None and record.next_appointment() is not None  # still upcoming


async def test_a_callee_hanging_up_during_the_confirmations_line_is_still_confirmed(reminders, crm):
    # the line is never heard to its end: the call ends (the pipeline's EndFrame) first
    await run_test(
        call(reminders, crm),
        frames_to_send=[SleepFrame(0.2), GreetingFrame(), nlu("affirm"), SleepFrame(0.3)],
    )
    await asyncio.sleep(0.1)
    assert status(crm) == "confirmed"


async def test_a_yes_the_callee_went_on_from_is_not_written_back(reminders, crm):
    # "Yes, | well no, actually, can I move it?": the confirmation's line was cut and the
    # callee's turn withdrew it
    down, _ = await run_test(
        call(reminders, crm),
        frames_to_send=[
            SleepFrame(0.2),
            GreetingFrame(),
            nlu("affirm"),
            *line_cut_by_the_caller(),
            ActionWithdrawnFrame(),
            *line_heard(),
        ],
    )
    assert outcomes(down) == [("confirmed", "confirm_appointment")]  # what was decided
    await asyncio.sleep(0.1)
    assert status(crm) == "booked"  # but never written


async def test_no_to_the_opening_offers_to_move_or_cancel(reminders):
    down, _ = await run_test(call(reminders), frames_to_send=[GreetingFrame(), nlu("deny")])
    assert spoken(down)[1] == reminders.outbound.no_reply  # type: ignore[union-attr]
    assert outcomes(down) == []


async def test_a_no_the_callee_went_on_from_is_withdrawn_and_the_whole_answer_cancels(
    reminders, crm
):
    # "No, | I need to cancel it.": the agent began "Would you like to move it...?" on the
    # "No", the callee went on; the joined turn answers the opening and is verified first
    down, _ = await run_test(
        call(reminders, crm),
        frames_to_send=[
            SleepFrame(0.2),
            GreetingFrame(),
            nlu("deny"),
            TurnJoinedFrame(),
            nlu("cancel_appointment"),
            nlu("dtmf_entry", digits="4729#"),
            SleepFrame(0.2),
        ],
    )
    said = spoken(down)
    assert said[1] == reminders.outbound.no_reply  # type: ignore[union-attr]
    assert said[2] == reminders.verification.prompt
    assert "cancelled" in said[-1]
    assert outcomes(down) == [("cancelled", "cancel_appointment")]


async def test_a_withdrawn_answer_leaves_the_openings_question_open(reminders):
    down, _ = await run_test(
        call(reminders),
        frames_to_send=[GreetingFrame(), nlu("deny"), TurnJoinedFrame(), nlu("affirm")],
    )
    assert outcomes(down) == [("confirmed", "confirm_appointment")]  # the opening's yes


async def test_cancel_is_verified_then_recorded_and_written_back(reminders, crm):
    down, _ = await run_test(
        call(reminders, crm),
        frames_to_send=[
            SleepFrame(0.2),
            GreetingFrame(),
            nlu("cancel_appointment"),
            nlu("dtmf_entry", digits="4729#"),
            *line_heard(),
        ],
    )
    said = spoken(down)
    assert said[1] == reminders.verification.prompt
    assert "cancelled" in said[-1]
    assert outcomes(down) == [("cancelled", "cancel_appointment")]
    await asyncio.sleep(0.1)
    assert status(crm) == "cancelled"


async def test_reschedule_asks_for_verification_first(reminders, crm):
    down, _ = await run_test(
        call(reminders, crm),
        frames_to_send=[
            SleepFrame(0.2),
            GreetingFrame(),
            nlu("reschedule_appointment", datetime={"value": "2031-01-02T15:00"}),
        ],
    )
    assert spoken(down)[1:] == [reminders.verification.prompt]
    assert outcomes(down) == []  # nothing is recorded before the callee is verified


async def test_opt_out_asks_for_do_not_call_says_goodbye_and_ends(reminders):
    down, _ = await run_test(
        call(reminders), frames_to_send=[GreetingFrame(), nlu("opt_out"), *line_heard()]
    )
    dnc = [f for f in down if isinstance(f, DoNotCallFrame)]
    assert [f.reason for f in dnc] == ["spoken"]
    assert outcomes(down) == [("opted-out", "opt_out")]
    assert spoken(down)[-1] == (
        "I've taken your number off our list. Sorry to have bothered you. Goodbye."
    )
    assert isinstance(down[-1], EndWorkerFrame)


async def test_wrong_person_apologises_and_ends_without_an_outcome(reminders):
    down, _ = await run_test(
        call(reminders), frames_to_send=[GreetingFrame(), nlu("wrong_person"), *line_heard()]
    )
    assert "sorry" in spoken(down)[-1].lower()
    assert outcomes(down) == []
    assert isinstance(down[-1], EndWorkerFrame)


async def test_an_inbound_call_records_no_outcomes(reminders):
    down, _ = await run_test(
        DialogueProcessor(DialoguePolicy(reminders)),
        frames_to_send=[GreetingFrame(), nlu("confirm_appointment")],
    )
    assert spoken(down)[0] == reminders.greeting
    assert outcomes(down) == []


async def test_a_crm_that_cannot_confirm_is_logged_not_fatal(reminders, tmp_path):
    from tests.fakes.crm import FakeCRM

    crm = FakeCRM(await SQLiteCRM(tmp_path / "c.db", seed_demo=True).lookup(MARIA))
    down, _ = await run_test(
        Pipeline(
            [
                CrmPrefetchProcessor(crm, MARIA, call_id="t1"),
                DialogueProcessor(
                    DialoguePolicy(
                        reminders,
                        script=OutboundScript(reminders.outbound, VARIABLES),  # type: ignore[arg-type]
                    )
                ),
                ActionHold((WriteBack(), Goodbye(grace_s=0.05))),
            ]
        ),
        frames_to_send=[SleepFrame(0.2), nlu("confirm_appointment"), *line_heard()],
    )
    assert outcomes(down) == [("confirmed", "confirm_appointment")]
    assert isinstance(down[-1], EndWorkerFrame)

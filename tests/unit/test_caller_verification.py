"""Caller verification (PIN / date of birth) and the callback offer after a failed transfer."""

from pipecat.processors.frame_processor import FrameDirection
from pipecat.tests.utils import run_test

from integrations.crm.base import AuthMethod, AuthStatus, CallerRecord
from processors.callback_offer import CallbackOfferProcessor
from processors.caller_verification import CallerVerificationProcessor, match
from processors.frames import (
    Band,
    CallerRecordFrame,
    CrmAction,
    CrmUpdateFrame,
    DecisionPath,
    NLUResultFrame,
    PrefetchStatus,
    TransferResultFrame,
)
from tests.support.frames import spoken

RECORD = CallerRecord("cus_1", "Maria", secrets={"pin": "4729", "date_of_birth": "1985-03-04"})


def nlu(intent, band=Band.ACT, path=DecisionPath.CLASSIFIER, **entities):
    return NLUResultFrame(
        text="...", intent=intent, confidence=0.95, band=band, path=path, entities=entities
    )


def cancel():
    return nlu("cancel_appointment")


def records(frames):
    return [f.record for f in frames if isinstance(f, CallerRecordFrame) and f.update]


async def test_keyed_pin_verifies_and_releases_the_request(agent):
    down, _ = await run_test(
        CallerVerificationProcessor(agent.verification, call_id="t"),
        frames_to_send=[
            CallerRecordFrame(record=RECORD, status=PrefetchStatus.FOUND),
            cancel(),
            nlu("dtmf_entry", path=DecisionPath.DTMF, digits="4729"),
        ],
    )
    assert spoken(down) == [agent.verification.prompt, agent.verification.verified]
    assert records(down)[-1].auth.status is AuthStatus.VERIFIED
    assert records(down)[-1].auth.method is AuthMethod.PIN
    released = [f for f in down if isinstance(f, NLUResultFrame)]
    assert [f.intent for f in released] == ["cancel_appointment"]


async def test_wrong_pin_twice_fails_and_declines(agent):
    down, _ = await run_test(
        CallerVerificationProcessor(agent.verification, call_id="t"),
        frames_to_send=[
            CallerRecordFrame(record=RECORD, status=PrefetchStatus.FOUND),
            cancel(),
            nlu("dtmf_entry", digits="1111"),
            nlu("dtmf_entry", digits="2222"),
            cancel(),
        ],
    )
    assert spoken(down) == [
        agent.verification.prompt,
        agent.verification.retry,
        agent.verification.failed,
        agent.verification.failed,
    ]
    assert records(down)[-1].auth.status is AuthStatus.FAILED
    assert not [f for f in down if isinstance(f, NLUResultFrame)]


async def test_asking_for_a_person_interrupts_verification(agent):
    down, _ = await run_test(
        CallerVerificationProcessor(agent.verification, call_id="t"),
        frames_to_send=[
            CallerRecordFrame(record=RECORD, status=PrefetchStatus.FOUND),
            cancel(),
            nlu("talk_to_human"),
        ],
    )
    assert [f.intent for f in down if isinstance(f, NLUResultFrame)] == ["talk_to_human"]


async def test_unknown_callers_and_other_intents_pass(agent):
    down, _ = await run_test(
        CallerVerificationProcessor(agent.verification, call_id="t"),
        frames_to_send=[cancel(), nlu("opening_hours")],
    )
    assert [f.intent for f in down if isinstance(f, NLUResultFrame)] == [
        "cancel_appointment",
        "opening_hours",
    ]


def test_date_of_birth_and_spoken_pin_match():
    secrets = RECORD.secrets
    said = {"datetime": {"value": "1985-03-04T00:00"}, "digits": "1985"}
    assert match(said, secrets) is AuthMethod.DATE_OF_BIRTH
    assert (
        match({"datetime": {"value": "2119-03-04T00:00"}, "digits": "1985"}, secrets)
        is AuthMethod.DATE_OF_BIRTH
    )  # "nineteen eighty five" parsed oddly
    assert match({"datetime": {"value": "1985-04-03T00:00"}}, secrets) is AuthMethod.NONE
    assert match({"digits": "4729"}, secrets) is AuthMethod.PIN
    assert match({"digits": "472"}, secrets) is AuthMethod.NONE


async def test_callback_offer_yes_records_a_callback(agent):
    processor = CallbackOfferProcessor(agent.transfer, call_id="t")
    await run_test(
        processor,
        frames_to_send=[TransferResultFrame(ok=False, error="busy")],
        frames_to_send_direction=FrameDirection.UPSTREAM,
    )
    down, up = await run_test(
        processor,
        frames_to_send=[
            CallerRecordFrame(record=RECORD, status=PrefetchStatus.FOUND),
            nlu("affirm"),
        ],
    )
    assert spoken(down) == [agent.transfer.callback_confirmed]
    update = next(f for f in up if isinstance(f, CrmUpdateFrame))
    assert update.action is CrmAction.REQUEST_CALLBACK and update.customer_id == "cus_1"
    assert processor.callback_requested


async def test_callback_offer_no_and_unrelated_turns(agent):
    processor = CallbackOfferProcessor(agent.transfer, call_id="t")
    await run_test(
        processor,
        frames_to_send=[TransferResultFrame(ok=False)],
        frames_to_send_direction=FrameDirection.UPSTREAM,
    )
    down, _ = await run_test(processor, frames_to_send=[nlu("deny"), nlu("affirm")])
    assert spoken(down) == [agent.transfer.callback_declined]
    assert [f.intent for f in down if isinstance(f, NLUResultFrame)] == ["affirm"]

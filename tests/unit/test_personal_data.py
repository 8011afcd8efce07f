"""Personal data at rest follows CALLAGENT_CALLER_ID_STORAGE everywhere a call record goes.

The attack (issue 16, finding 4): with the default ``hash`` storage an escalated call's
record kept the caller's plain number, name, e-mail and appointments in its escalation
summary, and showed them on the dashboard, in ``/api/calls`` and in the exports. Each test
drives the real escalation path (escalation processor + call recorder in a pipeline, the
caller's CRM record in front) and reads the call back the ways an operator can.
"""

import json
from datetime import datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from pipecat.frames.frames import BotStartedSpeakingFrame, BotStoppedSpeakingFrame, TTSSpeakFrame
from pipecat.tests.utils import SleepFrame, run_test

from bot.call.records import CallRecords, open_call_records
from bot.cli import main
from bot.operator.auth import OperatorAuth
from bot.operator.calls_api import create_calls_router
from bot.operator.dashboard import create_dashboard_router
from bot.settings import Settings
from integrations.crm.base import Appointment, CallerRecord, Case
from integrations.sentiment import VaderSentiment
from integrations.storage.caller_id import HashedCallerId, PlainCallerId
from integrations.storage.personal_data import KeepPersonalData, MaskPersonalData
from processors.escalation import EscalationProcessor
from processors.frames import (
    Band,
    BotReplyFrame,
    CallerRecordFrame,
    DecisionPath,
    EscalationFrame,
    NLUResultFrame,
    PrefetchStatus,
)

TOKEN = "operator-token-for-tests-0123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PHONE = "+15555550123"
EMAIL = "maria.garcia@example.com"
NEXT_VISIT = datetime.now().replace(microsecond=0) + timedelta(days=3)
MARIA = CallerRecord(
    "cus_1",
    "Maria",
    "Garcia",
    PHONE,
    EMAIL,
    appointments=(Appointment("apt_9", NEXT_VISIT, "root canal", "Dr. Okafor"),),
    open_cases=(Case("case_4", "Refund for the crown on tooth 14"),),
    secrets={"pin": "4729"},
)
SAID = (
    "Hi, this is Maria Garcia, my number is 555 555 0123 "
    f"and my email is {EMAIL}, my PIN is 4 7 2 9"
)
LEAKS = (
    PHONE,
    "555 555 0123",
    "5555550123",
    EMAIL,
    "Maria",
    "Garcia",
    "root canal",
    "Okafor",
    "crown",
    NEXT_VISIT.date().isoformat(),
    "4 7 2 9",
    "4729",
)


def nlu(text, intent, band=Band.ACT, **entities):
    return NLUResultFrame(
        text=text,
        intent=intent,
        confidence=0.95,
        band=band,
        path=DecisionPath.CLASSIFIER,
        entities=entities,
    )


def speak(text):
    return [
        TTSSpeakFrame(text),
        BotStartedSpeakingFrame(),
        SleepFrame(0.02),
        BotStoppedSpeakingFrame(),
    ]


async def escalated_call(records: CallRecords, agent) -> str:
    """A known caller gives their details, then asks for a person: the real processors."""
    escalation = EscalationProcessor(
        agent.escalation,
        handoff_line=agent.transfer.handoff_line,
        transfer_intents=frozenset({"talk_to_human"}),
        sentiment=VaderSentiment(),
        call_id="pii1",
        transport="twilio",
    )
    recorder = records.recorder(call_id="pii1", transport="twilio", caller=PHONE, agent="dental")
    frames = [
        CallerRecordFrame(record=MARIA, status=PrefetchStatus.FOUND, elapsed_ms=12.0),
        *speak("Hi Maria, thanks for calling. How can I help?"),
        nlu(
            SAID,
            "update_details",
            phone={"text": "5555550123", "value": PHONE, "spoken": "5 5 5 5 5 5 0 1 2 3"},
            digits="4729",
            datetime={"value": NEXT_VISIT.isoformat(), "spoken": "Friday"},
        ),
        BotReplyFrame(text=f"Thanks Maria, I have {PHONE} on file.", intent="update_details"),
        *speak(f"Thanks Maria, I have {PHONE} on file."),
        nlu("get me a real person", "talk_to_human"),
        BotReplyFrame(text=agent.transfer.handoff_line, intent="talk_to_human", hands_off=True),
        *speak(agent.transfer.handoff_line),
    ]
    down, _ = await run_test(escalation, frames_to_send=frames, observers=[recorder])
    summary = next(f for f in down if isinstance(f, EscalationFrame)).summary
    assert summary["caller"]["phone"] == PHONE  # the person taking over gets everything
    assert summary["caller"]["name"] == "Maria Garcia"
    records.store.flush()
    return "pii1"


async def everything_an_operator_sees(records: CallRecords, call_id: str, capsys) -> dict:
    """The call as stored, in /api/calls, on the dashboard, and in each export format."""
    app = FastAPI()
    auth = OperatorAuth(TOKEN)
    app.include_router(create_calls_router(lambda: records, auth))
    app.include_router(create_dashboard_router(lambda: records, auth))
    seen: dict[str, str] = {"stored": json.dumps(records.store.get_call(call_id))}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as client:
        for path in ("/api/calls", f"/api/calls/{call_id}", f"/dashboard/calls/{call_id}"):
            response = await client.get(path, headers=AUTH)
            assert response.status_code == 200, path
            seen[path] = response.text
    capsys.readouterr()
    for fmt in ("jsonl", "csv", "csv-calls"):
        assert main(["calls", "export", "--format", fmt]) == 0
        seen[f"export {fmt}"] = capsys.readouterr().out
    return seen


@pytest.mark.parametrize("storage", ["hash", "redact"])
async def test_an_escalated_call_stores_no_plain_personal_data(
    storage, data_dir, monkeypatch, agent, capsys
):
    monkeypatch.setenv("CALLAGENT_CALLER_ID_STORAGE", storage)
    records = open_call_records(Settings.load())
    call_id = await escalated_call(records, agent)
    seen = await everything_an_operator_sees(records, call_id, capsys)

    for where, text in seen.items():
        found = [leak for leak in LEAKS if leak in text]
        assert not found, f"{where} shows {found}"
    stored = records.store.get_call(call_id)
    assert stored is not None
    summary = stored["escalation"]["summary"]
    # What the record is for stays: why, what was asked, how it went.
    assert summary["reason"] == "explicit_request"
    assert "[date]" not in (summary["started_at"], summary["escalated_at"])  # the call's own times
    assert [i["intent"] for i in summary["intents"]] == ["update_details", "talk_to_human"]
    assert summary["caller"]["customer_id"] == "cus_1"
    assert summary["caller"]["next_appointment"] == {"id": "apt_9", "status": "booked"}
    assert summary["caller"]["phone"] == stored["caller"]  # same stored form as the caller id
    caller_turn = next(t for t in stored["turns"] if t["intent"] == "update_details")
    assert caller_turn["caller_text"] == (
        "Hi, this is [name], my number is [phone] and my email is [email], my PIN is [number]"
    )
    assert caller_turn["entities"]["phone"] == "[phone]"
    assert caller_turn["entities"]["digits"] == "####"
    assert stored["turns"][0]["bot_text"] == "Hi [name], thanks for calling. How can I help?"
    records.store.close()


async def test_plain_storage_keeps_the_personal_data(data_dir, monkeypatch, agent, capsys):
    monkeypatch.setenv("CALLAGENT_CALLER_ID_STORAGE", "plain")
    records = open_call_records(Settings.load())
    call_id = await escalated_call(records, agent)
    seen = await everything_an_operator_sees(records, call_id, capsys)

    stored = records.store.get_call(call_id)
    assert stored is not None and stored["caller"] == PHONE
    summary = stored["escalation"]["summary"]
    assert summary["caller"]["name"] == "Maria Garcia" and summary["caller"]["email"] == EMAIL
    assert "Maria" in seen[f"/dashboard/calls/{call_id}"]
    assert any(t["caller_text"] == SAID for t in stored["turns"])
    records.store.close()


def test_masking_rules():
    mask = MaskPersonalData(HashedCallerId("salt"))
    assert mask.caller_text("call me on +1 (555) 555-0123 or at maria dot g at gmail dot com") == (
        "call me on [phone] or at [email]"
    )
    assert mask.caller_text("my account is five five oh one two") == "my account is [number]"
    assert mask.caller_text("I'm Sam Lee and I was born 1980-03-03") == (
        "I'm [name] and I was born [date]"
    )
    # Times, small numbers and ordinary words are kept.
    assert mask.caller_text("can I come at 10:30 on the 5th, two of us") == (
        "can I come at 10:30 on the 5th, two of us"
    )
    assert mask.bot_text("This is Bright Smile Dental.") == "This is Bright Smile Dental."
    assert mask.caller_text("I'm Calling because this is Friday") == (
        "I'm Calling because this is Friday"
    )
    assert (
        mask.bot_text("See you Friday, Garcia.", ["Maria", "Garcia"]) == "See you Friday, [name]."
    )
    keep = KeepPersonalData(PlainCallerId())
    assert keep.caller_text("my number is 555 555 0123") == "my number is 555 555 0123"

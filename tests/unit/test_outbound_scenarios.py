"""Issue 17: outbound scenario files, and the runner that asks the agent to place the call.

The runner is checked against the REAL server (``bot.web.app.create_app`` on a loopback
port, signatures checked): ``POST /api/calls/outbound`` dials through the simulator's fake
Twilio REST API, which rings the scenario's callee and opens the Media Stream back to the
server; the results are read from the server's API (attempt, call record, do-not-call
list). Only the call's pipeline is a stand-in (no models): an opening tone, then keys
stand for the dialogue (1: confirmed, 9: "stop calling me").
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
import uvicorn
from pipecat.frames.frames import (
    EndWorkerFrame,
    Frame,
    InputDTMFFrame,
    OutputAudioRawFrame,
    StartFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.transports.base_transport import BaseTransport

from bot.agent import load_agent
from bot.call.pipeline import CallSpec
from bot.call.runtime import Runtime
from bot.settings import Settings
from processors.frames import DoNotCallFrame, OutcomeFrame
from simulator.outbound.callee import NoAnswer, Person, Press, Voicemail
from simulator.scenarios.outbound import (
    OutboundScenario,
    load_outbound_scenario,
    parse_outbound_scenario,
)
from simulator.scenarios.outbound_runner import OutboundResult, run_outbound_scenario
from simulator.scenarios.scenario import ScenarioError
from tests.fakes.outbound_peer import tone
from tests.fakes.twilio import FakeTwilioRest
from tests.support.outbound_server import run_stand_in_call

REMINDERS = Path(__file__).parents[2] / "scenarios" / "reminders"
REMINDER_AGENT = Path(__file__).parents[2] / "bot" / "agents" / "appointment_reminders.yaml"
ACCOUNT = "AC" + "4" * 32
TOKEN = "a" * 32
OPERATOR = "operator-token-for-tests"


def test_the_reminder_scenarios_load() -> None:
    loaded = {p.stem: load_outbound_scenario(p) for p in sorted(REMINDERS.glob("*.yaml"))}
    assert set(loaded) >= {"confirm", "move_verified", "cancel", "opt_out", "voicemail"}
    assert all(s.agent == "appointment_reminders" for s in loaded.values())
    move = loaded["move_verified"].callee
    assert isinstance(move, Person) and Press("1234#") in move.lines
    voicemail = loaded["voicemail"].callee
    assert isinstance(voicemail, Voicemail) and voicemail.beep is not None
    assert isinstance(loaded["no_answer"].callee, NoAnswer)
    assert loaded["opt_out"].expect.do_not_call is True


def test_a_bad_outbound_scenario_names_its_line() -> None:
    text = (
        "direction: outbound\nagent: appointment_reminders\n"
        "contact: {phone: '+15555550142'}\ncallee:\n  answers: robot\n"
    )
    with pytest.raises(ScenarioError) as error:
        parse_outbound_scenario(text, "bad.yaml")
    assert error.value.line == 5 and "answers" in str(error.value)


class KeysForOutcomes(FrameProcessor):
    """Stands for the dialogue: an opening tone; key 1 confirms, 9 opts out; then it ends."""

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        if isinstance(frame, StartFrame):
            await self.push_frame(OutputAudioRawFrame(tone(0.6), 8000, 1))
        if isinstance(frame, InputDTMFFrame) and frame.button.value in "19":
            if frame.button.value == "1":
                await self.push_frame(OutcomeFrame(disposition="confirmed", intent="confirm"))
            else:
                await self.push_frame(DoNotCallFrame(reason="spoken"))
                await self.push_frame(OutcomeFrame(disposition="opted-out", intent="opt_out"))
            await self.push_frame(OutputAudioRawFrame(tone(0.6), 8000, 1))
            await asyncio.sleep(1.0)
            await self.push_frame(EndWorkerFrame(reason="done"))


@dataclass
class Agent:
    """The real server on a loopback port, dialling through the fake Twilio REST API."""

    base_url: str
    rest: FakeTwilioRest


@pytest.fixture
async def agent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Agent]:
    from bot.web import app as app_module

    rest = FakeTwilioRest(ACCOUNT, TOKEN)
    await rest.start()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    settings = Settings.load(
        {
            "CALLAGENT_HOST": "127.0.0.1",
            "CALLAGENT_PUBLIC_URL": base_url,
            "CALLAGENT_OPERATOR_TOKEN": OPERATOR,
            "CALLAGENT_OUTBOUND_FROM_NUMBER": "+15555550100",
            "CALLAGENT_OUTBOUND_RING_SECS": "5",
            "TWILIO_ACCOUNT_SID": ACCOUNT,
            "TWILIO_AUTH_TOKEN": TOKEN,
            "TWILIO_API_BASE_URL": rest.base_url,
            "CALLAGENT_DATA_DIR": str(tmp_path),
            "CALLAGENT_AGENT_FILE": str(REMINDER_AGENT),  # the scenarios' agent
            "CALLAGENT_AGENT_FILES": "none",
        }
    )

    async def run_call(
        transport: BaseTransport, spec: CallSpec, runtime: Runtime, **hooks: Any
    ) -> None:
        await run_stand_in_call(transport, spec, runtime, KeysForOutcomes(), hooks)

    monkeypatch.setattr(app_module, "run_call", run_call)
    unused = cast(Any, None)  # the stand-in call uses no models
    runtime = Runtime(settings, load_agent(settings.agent_file), None, None, unused, unused, None)
    app = app_module.create_app(settings, runtime)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.02)
    yield Agent(base_url, rest)
    server.should_exit = True
    await asyncio.wait_for(task, 10)
    await rest.stop()


def scenario(callee: str, expect: str, phone: str = "+15555550142") -> OutboundScenario:
    return parse_outbound_scenario(
        "direction: outbound\nagent: appointment_reminders\n"
        f"contact: {{phone: '{phone}', variables: {{first_name: James, appointment: Friday}}}}\n"
        f"callee:\n{callee}\nexpect:\n{expect}\n",
        "test.yaml",
    )


async def run(agent: Agent, played: OutboundScenario) -> OutboundResult:
    async with httpx.AsyncClient() as http:
        return await run_outbound_scenario(
            played, agent.rest, agent.base_url, OPERATOR, http, settle_s=10
        )


async def test_the_runner_reads_the_outcome_and_the_record_from_the_agent(agent: Agent) -> None:
    confirm = scenario(
        "  answers: person\n  hello: ''\n  ring_secs: 0.2\n  steps: [{press: '1'}]",
        "  call_status: completed\n  disposition: confirmed",
    )
    result = await run(agent, confirm)
    assert result.error is None, result.error
    assert result.placed["http_status"] == 201
    assert result.call is not None and result.call.log.said == ["press:1"]
    assert result.attempt["state"] == "ended" and result.attempt["disposition"] == "confirmed"
    assert result.attempt["provider_call_id"] == result.call.sid
    assert result.record is not None and result.record["id"] == result.attempt["call_id"]
    assert {c.name: c.ok for c in result.checks} == {
        "call_status": True,
        "disposition": True,
        "record": True,
    }, result.checks
    assert result.passed


async def test_an_opt_out_is_checked_on_the_do_not_call_list_and_a_second_dial(
    agent: Agent,
) -> None:
    opt_out = scenario(
        "  answers: person\n  hello: ''\n  ring_secs: 0.2\n  steps: [{press: '9'}]",
        "  disposition: opted-out\n  do_not_call: true",
        phone="+15555550171",
    )
    result = await run(agent, opt_out)
    assert result.on_dnc_list is True and result.redial_status == 409
    assert [c.name for c in result.checks if c.ok] == ["disposition", "do_not_call", "record"]
    assert len(agent.rest.dialer.calls) == 1  # the second dial was never placed
    # the same scenario again: the agent refuses to call, and the runner says why
    again = await run(agent, opt_out)
    assert again.error is not None and "409" in again.error and not again.passed


async def test_no_answer_ends_the_attempt_without_a_record(agent: Agent) -> None:
    result = await run(agent, scenario("  answers: no_answer", "  disposition: no-answer"))
    assert result.call is not None and result.call.status == "no-answer"
    assert result.attempt["disposition"] == "no-answer" and result.record is None
    assert [(c.name, c.ok) for c in result.checks] == [("disposition", True)]


async def test_a_failed_expectation_fails_the_scenario(agent: Agent) -> None:
    result = await run(agent, scenario("  answers: busy", "  disposition: no-answer"))
    assert result.attempt["disposition"] == "busy"
    assert [(c.name, c.ok) for c in result.checks] == [("disposition", False)]
    assert not result.passed

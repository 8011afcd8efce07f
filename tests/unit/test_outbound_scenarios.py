"""Issue 17: outbound scenario files, and the runner that asks the agent to place the call.

The agent's own ``POST /api/calls/outbound`` is another part of issue 17; here a stub
dialler server speaks its contract (operator token, ``{"to", "agent", "variables"}`` in,
``attempt_id`` out) and dials through the same fake Twilio REST API a real agent would.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from aiohttp import web

from simulator.outbound.callee import NoAnswer, Person, Press, Voicemail
from simulator.scenarios.outbound import load_outbound_scenario, parse_outbound_scenario
from simulator.scenarios.outbound_runner import run_outbound_scenario
from simulator.scenarios.scenario import ScenarioError
from tests.fakes.outbound_peer import OutboundPeer
from tests.fakes.twilio import FakeTwilioRest

REMINDERS = Path(__file__).parents[2] / "scenarios" / "reminders"
ACCOUNT = "AC" + "4" * 32
TOKEN = "a" * 32
OPERATOR = "operator-token"


def test_the_reminder_scenarios_load() -> None:
    loaded = {p.stem: load_outbound_scenario(p) for p in sorted(REMINDERS.glob("*.yaml"))}
    assert set(loaded) >= {"confirm", "move_verified", "cancel", "opt_out", "voicemail"}
    assert all(s.agent == "appointment_reminders" for s in loaded.values())
    move = loaded["move_verified"].callee
    assert isinstance(move, Person) and Press("1234#") in move.lines
    voicemail = loaded["voicemail"].callee
    assert isinstance(voicemail, Voicemail) and voicemail.beep is not None
    assert isinstance(loaded["no_answer"].callee, NoAnswer)
    assert loaded["no_answer"].expect.retry_after == 1800


def test_a_bad_outbound_scenario_names_its_line() -> None:
    text = (
        "direction: outbound\nagent: appointment_reminders\n"
        "contact: {phone: '+15555550142'}\ncallee:\n  answers: robot\n"
    )
    with pytest.raises(ScenarioError) as error:
        parse_outbound_scenario(text, "bad.yaml")
    assert error.value.line == 5 and "answers" in str(error.value)


@pytest.fixture
async def stub_agent() -> AsyncIterator[tuple[str, FakeTwilioRest, list[dict[str, object]]]]:
    """A dialler speaking POST /api/calls/outbound, dialling through the fake REST API."""
    rest = FakeTwilioRest(ACCOUNT, TOKEN)
    await rest.start()
    peer = OutboundPeer(TOKEN)
    await peer.start()
    asked: list[dict[str, object]] = []
    sids: list[str] = []

    async def outbound(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {OPERATOR}":
            return web.json_response({"detail": "operator token"}, status=401)
        body = await request.json()
        asked.append(body)
        async with httpx.AsyncClient() as client:
            created = await client.post(
                f"{rest.base_url}/2010-04-01/Accounts/{ACCOUNT}/Calls.json",
                data={"To": body["to"], "From": "+15555550100", "Timeout": "1"}
                | {"Url": f"{peer.base_url}/voice", "StatusCallback": f"{peer.base_url}/status"},
                auth=(ACCOUNT, TOKEN),
            )
        sids.append(created.json()["sid"])
        return web.json_response({"attempt_id": "att-1", "call_id": None}, status=202)

    async def attempt(_request: web.Request) -> web.Response:
        return web.json_response({"attempt_id": "att-1", "retry_after_s": 1800})

    async def record(request: web.Request) -> web.Response:
        if request.match_info["sid"] not in sids:
            return web.json_response({}, status=404)
        return web.json_response({"disposition": "no-answer"})

    app = web.Application()
    app.router.add_post("/api/calls/outbound", outbound)
    app.router.add_get("/api/calls/outbound/{attempt_id}", attempt)
    app.router.add_get("/api/calls/{sid}", record)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}", rest, asked
    await runner.cleanup()
    await peer.stop()
    await rest.stop()


async def test_the_runner_asks_the_agent_to_call_and_checks_the_outcome(
    stub_agent: tuple[str, FakeTwilioRest, list[dict[str, object]]],
) -> None:
    base_url, rest, asked = stub_agent
    scenario = load_outbound_scenario(REMINDERS / "no_answer.yaml")
    async with httpx.AsyncClient() as http:
        result = await run_outbound_scenario(scenario, rest, base_url, OPERATOR, http)
    assert result.error is None
    assert asked == [
        {
            "to": "+15555550109",
            "agent": "appointment_reminders",
            "variables": {"first_name": "Aisha", "appointment": "Friday at 4 pm"},
        }
    ]
    assert result.attempt["attempt_id"] == "att-1"
    assert result.call is not None and result.call.status == "no-answer"
    assert {c.name: c.ok for c in result.checks} == {
        "call_status": True,
        "disposition": True,
        "retry_after": True,
    }
    assert result.passed


async def test_a_refused_request_is_the_results_error(
    stub_agent: tuple[str, FakeTwilioRest, list[dict[str, object]]],
) -> None:
    base_url, rest, _asked = stub_agent
    scenario = load_outbound_scenario(REMINDERS / "confirm.yaml")
    async with httpx.AsyncClient() as http:
        result = await run_outbound_scenario(scenario, rest, base_url, "wrong", http)
    assert result.error is not None and "401" in result.error
    assert not result.passed and rest.dialer.calls == {}

"""End to end: the reminder scenarios as ``callagent simulate scenarios/reminders/`` runs them.

The agent is the real server with its models (``LocalAgent``, as the simulator starts it);
``POST /api/calls/outbound`` makes its real Twilio dialler call the simulator's fake REST
API, which rings the scenario's simulated callee (a synthesised voice), sends the signed
answer webhook and opens the Media Stream back to the agent. What came of each call is read
back from the agent's API and the embedded CRM: the confirm scenario confirms the
appointment (CRM written), the opt-out scenario puts the number on the do-not-call list and
a second dial is refused.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from simulator.local_agent import LocalAgent
from simulator.scenarios.outbound import load_outbound_scenario
from simulator.scenarios.outbound_runner import OutboundResult
from simulator.scenarios.outbound_suite import run_outbound_suite
from simulator.target import Target
from simulator.voices import caller_voice

pytestmark = pytest.mark.e2e

REMINDERS = Path(__file__).parents[2] / "scenarios" / "reminders"


@pytest.fixture(scope="module")
def live() -> Iterator[tuple[LocalAgent, Target]]:
    if caller_voice.engine() is None:
        pytest.skip("needs Debian's flite for the callee's voice (apt-get install flite)")
    local = LocalAgent(mode="thread", use_environment=False)
    target = asyncio.run(local.start())
    yield local, target
    asyncio.run(local.stop())


def play(target: Target, *names: str) -> dict[str, OutboundResult]:
    scenarios = [load_outbound_scenario(REMINDERS / f"{name}.yaml") for name in names]
    results = asyncio.run(run_outbound_suite(scenarios, target))
    return {r.scenario_id: r for r in results}


def failures(result: OutboundResult) -> list[str]:
    return [f"{c.name}: {c.detail}" for c in result.checks if c.ok is not True]


def test_confirm_and_opt_out_scenarios_against_the_real_agent(
    live: tuple[LocalAgent, Target],
) -> None:
    local, target = live
    results = play(target, "confirm", "opt_out")

    confirm = results["confirm"]
    assert confirm.error is None, confirm.error
    assert confirm.passed, failures(confirm)
    assert confirm.attempt["disposition"] == "confirmed"
    assert confirm.record is not None and confirm.record["direction"] == "outbound"
    assert confirm.call is not None
    assert (
        confirm.record["provider_call_id"]
        == confirm.call.sid
        == confirm.attempt["provider_call_id"]
    )
    with sqlite3.connect(local.runtime.crm.path) as db:  # James Okafor's next appointment
        row = db.execute("SELECT status FROM appointments WHERE id = 'apt_2003'").fetchone()
    assert row == ("confirmed",)

    opt_out = results["opt_out"]
    assert opt_out.error is None, opt_out.error
    assert opt_out.passed, failures(opt_out)
    assert opt_out.attempt["disposition"] == "opted-out"
    assert opt_out.on_dnc_list is True and opt_out.redial_status == 409
    listed = httpx.get(
        f"{target.base_url}/api/dnc",
        headers={"Authorization": f"Bearer {target.operator_token}"},
    ).json()
    assert [(e["phone"], e["source"]) for e in listed["numbers"]] == [("+15555550171", "spoken")]

"""A scenario over SIP against the real server: real models, a real SIP endpoint.

The agent runs in-process on loopback listening for SIP (``CALLAGENT_SIP_LISTEN``); the
scenario's caller is the simulator's SIP phone (INVITE with PCMU/PCMA, G.711 RTP both
ways, RFC 4733 keys, BYE). Assertions are about behaviour (the expectations pass, the
keypad works over telephone-events, a barge-in cuts the bot at the SIP caller, the call
ends with the caller's BYE), never about timing.
"""

from __future__ import annotations

import asyncio

import pytest

from simulator.local_agent import LocalAgent
from simulator.scenarios.scenario_file import parse_scenario
from simulator.scenarios.suite import SuiteOptions, run_suite
from simulator.voices import caller_voice

pytestmark = pytest.mark.e2e

OVER_SIP = """\
name: hours by voice, address by key, a barge-in, over SIP
greeting:
  # the agent's name or the receptionist's: the recogniser on a loaded CI machine once
  # printed "Bright Like Dental, this is Riley"
  reply_contains: [[brightside, bright side, riley]]
steps:
  - say: What are your opening hours?
    expect:
      intent: opening_hours
      reply_contains: [monday]
  - press: "2"
    expect:
      intent: location
  - say: What are your opening hours?
  - barge_in: Sorry, where exactly are you located?
    after_ms: 800
    expect:
      interrupted: true
      intent: location
  - hang_up
"""


def test_a_scenario_runs_over_sip_against_the_real_server():
    if caller_voice.engine() is None:
        pytest.skip("needs Debian's flite for the caller voice (apt-get install flite)")

    async def run():
        local = LocalAgent(mode="thread", use_environment=False, sip=True)
        target = await local.start()
        try:
            assert target.sip_uri is not None
            return await run_suite([parse_scenario(OVER_SIP, "sip.yaml")], target, SuiteOptions())
        finally:
            await local.stop()

    [result] = asyncio.run(run())
    assert result.error is None, result.error
    assert result.call_sid and "@" in result.call_sid  # a SIP Call-ID, not a Twilio CallSid
    failed = [c for c in result.checks if c.status != "pass"]
    assert result.passed and not failed, failed
    say, press, _again, barge = result.steps[:4]
    assert say.latency_ms is not None
    assert press.latency_kind == "dtmf" and press.reply_start_s is not None
    assert barge.barge_in is not None and barge.barge_in.bot_was_speaking
    assert barge.barge_in.bot_stopped_s is not None  # the bot went quiet at the SIP caller
    assert result.clears == 0  # SIP has no Twilio 'clear'
    assert result.ended_by == "caller"

"""``callagent simulate`` against the real server: real models, real Twilio Media Streams.

The agent runs in-process on a loopback port (with a fake Twilio REST API for its
hang-ups and transfers); scenario calls are placed in real time by the phone emulator.
Assertions are about behaviour (pass/fail of expectations, a ``clear`` on barge-in,
exit codes, files written), never about timing.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import wave
from pathlib import Path

import pytest

from simulator.local_agent import LocalAgent
from simulator.scenarios import report
from simulator.scenarios.scenario_file import parse_scenario
from simulator.scenarios.suite import SuiteOptions, run_suite
from simulator.voices import caller_voice

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).parents[2]

PASSING = """\
name: hours by voice, address by key
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
      # the phone's recogniser reads the bot's "Harbor Street" as "harvest tree" now and
      # then (seen once in CI under load): any landmark of the address will do
      reply_contains: [[harbor, harbour, springfield, library]]
  - hang_up
"""

FAILING = """\
name: an expectation that cannot hold
steps:
  - say: What are your opening hours?
    expect:
      intent: location
      reply_contains: [zebra]
  - hang_up
"""

BARGE_IN = """\
name: cut off mid-answer
steps:
  - say: What are your opening hours?
  - barge_in: Sorry, where exactly are you located?
    after_ms: 800
    expect:
      interrupted: true
      intent: location
  - hang_up
"""


@pytest.fixture(scope="module")
def agent():
    """The real agent on loopback, started once for the module."""
    if caller_voice.engine() is None:
        pytest.skip("needs Debian's flite for the caller voice (apt-get install flite)")
    local = LocalAgent(mode="thread")
    target = asyncio.run(local.start())
    yield local, target
    asyncio.run(local.stop())


def scenario(text: str, name: str):
    return parse_scenario(text, f"{name}.yaml")


async def test_a_passing_scenario_passes_with_figures_and_a_stereo_recording(agent, tmp_path):
    _local, target = agent
    [result] = await run_suite(
        [scenario(PASSING, "passing")], target, SuiteOptions(recordings_dir=tmp_path)
    )
    failed = [c for c in result.checks if c.status != "pass"]
    assert result.passed and not failed, failed
    assert {c.what for c in result.checks} == {"reply_contains", "intent"}
    assert result.events_available and result.error is None
    say, press = result.steps[0], result.steps[1]
    assert say.latency_ms is not None and say.server_latency is not None
    assert press.latency_kind == "dtmf" and press.latency_ms is not None
    with wave.open(result.recording) as f:
        assert f.getnchannels() == 2 and f.getframerate() == 8000
    data = report.report_data([result], {"target": target.label})
    assert data["summary"]["checks"]["pass"] == len(result.checks)


async def test_an_expectation_that_does_not_hold_fails(agent):
    _local, target = agent
    [result] = await run_suite([scenario(FAILING, "failing")], target, SuiteOptions())
    assert not result.passed
    by_what = {c.what: c for c in result.checks}
    assert by_what["intent"].status == "fail" and "opening_hours" in by_what["intent"].actual
    assert by_what["reply_contains"].status == "fail"
    assert by_what["intent"].line == 5


async def test_a_barge_in_sees_twilio_clear_and_the_new_question_answered(agent):
    _local, target = agent
    [result] = await run_suite([scenario(BARGE_IN, "barge")], target, SuiteOptions())
    barge = result.steps[1]
    assert barge.barge_in is not None and barge.barge_in.bot_was_speaking
    assert barge.barge_in.clear_s is not None, "no Twilio clear after the caller barged in"
    assert result.clears >= 1
    assert result.passed, result.checks


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", "simulate", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "CALLAGENT_LOG_LEVEL": "WARNING"},
    )


def test_a_malformed_scenario_file_is_rejected_naming_the_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: typo\nsteps:\n  - say: Hello\n  - presss: '1'\n")
    result = run_cli(str(bad), "--check")
    assert result.returncode == 2
    assert f"{bad}:4:5" in result.stderr and "unknown key 'presss'" in result.stderr


def test_the_cli_exits_non_zero_when_an_expectation_fails(agent, tmp_path):
    local, target = agent
    (tmp_path / "a_passing.yaml").write_text(PASSING)
    (tmp_path / "b_failing.yaml").write_text(FAILING)
    out = tmp_path / "out"
    result = run_cli(
        str(tmp_path / "a_passing.yaml"),
        str(tmp_path / "b_failing.yaml"),
        "--url",
        target.base_url or "",
        f"--auth-token={local.auth_token}",  # a random token may start with "-": one argument
        f"--operator-token={local.operator_token}",
        "--out",
        str(out),
        "--no-progress",
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "PASS  a_passing" in result.stdout and "FAIL  b_failing" in result.stdout
    data = json.loads((out / "report.json").read_text())
    assert [c["passed"] for c in data["calls"]] == [True, False]
    assert (out / "report.html").read_text().count("<svg") >= 1
    assert len(list((out / "recordings").glob("*.wav"))) == 2

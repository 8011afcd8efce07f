"""``callagent bench understanding`` against the real agent: 2 requests x 1 voice.

The agent runs in-process on a loopback port; each request is one real call over
Twilio Media Streams. Assertions are about behaviour (every call measured, a decision
read from the events, a transcript from the record, reports written), never about
timing or how well the agent understood.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from simulator.local_agent import LocalAgent
from simulator.understanding import report
from simulator.understanding.bench import (
    pick_requests,
    plan_jobs,
    render_clips,
    run_calls,
)
from simulator.understanding.outcomes import OUTCOMES
from simulator.understanding.request_call import Condition
from simulator.understanding.requests import load_request_set
from simulator.voices import caller_voice

pytestmark = pytest.mark.e2e
HELD_OUT = Path(__file__).parents[2] / "scenarios" / "dental" / "requests" / "understanding.yaml"


def test_two_requests_in_one_voice_are_two_measured_calls(tmp_path: Path):
    if caller_voice.engine() is None:
        pytest.skip("needs Debian's flite for the caller voice (apt-get install flite)")
    requests = pick_requests(load_request_set(HELD_OUT).requests, 2)
    jobs = plan_jobs(requests, ["slt"], [Condition()])
    clips = render_clips(requests, ["slt"])

    async def bench():
        local = LocalAgent(mode="thread", use_environment=False)
        target = await local.start()
        try:
            return await run_calls(target, jobs, clips, calls_at_once=2)
        finally:
            await local.stop()

    rows = asyncio.run(bench())

    assert [r.request for r in rows] == [r.text for r in requests]
    assert {r.intent for r in rows} == {"opening_hours", "location"}
    for r in rows:
        assert r.error is None, r.error
        assert r.call_id
        assert r.outcome in {o.value for o in OUTCOMES}
        assert r.decided_intent is not None and r.band in ("act", "clarify", "repair")
        assert any(e["type"] == "nlu" for e in r.events)
        assert r.transcript  # the recogniser's words, from the call record
        assert r.words and r.word_errors is not None
    data = report.to_json(rows, {"voices": ["slt"], "calls_at_once": 2, "wall_time_s": 0})
    saved = tmp_path / "understanding.json"
    saved.write_text(json.dumps(data))
    summary = json.loads(saved.read_text())["summary"]["conditions"]["clean"]
    assert summary["overall"]["calls"] == 2
    assert set(summary["by_intent"]) == {"opening_hours", "location"}
    assert "<svg" in report.html(data)

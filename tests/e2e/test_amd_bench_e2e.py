"""End to end: ``callagent bench amd``'s full call path on two answers.

The agent is the real server with its models (``LocalAgent``); ``POST /api/calls/outbound``
makes it dial the simulator's fake Twilio, whose callee plays exactly a generated answer:
a person's hello, a voicemail greeting with a beep. The verdict and outcome come from the
agent's call record, the timings from what the callee's phone heard.
"""

from __future__ import annotations

import asyncio

import pytest

from simulator.bench.amd_answers import MACHINE, PERSON, TUNING, generate
from simulator.bench.amd_call_path import CallPathOptions, measure_call_path
from simulator.voices import caller_voice

pytestmark = pytest.mark.e2e


def test_a_person_and_a_voicemail_through_the_real_call_path() -> None:
    if caller_voice.engine() is None:
        pytest.skip("needs Debian's flite for the answers' voices (apt-get install flite)")
    answers = generate(4, seed=17, phrasing=TUNING)
    person = next(a for a in answers if a.truth == PERSON and a.kind == "short-hello")
    machine = next(a for a in answers if a.truth == MACHINE and a.beep_end_s is not None)
    options = CallPathOptions(concurrency=2, server="thread", use_environment=False)

    results, run = asyncio.run(measure_call_path([person, machine], options))

    heard, voicemail = results
    assert heard.error is None and voicemail.error is None, (heard.error, voicemail.error)
    assert heard.verdict in ("human", "unknown")
    assert heard.opening_after_speech_s is not None  # the opening reached the phone
    assert voicemail.verdict == "machine" and voicemail.decided_after_s is not None
    assert voicemail.disposition == "voicemail-left"
    assert voicemail.message_after_beep_s is not None and voicemail.message_after_beep_s > 0
    assert run.most_in_flight == 2

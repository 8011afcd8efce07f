"""Simulated callers, piece by piece: scenario files, noise and line, checks, reports,
the per-call event bus, and the barge-in and VAD processors (no server, no models)."""

from __future__ import annotations

import asyncio
import json
import wave

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from bot.operator.auth import OperatorAuth
from bot.operator.events import CallEventBus, create_call_events_router
from integrations.speech.stt import trim_lead_in
from processors.barge_in import is_backchannel
from simulator.phone import LineConditions, _Line
from simulator.scenarios import report
from simulator.scenarios.checks import CallFacts, check_step
from simulator.scenarios.results import BargeIn, CallResult, StepResult, summarize
from simulator.scenarios.scenario import ScenarioError, check_against_agent
from simulator.scenarios.scenario_file import parse_scenario
from simulator.voices.noise import (
    BackgroundNoise,
    NoiseSpec,
    active_rms,
    noise_gain,
    normalize_active,
    snr_db,
)

TOKEN = "operator-token-0123456789"

VALID = """\
name: hours and a person
caller: {voice: rms, rate: 1.2, number: "+15555550100"}
noise: {type: pink, snr_db: 12}
line: {packet_loss: 0.01, jitter_ms: 20}
greeting:
  reply_contains: [[brightside, bright side]]
steps:
  - say: What are your opening hours?
    expect:
      intent: opening_hours
      reply_contains: [monday, [saturday, sunday]]
  - barge_in: Where are you?
    after_ms: 600
    expect: {interrupted: true, resumes: false}
  - silence: 1.5
  - press: "0"
    expect: {escalation: explicit_request, call_ends: true}
  - hang_up
"""


# Scenario files


def test_a_valid_scenario_is_read_with_every_field():
    s = parse_scenario(VALID, "calls.yaml")
    assert s.name == "hours and a person" and s.id == "calls"
    assert (s.caller.voice, s.caller.rate, s.caller.number) == ("rms", 1.2, "+15555550100")
    assert s.noise == NoiseSpec("pink", 12.0, 0)
    assert s.line.packet_loss == 0.01 and s.line.jitter_ms == 20
    assert [st.action for st in s.steps] == ["say", "barge_in", "silence", "press", "hang_up"]
    first = s.steps[0]
    assert first.expect.intent == ("opening_hours",)
    assert first.expect.reply_contains == (("monday",), ("saturday", "sunday"))
    assert s.steps[1].after_ms == 600 and s.steps[1].expect.interrupted is True
    assert s.steps[3].expect.escalation.trigger == "explicit_request"
    assert s.greeting.reply_contains == (("brightside", "bright side"),)


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("steps:\n  - say: hi\n  - sya: hello\n", 3, "unknown key 'sya'"),
        ("steps:\n  - say: hi\n    expect:\n      intnet: x\n", 4, "unknown key 'intnet'"),
        ("steps:\n  - press: '12x'\n", 2, "'x' are not keys"),
        ("steps:\n  - say: hi\n    expect: {interrupted: true}\n", 3, "only applies to barge_in"),
        ("noise: {type: rain, snr_db: 3}\nsteps: [hang_up]\n", 1, "noise.type: must be one of"),
        ("steps:\n  - hang_up\n  - say: more\n", 3, "comes after hang_up"),
        ("steps: [\n", 2, "invalid YAML"),
        ("name: nothing to do\n", 1, "has no 'steps'"),
        ("steps:\n  - silence: -1\n", 2, "silence: must be between"),
        ("caller: {voice: joe}\nsteps: [hang_up]\n", 1, "unknown voice"),
    ],
)
def test_malformed_scenarios_are_rejected_naming_the_line(text, line, words):
    with pytest.raises(ScenarioError) as e:
        parse_scenario(text, "bad.yaml")
    assert e.value.line == line
    assert str(e.value).startswith(f"bad.yaml:{line}")
    assert words in str(e.value)


def test_an_unknown_scenario_key_names_the_file_the_line_and_the_allowed_keys():
    with pytest.raises(ScenarioError) as e:
        parse_scenario("name: x\ncaller:\n  voice: slt\n  speed: 2\nsteps: [hang_up]\n", "k.yaml")
    assert e.value.line == 4
    assert str(e.value).startswith("k.yaml:4:3: caller.speed: unknown key 'speed'")
    assert "(allowed: voice, rate, number)" in str(e.value)


def test_a_wrong_scenario_type_names_the_field_path_and_the_line():
    text = "steps:\n  - say: hi\n  - say: again\n    expect:\n      call_ends: maybe\n"
    with pytest.raises(ScenarioError) as e:
        parse_scenario(text, "t.yaml")
    assert str(e.value) == "t.yaml:5:7: steps[2].expect.call_ends: must be true or false"


def test_unknown_intents_are_reported_against_the_agent():
    s = parse_scenario(
        "steps:\n  - say: hi\n    expect:\n      intent: openin_hours\n", "typo.yaml"
    )
    errors = check_against_agent(s, ["opening_hours", "location"])
    assert len(errors) == 1 and errors[0].line == 4 and "openin_hours" in str(errors[0])


def test_the_shipped_dental_scenarios_are_valid_and_cover_the_agent():
    from pathlib import Path

    from bot.agent import load_agent
    from bot.settings import REFERENCE_AGENT
    from simulator.scenarios.scenario_file import load_scenarios

    scenarios, errors = load_scenarios([Path(__file__).parents[2] / "scenarios" / "dental"])
    assert not errors
    agent = load_agent(REFERENCE_AGENT)
    for s in scenarios:
        assert not check_against_agent(s, [i.name for i in agent.intents])
    expected = {i for s in scenarios for st in s.steps for i in st.expect.intent}
    assert {i.name for i in agent.intents} <= expected
    actions = {st.action for s in scenarios for st in s.steps}
    assert actions == {"say", "press", "silence", "barge_in", "hang_up"}
    triggers = {
        st.expect.escalation.trigger
        for s in scenarios
        for st in s.steps
        if st.expect.escalation and st.expect.escalation.trigger
    }
    assert triggers >= {"explicit_request", "out_of_scope", "failed_turns", "negative_sentiment"}
    assert {s.noise.kind for s in scenarios if s.noise} >= {"babble", "pink"}
    assert any(s.line for s in scenarios)


# Caller audio: noise and line


def _tone(seconds: float, level: float) -> bytes:
    t = np.arange(int(seconds * 8000)) / 8000
    x = np.sin(2 * np.pi * 300 * t) * level * np.sqrt(2)
    return np.round(x).astype("<i2").tobytes()


@pytest.mark.parametrize("kind", ["white", "pink"])
def test_noise_is_mixed_at_the_exact_snr(kind):
    speech = normalize_active(_tone(2.0, 1000.0))
    assert active_rms(speech) == pytest.approx(2600, rel=1e-3)
    noise = BackgroundNoise.for_speech(NoiseSpec(kind, 10.0))
    bed = b"".join(noise.chunk(i) for i in range(1500))  # the whole 30 s loop
    assert snr_db(speech, bed) == pytest.approx(10.0, abs=0.05)
    assert noise_gain(2600.0, 1.0, 20.0) == pytest.approx(260.0)


def test_packet_loss_matches_its_rate_and_jitter_keeps_order():
    line = _Line(LineConditions(packet_loss=0.05, loss_burst=3, jitter_ms=60, seed=1))
    lost = [line.frame_lost() for _ in range(20000)]
    assert np.mean(lost) == pytest.approx(0.05, abs=0.01)
    runs = np.diff(np.flatnonzero(np.diff(np.r_[0, lost, 0])))[::2]
    assert runs.mean() == pytest.approx(3.0, rel=0.25)  # bursts
    due = [line.send_time(i * 0.02) for i in range(500)]
    assert due == sorted(due) and max(d - i * 0.02 for i, d in enumerate(due)) <= 0.06
    with pytest.raises(ValueError):
        LineConditions(packet_loss=1.5)


def test_the_stt_drops_a_long_quiet_lead_in():
    pcm = b"\x00\x00" * 8000 + _tone(0.5, 2000.0)
    trimmed = trim_lead_in(pcm, 8000)
    assert len(trimmed) / 16000 == pytest.approx(0.65, abs=0.03)


# Checks and reports


def _facts(**kw) -> CallFacts:
    return CallFacts(events_available=True, **kw)


def test_checks_pass_and_fail_on_events_and_transcript():
    s = parse_scenario(VALID, "x.yaml")
    step = StepResult(1, "say", "say", started_s=1.0, reply_start_s=2.0, latency_ms=400)
    step.heard = "We're open Monday to Friday, and Saturday mornings."
    step.events = [{"type": "nlu", "intent": "opening_hours", "band": "act", "confidence": 0.97}]
    checks = check_step(step, s.steps[0].expect, _facts())
    assert [c.status for c in checks] == ["pass", "pass", "pass"]
    step.events = [{"type": "nlu", "intent": "location", "band": "act", "confidence": 0.9}]
    step.heard = "We're at 42 Harbor Street."
    statuses = {
        c.what + str(i): c.status
        for i, c in enumerate(check_step(step, s.steps[0].expect, _facts()))
    }
    assert list(statuses.values()) == ["fail", "fail", "fail"]
    unverified = check_step(step, s.steps[0].expect, CallFacts(events_available=False))
    assert unverified[0].status == "unverified"


def test_barge_in_and_escalation_checks():
    s = parse_scenario(VALID, "x.yaml")
    step = StepResult(2, "barge_in", "barge_in", caller_onset_s=5.0, caller_end_s=6.0)
    step.barge_in = BargeIn(5.0, True, bot_stopped_s=5.18, clear_s=5.16)
    assert [c.status for c in check_step(step, s.steps[1].expect, _facts())] == ["pass", "pass"]
    step.barge_in = BargeIn(5.0, True, bot_stopped_s=7.5, clear_s=None)
    assert check_step(step, s.steps[1].expect, _facts())[0].status == "fail"

    press = StepResult(4, "press", "press 0", started_s=9.0, call_ended_by="network")
    press.events = [{"type": "escalation", "trigger": "explicit_request", "reason": "asked"}]
    facts = _facts(rest_visible=True, transfers=[(10.0, "number:+15555550100")])
    checks = check_step(press, s.steps[3].expect, facts)
    assert [c.status for c in checks] == ["pass", "pass"]
    assert "number:+15555550100" in checks[0].actual
    press.events = [{"type": "escalation", "trigger": "failed_turns", "reason": "x"}]
    assert check_step(press, s.steps[3].expect, facts)[0].status == "fail"


def test_reports_summarise_and_render(tmp_path):
    call = CallResult("hours", "hours", "hours.yaml", call_sid="CA1", events_available=True)
    for i, ms in enumerate([300.0, 400.0, 900.0], 1):
        st = StepResult(i, "say", f"say {i}", latency_ms=ms)
        st.events = [
            {
                "type": "latency",
                "kind": "turn",
                "total_ms": ms - 50,
                "stages_ms": {"endpointing": 200.0, "stt": 80.0},
            }
        ]
        call.steps.append(st)
    call.steps[0].checks = [report.Check(1, "intent", "fail", "opening_hours", "location", 7)]
    data = report.report_data([call], {"target": "t"})
    summary = data["summary"]
    assert summary["turn_latency"]["p50_ms"] == 400.0 and summary["checks"]["fail"] == 1
    assert summary["server_stages_p50_ms"] == {"endpointing": 200.0, "stt": 80.0}
    report.write_json(tmp_path / "r.json", data)
    assert json.loads((tmp_path / "r.json").read_text())["calls"][0]["passed"] is False
    report.write_html(tmp_path / "r.html", data, [call])
    page = (tmp_path / "r.html").read_text()
    assert "<svg" in page and "http" not in page.split("<body>")[1].split("<h2>")[0]
    lines = report.call_lines(call)
    assert lines[0].startswith("FAIL  hours") and "(line 7)" in lines[1]
    assert summarize([call])["calls_passed"] == 0


def test_stereo_recording(tmp_path):
    from simulator.scenarios.runner import write_recording

    class Call:
        def sent_audio(self):
            return _tone(0.5, 1000)

        def heard_audio(self):
            return _tone(0.3, 500)

    write_recording(Call(), tmp_path / "c.wav")
    with wave.open(str(tmp_path / "c.wav")) as f:
        assert (f.getnchannels(), f.getframerate(), f.getnframes()) == (2, 8000, 4000)


# The per-call event bus


async def test_event_bus_keeps_calls_apart_and_bounded():
    bus = CallEventBus(max_calls=2, max_events=3, keep_s=60)
    bus.open("call1", "CA1")
    for i in range(5):
        bus.publish("call1", "nlu", {"intent": f"i{i}"})
    log = bus.get("CA1")
    assert [e.seq for e in log.events] == [3, 4, 5] and log.dropped == 2
    assert bus.get("call1") is log and bus.get("nope") is None
    waiter = asyncio.create_task(log.wait(5))
    await asyncio.sleep(0)
    bus.publish("call1", "reply", {})
    await asyncio.wait_for(waiter, 1)
    for n in range(2, 5):
        bus.open(f"call{n}")
        bus.end(f"call{n - 1}")
    assert len(bus) <= 3 and bus.get("CA1") is None


def test_events_endpoint_needs_the_operator_token():
    bus = CallEventBus()
    bus.open("abc", "CA9")
    bus.publish("abc", "nlu", {"intent": "location", "band": "act"})
    app = FastAPI()
    app.include_router(create_call_events_router(bus, OperatorAuth(TOKEN)))
    client = TestClient(app)
    assert client.get("/api/calls/CA9/events").status_code == 401
    auth = {"Authorization": f"Bearer {TOKEN}"}
    body = client.get("/api/calls/CA9/events", headers=auth).json()
    assert body["call_id"] == "abc" and body["events"][0]["intent"] == "location"
    assert client.get("/api/calls/CA9/events?after=1", headers=auth).json()["events"] == []
    assert client.get("/api/calls/zzz/events", headers=auth).status_code == 404
    closed = FastAPI()
    closed.include_router(create_call_events_router(bus, OperatorAuth("")))
    assert TestClient(closed).get("/api/calls/CA9/events", headers=auth).status_code == 403


# Backchannels


@pytest.mark.parametrize("text", ["Mm-hmm.", "okay", "Okay, okay.", "uh huh", "Right.", "", "yes"])
def test_backchannels(text):
    assert is_backchannel(text)


@pytest.mark.parametrize("text", ["Where are you?", "yes please book it", "stop", "what?"])
def test_not_backchannels(text):
    assert not is_backchannel(text)


def test_yes_answers_a_question_the_bot_asked():
    assert is_backchannel("yes") and not is_backchannel("yes", question_pending=True)


# The barge-in processors in a pipeline


def _context_frame(*messages):
    from pipecat.frames.frames import LLMContextFrame
    from pipecat.processors.aggregators.llm_context import LLMContext

    return LLMContextFrame(context=LLMContext(messages=list(messages)))


async def test_a_backchannel_turn_resumes_the_cut_reply():
    from pipecat.frames.frames import LLMContextFrame, TTSSpeakFrame
    from pipecat.tests.utils import SleepFrame, run_test

    from processors.barge_in import BackchannelFilter, ReplyInterruptedFrame, ReplyResumedFrame

    remaining = "and on Saturday from nine to one."
    down, _ = await run_test(
        BackchannelFilter(understood=lambda text: "where" in text.lower()),
        frames_to_send=[
            ReplyInterruptedFrame(remaining=remaining, heard="We're open Monday to Friday,"),
            SleepFrame(0.05),
            _context_frame({"role": "user", "content": "M. H. M."}),
            SleepFrame(0.05),
            ReplyInterruptedFrame(remaining=remaining, heard=""),
            SleepFrame(0.05),
            _context_frame({"role": "user", "content": "Where are you?"}),
        ],
        expected_down_frames=[ReplyResumedFrame, TTSSpeakFrame, LLMContextFrame],
    )
    assert down[1].text == remaining


async def test_an_empty_turn_that_cut_the_reply_resumes_it():
    from pipecat.frames.frames import TTSSpeakFrame
    from pipecat.tests.utils import SleepFrame, run_test

    from processors.barge_in import BackchannelFilter, ReplyInterruptedFrame, ReplyResumedFrame

    down, _ = await run_test(
        BackchannelFilter(),
        frames_to_send=[
            ReplyInterruptedFrame(remaining="We're closed on Sundays.", heard=""),
            SleepFrame(0.05),
            _context_frame(
                {"role": "user", "content": "What are your hours?"},
                {"role": "developer", "content": "The user may have said something..."},
            ),
        ],
        expected_down_frames=[ReplyResumedFrame, TTSSpeakFrame],
    )


async def test_a_yes_answers_a_question_that_was_heard():
    from pipecat.frames.frames import LLMContextFrame
    from pipecat.tests.utils import SleepFrame, run_test

    from processors.barge_in import BackchannelFilter, ReplyInterruptedFrame

    await run_test(
        BackchannelFilter(),
        frames_to_send=[
            ReplyInterruptedFrame(remaining="Is there anything else?", heard="Did you want that?"),
            SleepFrame(0.05),
            _context_frame({"role": "user", "content": "Yes."}),
        ],
        expected_down_frames=[LLMContextFrame],
    )


async def test_the_tracker_reports_the_clause_an_interruption_cut():
    from pipecat.frames.frames import (
        BotStartedSpeakingFrame,
        BotStoppedSpeakingFrame,
        InterruptionFrame,
    )
    from pipecat.tests.utils import SleepFrame, run_test

    from integrations.speech.tts import SpokenClauseFrame
    from processors.barge_in import ReplyInterruptedFrame, ReplyProgressTracker

    clauses = ["We're open Monday to Friday,", "from eight to six.", "Closed on Sundays."]
    frames = [BotStartedSpeakingFrame()]
    for i, clause in enumerate(clauses[:2]):
        frames += [SpokenClauseFrame(clause, " ".join(clauses[i:]), i), SleepFrame(0.02)]
    frames += [InterruptionFrame(), SleepFrame(0.05), BotStoppedSpeakingFrame()]
    frames += [SleepFrame(0.05), InterruptionFrame()]  # the bot is silent: nothing to report
    _, up = await run_test(
        ReplyProgressTracker(),
        frames_to_send=frames,
        expected_up_frames=[ReplyInterruptedFrame],
    )
    assert up[0].remaining == "from eight to six. Closed on Sundays."
    assert up[0].heard == "We're open Monday to Friday,"


def test_the_phone_vad_hears_a_short_yes_and_ignores_babble():
    from pipecat.audio.vad.vad_analyzer import VADParams, VADState

    from integrations.speech.vad import PhoneVADAnalyzer

    def speaking_windows(pcm: bytes) -> int:
        vad = PhoneVADAnalyzer(params=VADParams(start_secs=0.1, stop_secs=0.2))
        vad.set_sample_rate(8000)
        states = [vad._run_analyzer(pcm[i : i + 320]) for i in range(0, len(pcm) - 320, 320)]
        return sum(s == VADState.SPEAKING for s in states)

    from simulator.voices import caller_voice

    if caller_voice.engine() is None:
        pytest.skip("needs flite or espeak-ng")
    yes = normalize_active(caller_voice.synthesize("Yes."))
    assert speaking_windows(b"\x00\x00" * 8000 + yes + b"\x00\x00" * 8000) > 0
    babble = BackgroundNoise.for_speech(NoiseSpec("babble", 10.0, seed=3))
    assert speaking_windows(b"".join(babble.chunk(i) for i in range(1500))) == 0


@pytest.mark.parametrize(
    ("seed", "question"),
    [
        (4, "Can I register as a new patient?"),
        (4, "Do you treat kids?"),
        (10, "What are your hours?"),
    ],
)
def test_the_phone_vad_hears_a_question_in_babble_after_a_quiet_stretch(seed, question):
    """The call path (``analyze_audio``) skips Silero on quiet audio; it must still hear
    a question that follows seconds of babble (these three went unheard when the model
    resumed without context)."""
    from pipecat.audio.vad.vad_analyzer import VADParams, VADState

    from integrations.speech.vad import PhoneVADAnalyzer
    from simulator.voices import caller_voice

    if caller_voice.engine() is None:
        pytest.skip("needs flite or espeak-ng")
    babble = BackgroundNoise.for_speech(NoiseSpec("babble", 10.0, seed=seed))
    speech = normalize_active(caller_voice.synthesize(question))
    speech += b"\x00" * (-len(speech) % 320)
    lead_in = 300  # 6 s of babble: the greeting and the pause after it
    chunks = [babble.chunk(i) for i in range(lead_in)]
    for n, i in enumerate(range(0, len(speech), 320)):
        mixed = np.frombuffer(speech[i : i + 320], "<i2").astype(np.int32)
        mixed += np.frombuffer(babble.chunk(lead_in + n), "<i2")
        chunks.append(np.clip(mixed, -32768, 32767).astype("<i2").tobytes())
    speech_end = len(chunks)
    chunks += [babble.chunk(speech_end + i) for i in range(100)]

    async def speaking_chunks() -> list[int]:
        vad = PhoneVADAnalyzer(
            params=VADParams(confidence=0.7, start_secs=0.064, stop_secs=0.2, min_volume=0.6)
        )
        vad.set_sample_rate(8000)
        states = [await vad.analyze_audio(chunk) for chunk in chunks]
        return [i for i, state in enumerate(states) if state == VADState.SPEAKING]

    speaking = asyncio.run(speaking_chunks())
    assert any(lead_in <= i <= speech_end for i in speaking)
    assert not any(i < lead_in for i in speaking)


def test_the_phone_vad_measures_loudness_only_for_windows_that_could_be_speech(monkeypatch):
    """Loudness decides nothing for a window whose confidence failed: it is not measured
    there (on the event loop it was a seventh of the work with sixteen calls)."""
    from pipecat.audio import volume as pipecat_volume
    from pipecat.audio.vad.vad_analyzer import VADParams, VADState

    from integrations.speech.vad import PhoneVADAnalyzer
    from simulator.voices import caller_voice

    if caller_voice.engine() is None:
        pytest.skip("needs flite or espeak-ng")
    measured = 0
    measure = pipecat_volume.calculate_audio_volume

    def counting(audio, sample_rate):
        nonlocal measured
        measured += 1
        return measure(audio, sample_rate)

    monkeypatch.setattr(pipecat_volume, "calculate_audio_volume", counting)
    speech = normalize_active(caller_voice.synthesize("I'd like to book a cleaning."))
    pcm = b"\x00\x00" * 16000 + speech + b"\x00\x00" * 16000
    vad = PhoneVADAnalyzer(params=VADParams(start_secs=0.064, stop_secs=0.2))
    vad.set_sample_rate(8000)

    async def feed() -> list[VADState]:
        return [await vad.analyze_audio(pcm[i : i + 320]) for i in range(0, len(pcm), 320)]

    states = asyncio.run(feed())
    windows = len(pcm) // vad._vad_frames_num_bytes
    assert VADState.SPEAKING in states and states[-1] == VADState.QUIET
    assert 0 < measured < len(speech) // vad._vad_frames_num_bytes < windows


@pytest.mark.parametrize("percentile", [50.0, 20.0, 90.0])
def test_the_noise_floor_is_numpys_percentile_of_the_recent_windows(percentile):
    from integrations.speech.vad import MIN_FLOOR_DB, NoiseFloor

    rng = np.random.default_rng(5)
    floor = NoiseFloor(window_s=1.0, percentile=percentile)
    seen: list[float] = []
    for level in rng.uniform(-90, -5, 400):
        floor.update(float(level), 0.032)
        seen.append(max(float(level), MIN_FLOOR_DB))
        window = seen[-round(1.0 / 0.032) :]  # 1 s of 32 ms windows
        assert floor.db == pytest.approx(float(np.percentile(window, percentile)))

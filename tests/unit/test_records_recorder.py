"""The call recorder observing real pipelines: one complete record per call."""

import pytest
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    CancelFrame,
    InterruptionFrame,
    LLMTextFrame,
    TranscriptionFrame,
    TTSSpeakFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.tests.utils import SleepFrame, run_test

from processors.call_outcome import CallFacts, OutcomePolicy
from processors.call_recorder import CallRecorder
from processors.frames import (
    Band,
    BotReplyFrame,
    CallerRecordFrame,
    DecisionPath,
    EscalationFrame,
    NLUResultFrame,
    TransferResultFrame,
)


class Pass(FrameProcessor):
    async def process_frame(self, frame, direction: FrameDirection):
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)


def speak(text):
    return [
        TTSSpeakFrame(text),
        BotStartedSpeakingFrame(),
        SleepFrame(0.02),
        BotStoppedSpeakingFrame(),
    ]


def nlu(text, intent, confidence=0.92, band=Band.ACT, **kw):
    return NLUResultFrame(
        text=text,
        intent=intent,
        confidence=confidence,
        band=band,
        path=DecisionPath.CLASSIFIER,
        elapsed_ms=6.5,
        **kw,
    )


async def test_a_call_through_a_pipeline_leaves_a_complete_record(call_store):
    recorder = CallRecorder(
        call_store, call_id="c1", transport="twilio", caller="sha256:ab", agent="A"
    )
    frames = [
        *speak("Hello, dental office."),
        TranscriptionFrame("when are you open", "caller", "t"),
        nlu(
            "when are you open",
            "opening_hours",
            runner_up="location",
            margin=0.5,
            entities={"date": {"text": "today"}},
        ),
        BotReplyFrame(text="Nine to five.", intent="opening_hours"),
        TTSSpeakFrame("Nine to five."),
        BotStartedSpeakingFrame(),
        SleepFrame(0.05),
        InterruptionFrame(),
        SleepFrame(0.02),
        BotStoppedSpeakingFrame(),
        TranscriptionFrame("thanks bye", "caller", "t"),
        nlu("thanks bye", "goodbye"),
        BotReplyFrame(text="Goodbye!", intent="goodbye", ends_call=True),
        *speak("Goodbye!"),
    ]
    await run_test(Pass(), frames_to_send=frames, expected_down_frames=None, observers=[recorder])
    recorder.add_latency(420.0, {"endpointing": 200.0, "stt": 60.0, "tts": 40.0})  # late: updates
    assert call_store.flush()

    call = call_store.get_call("c1")
    assert call["transport"] == "twilio" and call["caller"] == "sha256:ab" and call["agent"] == "A"
    assert call["outcome"] == "resolved" and call["turn_count"] == 2
    assert call["primary_intent"] == "opening_hours"
    assert call["duration_secs"] > 0
    greeting, ask, bye = call["turns"]
    assert greeting["kind"] == "greeting" and greeting["bot_text"] == "Hello, dental office."
    assert ask["caller_text"] == "when are you open" and ask["bot_text"] == "Nine to five."
    assert (ask["intent"], ask["confidence"], ask["band"], ask["path"]) == (
        "opening_hours",
        0.92,
        "act",
        "classifier",
    )
    assert ask["runner_up"] == "location" and ask["entities"] == {"date": {"text": "today"}}
    assert ask["interrupted"] is True and ask["stages_ms"]["nlu"] == 6.5
    assert bye["interrupted"] is False and bye["reply_intent"] == "goodbye"


async def test_latency_breakdown_is_attached_to_its_turn(call_store):
    recorder = CallRecorder(call_store, call_id="c2", transport="webrtc")
    for frame in [TTSSpeakFrame("Hi"), BotStartedSpeakingFrame()]:
        recorder.observe(frame)
    recorder.add_latency(350.0, {"tts": 40.0, "transport": 10.0}, "greeting")
    for frame in [
        BotStoppedSpeakingFrame(),
        TranscriptionFrame("price?", "u", "t"),
        nlu("price?", "prices"),
        TTSSpeakFrame("It costs 80 dollars."),
        BotStartedSpeakingFrame(),
    ]:
        recorder.observe(frame)
    recorder.add_latency(
        512.5,
        {
            "endpointing": 200.0,
            "end_of_turn": 110.0,
            "stt": 70.0,
            "llm": 3.0,
            "tts": 45.0,
            "transport": 8.0,
            "pipeline": 4.0,
        },
    )
    recorder.observe(BotStoppedSpeakingFrame())
    recorder.finish()
    call_store.flush()
    greeting, turn = call_store.get_call("c2")["turns"]
    assert greeting["latency_ms"] == 350.0
    assert turn["latency_ms"] == 512.5
    assert turn["stages_ms"] == {
        "endpointing": 310.0,
        "stt": 70.0,
        "nlu": 6.5,
        "llm": 3.0,
        "tts": 45.0,
        "transport": 8.0,
        "other": 4.0,
    }


async def test_escalation_transfer_and_crm_prefetch_are_recorded(call_store):
    recorder = CallRecorder(call_store, call_id="c3", transport="twilio")
    frames = [
        CallerRecordFrame(elapsed_ms=132.0),
        CallerRecordFrame(elapsed_ms=9000.0, update=True),  # a later change, not the prefetch
        TranscriptionFrame("let me talk to a person", "u", "t"),
        nlu("let me talk to a person", "talk_to_human"),
        EscalationFrame(
            trigger="explicit_request",
            reason="caller asked for a person",
            summary={"intent": "talk_to_human"},
        ),
        *speak("Connecting you now."),
        TransferResultFrame(ok=True, method="twilio_redirect", transfer_result="completed"),
        SleepFrame(0.02),
    ]
    await run_test(Pass(), frames_to_send=frames, expected_down_frames=None, observers=[recorder])
    call_store.flush()
    call = call_store.get_call("c3")
    assert call["outcome"] == "escalated"
    assert call["crm_prefetch_ms"] == 132.0
    assert call["escalation"] == {
        "trigger": "explicit_request",
        "reason": "caller asked for a person",
        "summary": {"intent": "talk_to_human"},
        "transfer_result": "completed",
        "at": call["escalation"]["at"],
    }


async def test_bad_frames_and_a_failing_store_never_reach_the_pipeline(call_store):
    class BrokenStore:
        def start_call(self, record):
            raise RuntimeError("database on fire")

        save_turn = update_call = end_call = start_call

    bad = NLUResultFrame(text=None, intent="weird", confidence="very", entities={"x": object()})
    bad.band = None
    weird = LLMTextFrame(text=None)
    recorders = [
        CallRecorder(BrokenStore(), call_id="b1", transport="twilio"),
        CallRecorder(call_store, call_id="b2", transport="twilio"),
    ]
    frames = [bad, weird, TranscriptionFrame("still fine", "u", "t"), nlu("still fine", "prices")]
    await run_test(
        Pass(),
        frames_to_send=frames,
        expected_down_frames=[NLUResultFrame, LLMTextFrame, TranscriptionFrame, NLUResultFrame],
        observers=recorders,
    )
    call_store.flush()
    turns = call_store.get_call("b2")["turns"]
    assert len(turns) == 2
    assert turns[0]["intent"] == "weird" and turns[0]["confidence"] is None
    assert turns[0]["band"] is None and turns[0]["entities"]["x"].startswith("<object")
    assert turns[1]["caller_text"] == "still fine" and turns[1]["intent"] == "prices"


async def test_hang_up_mid_flow_is_abandoned_and_fatal_error_is_failed(call_store):
    hung_up = CallRecorder(call_store, call_id="h1", transport="twilio")
    for frame in [
        TranscriptionFrame("cancel", "u", "t"),
        nlu("cancel", "cancel_appointment", 0.6, Band.CLARIFY),
        TTSSpeakFrame("Did you want to cancel?"),
        CancelFrame(),
    ]:
        hung_up.observe(frame)
    failed = CallRecorder(call_store, call_id="f1", transport="twilio")
    for frame in [
        TranscriptionFrame("hello", "u", "t"),
        nlu("hello", "greet"),
        CancelFrame(reason="fatal error: boom"),
    ]:  # how the worker cancels on one
        failed.observe(frame)
    silent = CallRecorder(call_store, call_id="s1", transport="webrtc")
    silent.observe(TTSSpeakFrame("Hello?"))
    silent.finish()
    call_store.flush()
    assert call_store.get_call("h1")["outcome"] == "abandoned"
    assert call_store.get_call("h1")["end_reason"] == "caller hung up"
    assert (call_store.get_call("f1")["outcome"], call_store.get_call("f1")["end_reason"]) == (
        "failed",
        "pipeline error",
    )
    assert call_store.get_call("s1")["outcome"] == "abandoned"


@pytest.mark.parametrize(
    ("facts", "outcome"),
    [
        (CallFacts(), "abandoned"),
        (CallFacts(caller_turns=2, acted=True, last_band="act"), "resolved"),
        (CallFacts(caller_turns=2, acted=True, last_band="repair"), "abandoned"),
        (CallFacts(caller_turns=1, goodbye=True, last_band="repair"), "resolved"),
        (CallFacts(caller_turns=1, acted=True, escalated=True), "escalated"),
        (CallFacts(caller_turns=1, escalated=True, failed=True), "failed"),
    ],
)
def test_outcome_policy(facts, outcome):
    assert OutcomePolicy().decide(facts) == outcome


def test_keyed_digits_are_stored_masked():
    from processors.call_outcome import mask_keyed_digits

    assert mask_keyed_digits("DTMF: 4729#") == "DTMF: #####"
    assert mask_keyed_digits("what are your hours") == "what are your hours"

"""The answering-machine detector on real synthesized answers (Silero VAD, beep detector).

What it pushes, in which order: the opening after a person's hello (or after silence),
nothing of the callee's audio or words before the verdict, and for a machine the opening
withdrawn, the voicemail after the beep, the outcome and the end of the call.
"""

import shutil
from types import SimpleNamespace
from typing import Any

import pytest
from pipecat.audio.vad.vad_analyzer import VADParams
from pipecat.frames.frames import (
    EndWorkerFrame,
    Frame,
    InputAudioRawFrame,
    InterruptionFrame,
    TranscriptionFrame,
    TTSSpeakFrame,
    UserStartedSpeakingFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import (
    LLMContextAggregatorPair,
    LLMUserAggregatorParams,
)
from pipecat.processors.frame_processor import FrameProcessor
from pipecat.tests.utils import SleepFrame, run_test
from pipecat.turns.user_start import VADUserTurnStartStrategy
from pipecat.turns.user_stop.speech_timeout_user_turn_stop_strategy import (
    SpeechTimeoutUserTurnStopStrategy,
)
from pipecat.turns.user_turn_strategies import UserTurnStrategies

from bot.call.outbound import make_answering_machine
from bot.call.pipeline import CallSpec
from integrations.speech.vad import PhoneVADAnalyzer
from processors.answering_machine import AnsweringMachineDetector, Stage
from processors.frames import GreetingFrame, MachineVerdictFrame, OutcomeFrame
from processors.outbound_call import OutboundCall
from processors.outbound_config import OutboundConfig
from simulator.bench.amd_answers import tone
from simulator.voices.caller_voice import silence, synthesize
from tests.support.frames import transcript

pytestmark = pytest.mark.skipif(not shutil.which("flite"), reason="needs flite")

VOICEMAIL = "Hi, this is Riverside Dental about your appointment. Please call us back."
GREETING = (
    "Hi, you've reached Maria. I can't take your call right now. "
    "Please leave a message after the beep."
)
EVENTS = (
    GreetingFrame,
    MachineVerdictFrame,
    InterruptionFrame,
    TTSSpeakFrame,
    OutcomeFrame,
    EndWorkerFrame,
    TranscriptionFrame,
)
VAD_MARKS = (VADUserStartedSpeakingFrame, VADUserStoppedSpeakingFrame)


def detector(**kwargs: Any) -> AnsweringMachineDetector:
    vad = PhoneVADAnalyzer(params=VADParams(start_secs=0.064, stop_secs=0.2))
    return AnsweringMachineDetector(vad_analyzer=vad, voicemail_line=VOICEMAIL, **kwargs)


def audio(pcm: bytes) -> list[Frame]:
    return [
        InputAudioRawFrame(audio=pcm[i : i + 320], sample_rate=8000, num_channels=1)
        for i in range(0, len(pcm), 320)
    ]


Frames = list[Frame]


async def run(amd: AnsweringMachineDetector, frames: Frames) -> tuple[Frames, Frames]:
    down, up = await run_test(
        amd, frames_to_send=frames, pipeline_params=PipelineParams(audio_in_sample_rate=8000)
    )
    return list(down), list(up)


def events(frames: list[Frame]) -> list[type]:
    return [type(f) for f in frames if isinstance(f, EVENTS)]


def verdict_of(frames: list[Frame]) -> MachineVerdictFrame:
    (verdict,) = [f for f in frames if isinstance(f, MachineVerdictFrame)]
    return verdict


async def test_the_opening_follows_a_short_hello_and_then_the_call_goes_through() -> None:
    amd = detector()
    down, up = await run(amd, audio(silence(0.5) + synthesize("Hello?") + silence(3.0)))

    assert events(down) == [GreetingFrame, MachineVerdictFrame]
    verdict = verdict_of(down)
    assert (verdict.verdict, verdict.source) == ("human", "timing")
    # the hello itself never reached the call; the audio after the verdict does
    heard = [f for f in down if isinstance(f, InputAudioRawFrame)]
    assert 0 < len(heard) < len(audio(silence(3.0)))
    # the STT was told where the hello was, so it can be transcribed
    assert [type(f) for f in up] == [VADUserStartedSpeakingFrame, VADUserStoppedSpeakingFrame]
    assert amd.stage is Stage.THROUGH
    report = amd.report
    assert report.opening_at_s is not None and report.first_words_end_s is not None
    assert report.opening_at_s < verdict.decided_after_s


async def test_nobody_speaking_gets_the_opening_after_two_seconds() -> None:
    amd = detector(no_speech_secs=2.0)
    down, _ = await run(amd, audio(silence(2.6)))

    assert events(down) == [MachineVerdictFrame, GreetingFrame]
    verdict = verdict_of(down)
    assert (verdict.verdict, verdict.source) == ("unknown", "silence")
    assert amd.report.opening_at_s == pytest.approx(2.0, abs=0.05)
    assert amd.stage is Stage.THROUGH


async def test_the_opening_stops_while_the_callee_goes_on_and_comes_at_their_next_pause() -> None:
    amd = detector()
    hello = synthesize("Hello?") + silence(0.1) + synthesize("Yes, hi.")
    down, _ = await run(amd, audio(silence(0.4) + hello + silence(2.5)))

    said = events(down)
    assert said[:2] == [GreetingFrame, InterruptionFrame]  # stopped as they went on
    assert said[-2:] == [GreetingFrame, MachineVerdictFrame]  # said again at their pause
    assert verdict_of(down).verdict == "human"
    assert amd.report.openings_held >= 1


async def test_a_machine_greeting_then_a_beep_gets_the_voicemail_after_the_beep() -> None:
    amd = detector()
    answer = silence(0.4) + synthesize(GREETING, voice="kal") + silence(0.5)
    answer += tone(1000.0, 0.5) + silence(2.0)
    down, _ = await run(amd, audio(answer))

    # an opening that went out at one of the greeting's pauses was stopped each time
    said = events(down)
    assert said[-3:] == [TTSSpeakFrame, OutcomeFrame, EndWorkerFrame]
    assert said[:-3].count(GreetingFrame) == said[:-3].count(InterruptionFrame)
    assert GreetingFrame not in said[said.index(MachineVerdictFrame) :]
    assert verdict_of(down).verdict == "machine"
    (speak,) = [f for f in down if isinstance(f, TTSSpeakFrame)]
    assert speak.text == VOICEMAIL and not speak.interruptible and not speak.append_to_context
    (outcome,) = [f for f in down if isinstance(f, OutcomeFrame)]
    assert outcome.disposition == "voicemail-left"
    assert not [f for f in down if isinstance(f, InputAudioRawFrame)]
    report = amd.report
    assert report.beep_at_s is not None
    assert report.voicemail_at_s is not None and report.voicemail_at_s >= report.beep_at_s
    assert report.message_after_beep_s is not None


async def test_without_a_beep_the_message_follows_the_greetings_end() -> None:
    amd = detector(message_silence_secs=1.5)
    greeting = synthesize(GREETING, voice="kal")
    down, _ = await run(amd, audio(silence(0.4) + greeting + silence(2.5)))

    assert events(down)[-3:] == [TTSSpeakFrame, OutcomeFrame, EndWorkerFrame]
    report = amd.report
    assert report.beep_at_s is None
    assert report.voicemail_at_s is not None
    assert report.voicemail_at_s >= 0.4 + len(greeting) / 16000 + 1.0


async def test_a_greeting_that_never_ends_is_hung_up_on_without_a_message() -> None:
    amd = detector(max_machine_wait_secs=3.0)
    endless = synthesize(" ".join([GREETING] * 3), voice="kal")
    down, _ = await run(amd, audio(silence(0.3) + endless))

    assert TTSSpeakFrame not in events(down)
    assert events(down)[-2:] == [OutcomeFrame, EndWorkerFrame]
    (outcome,) = [f for f in down if isinstance(f, OutcomeFrame)]
    assert outcome.disposition == "machine-no-message"


async def test_machine_words_decide_and_the_transcript_stays_here() -> None:
    amd = detector()
    frames: list[Frame] = [transcript("please leave a message after the tone"), SleepFrame(0.05)]
    down, _ = await run(amd, frames + audio(silence(0.3) + synthesize("Hello.") + silence(2.0)))

    verdict = verdict_of(down)
    assert (verdict.verdict, verdict.source) == ("machine", "words")
    assert GreetingFrame not in events(down) and TranscriptionFrame not in events(down)
    assert events(down)[-3:] == [TTSSpeakFrame, OutcomeFrame, EndWorkerFrame]


async def test_transcripts_reach_the_call_only_once_it_went_through() -> None:
    amd = detector()
    frames: list[Frame] = [transcript("hello"), SleepFrame(0.05), *audio(silence(2.2))]
    down, _ = await run(amd, [*frames, SleepFrame(0.05), transcript("I'd like to move it")])

    assert [f.text for f in down if isinstance(f, TranscriptionFrame)] == ["I'd like to move it"]


async def test_the_providers_end_of_greeting_verdict_leaves_the_message_at_once() -> None:
    amd = detector(answered_by="machine_end_beep")
    down, _ = await run(amd, audio(silence(0.2)))

    assert events(down) == [MachineVerdictFrame, TTSSpeakFrame, OutcomeFrame, EndWorkerFrame]
    assert verdict_of(down).source == "provider"


async def test_a_late_provider_verdict_withdraws_the_opening() -> None:
    amd = detector()
    provider = MachineVerdictFrame(verdict="machine_start", source="provider")
    frames = audio(silence(0.3) + synthesize("Hello.") + silence(0.5)) + [provider]
    down, _ = await run(amd, frames + audio(silence(2.0)))

    assert events(down) == [
        GreetingFrame,
        MachineVerdictFrame,
        InterruptionFrame,
        TTSSpeakFrame,
        OutcomeFrame,
        EndWorkerFrame,
    ]
    assert verdict_of(down).source == "provider"  # one verdict: the provider's is not passed on
    assert amd.report.withdrawn


async def test_nothing_else_is_said_to_a_machine() -> None:
    amd = detector(answered_by="machine_start")
    down, _ = await run(amd, [*audio(silence(0.2)), TTSSpeakFrame("Are you still there?")])

    assert events(down) == [MachineVerdictFrame]


@pytest.mark.parametrize(("answered_by", "line"), [("fax", VOICEMAIL), ("machine_end_silence", "")])
async def test_no_message_to_a_fax_or_without_a_voicemail_line(answered_by: str, line: str) -> None:
    vad = PhoneVADAnalyzer(params=VADParams(start_secs=0.064, stop_secs=0.2))
    amd = AnsweringMachineDetector(vad_analyzer=vad, voicemail_line=line, answered_by=answered_by)
    down, _ = await run(amd, audio(silence(0.2)))

    assert events(down) == [MachineVerdictFrame, OutcomeFrame, EndWorkerFrame]
    (outcome,) = [f for f in down if isinstance(f, OutcomeFrame)]
    assert outcome.disposition == "machine-no-message"


def runtime_with(outbound: object | None) -> Any:
    settings = SimpleNamespace(vad_start_secs=0.064, vad_stop_secs=0.2, vad_noise_gate=True)
    return SimpleNamespace(settings=settings, agent=SimpleNamespace(outbound=outbound))


def call_spec(outbound: OutboundCall | None) -> CallSpec:
    return CallSpec(
        transport_kind="twilio", sample_rate_in=8000, sample_rate_out=8000, outbound=outbound
    )


def test_only_outbound_calls_get_a_detector() -> None:
    assert make_answering_machine(runtime_with(None), call_spec(None)) is None


def test_the_agents_voicemail_is_rendered_with_the_contacts_variables() -> None:
    config = OutboundConfig(
        purpose="remind",
        opening="Hi {first_name}.",
        voicemail="Hi {first_name}, please call us back.",
        variables=("first_name",),
        no_speech_secs=3.0,
    )
    call = OutboundCall(attempt_id="a1", to="+15555550123", variables={"first_name": "Maria"})

    amd = make_answering_machine(runtime_with(config), call_spec(call))

    assert amd is not None
    assert amd._voicemail_line == "Hi Maria, please call us back."  # pyright: ignore[reportPrivateUsage]
    unnamed = OutboundCall(attempt_id="a2", to="+15555550123")
    amd = make_answering_machine(runtime_with(config), call_spec(unnamed))
    assert amd is not None and amd._voicemail_line == ""  # pyright: ignore[reportPrivateUsage]


async def test_long_speech_is_sent_to_the_stt_in_pieces() -> None:
    amd = detector(transcribe_every_secs=1.0)
    _, up = await run(amd, audio(silence(0.3) + synthesize(GREETING, voice="kal")))

    marks = [type(f) for f in up if isinstance(f, VAD_MARKS)]
    assert marks.count(VADUserStoppedSpeakingFrame) >= 2
    assert marks[::2] == [VADUserStartedSpeakingFrame] * len(marks[::2])  # start, stop, ...
    assert marks[1::2] == [VADUserStoppedSpeakingFrame] * len(marks[1::2])


def user_aggregator() -> FrameProcessor:
    vad = PhoneVADAnalyzer(params=VADParams(start_secs=0.064, stop_secs=0.2))
    strategies = UserTurnStrategies(
        start=[VADUserTurnStartStrategy(enable_interruptions=True)],
        stop=[SpeechTimeoutUserTurnStopStrategy(user_speech_timeout=0.4)],
    )
    params = LLMUserAggregatorParams(vad_analyzer=vad, user_turn_strategies=strategies)
    return LLMContextAggregatorPair(LLMContext(), user_params=params).user()


async def test_the_user_aggregator_behind_it_hears_a_person_only_after_the_opening() -> None:
    amd = detector()
    reply = synthesize("I would like to confirm the appointment.")
    answer = silence(0.4) + synthesize("Hello?") + silence(2.0) + reply + silence(1.0)
    down, _ = await run_pipeline(Pipeline([amd, user_aggregator()]), audio(answer))

    # the hello was the detector's; the reply to the opening is the caller's first turn
    # (system frames only: the greeting, a data frame, queues behind the audio here)
    said = [type(f) for f in down if isinstance(f, (MachineVerdictFrame, UserStartedSpeakingFrame))]
    assert said == [MachineVerdictFrame, UserStartedSpeakingFrame]
    assert verdict_of(down).verdict == "human" and GreetingFrame in events(down)


async def test_the_user_aggregator_behind_it_never_hears_a_machine() -> None:
    amd = detector()
    answer = silence(0.4) + synthesize(GREETING, voice="kal") + silence(0.5)
    answer += tone(1000.0, 0.5) + silence(2.0)
    down, _ = await run_pipeline(Pipeline([amd, user_aggregator()]), audio(answer))

    assert not [f for f in down if isinstance(f, UserStartedSpeakingFrame)]
    assert verdict_of(down).verdict == "machine"


async def run_pipeline(pipeline: Pipeline, frames: Frames) -> tuple[Frames, Frames]:
    down, up = await run_test(
        pipeline, frames_to_send=frames, pipeline_params=PipelineParams(audio_in_sample_rate=8000)
    )
    return list(down), list(up)


async def test_a_streaming_stt_s_transcripts_pass_once_the_call_went_through() -> None:
    # a cloud STT never says when a segment is done: nothing is owed to the detector
    amd = detector()
    frames = audio(silence(0.5) + synthesize("Hello?") + silence(2.0))
    down, _ = await run(amd, [*frames, SleepFrame(0.05), transcript("I'd like to move it")])

    assert [f.text for f in down if isinstance(f, TranscriptionFrame)] == ["I'd like to move it"]


def deaf_detector(**kwargs: Any) -> AnsweringMachineDetector:
    """A detector whose VAD never hears speech (a voice it cannot tell from noise)."""
    vad = PhoneVADAnalyzer(params=VADParams(start_secs=0.064, stop_secs=0.2, min_volume=1.1))
    return AnsweringMachineDetector(vad_analyzer=vad, voicemail_line=VOICEMAIL, **kwargs)


async def test_a_greeting_the_vad_never_hears_gets_no_opening_over_it() -> None:
    amd = deaf_detector(no_speech_secs=2.0)
    greeting = synthesize(GREETING, voice="kal")
    start = 0.3
    await run(amd, audio(silence(start) + greeting + silence(1.0)))

    ends = start + len(greeting) / 16000
    report = amd.report
    assert report.verdict is not None and report.verdict.value == "machine"
    assert report.source == "timing"  # the stretch of sound was long
    assert report.decided_after_s is not None and report.decided_after_s < ends
    assert report.opening_at_s is None


async def test_a_short_sound_the_vad_never_hears_delays_the_opening_to_its_end() -> None:
    amd = deaf_detector(no_speech_secs=2.0)
    words = synthesize("Hello, good morning, this is John.")  # about 2 s
    down, _ = await run(amd, audio(silence(1.0) + words + silence(2.0)))

    assert (verdict_of(down).verdict, verdict_of(down).source) == ("unknown", "silence")
    opening_at = amd.report.opening_at_s
    assert opening_at is not None and opening_at >= 1.0 + len(words) / 16000


async def test_a_slow_long_hello_is_a_person() -> None:
    amd = detector()
    hello = synthesize("Yes, hello, good morning, this is John Miller.")
    assert 3.0 < len(hello) / 16000 < 4.0
    down, _ = await run(amd, audio(silence(0.4) + hello + silence(2.5)))

    assert verdict_of(down).verdict == "human"
    assert events(down)[0] is GreetingFrame


async def test_the_opening_waits_a_little_longer_after_long_first_words() -> None:
    short, long = detector(), detector()
    await run(short, audio(silence(0.4) + synthesize("Hello?") + silence(2.5)))
    await run(
        long,
        audio(
            silence(0.4) + synthesize("Hello, good morning, this is John Miller.") + silence(2.5)
        ),
    )

    def pause(amd: AnsweringMachineDetector) -> float:
        report = amd.report
        assert report.opening_at_s is not None and report.first_words_end_s is not None
        return report.opening_at_s - report.first_words_end_s

    assert pause(short) < 0.45 <= pause(long)

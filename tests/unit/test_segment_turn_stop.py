"""Smart Turn end of turn: the second look at a pause the model first called unfinished.

The real Smart Turn analyzer (its buffering, clearing and executor) with the ONNX
prediction replaced by scripted verdicts, driven through the stop strategy the pipeline
uses.
"""

import asyncio

import numpy as np
from pipecat.frames.frames import (
    InputAudioRawFrame,
    TranscriptionFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)

from integrations.speech.stt import SegmentTranscribedFrame
from processors.segment_turn_stop import SegmentTranscriptTurnStopStrategy
from processors.turn_hold import TurnHoldPolicy
from tests.fakes.smart_turn import HeldSmartTurn, ScriptedSmartTurn
from tests.support.turn_strategies import start_strategy

RATE = 8000
SECOND_LOOK = 0.1


def audio(seconds: float, level: int = 0) -> InputAudioRawFrame:
    t = np.arange(int(seconds * RATE)) / RATE
    pcm = (level * np.sin(2 * np.pi * 220 * t)).astype(np.int16).tobytes()
    return InputAudioRawFrame(audio=pcm, sample_rate=RATE, num_channels=1)


async def make_strategy(
    verdicts: list[int], second_look: float = SECOND_LOOK, *, analyzer_type=None, **kwargs
):
    analyzer = (analyzer_type or ScriptedSmartTurn)(verdicts)
    strategy = SegmentTranscriptTurnStopStrategy(
        turn_analyzer=analyzer, second_look_s=second_look, **kwargs
    )
    stopped = await start_strategy(strategy, audio_in_sample_rate=RATE)
    return strategy, analyzer, stopped


async def speak(strategy) -> None:
    await strategy.process_frame(VADUserStartedSpeakingFrame())
    for _ in range(50):  # one second of speech in 20 ms frames
        await strategy.process_frame(audio(0.02, level=8000))


async def transcribed(strategy, text: str) -> None:
    await strategy.process_frame(TranscriptionFrame(text, "caller", "t", finalized=True))
    await strategy.process_frame(SegmentTranscribedFrame(has_text=True))


async def pause_without_transcript(strategy) -> None:
    await speak(strategy)
    await strategy.process_frame(VADUserStoppedSpeakingFrame())


async def speak_and_pause(strategy, text: str = "Which insurance do you accept?") -> None:
    await pause_without_transcript(strategy)
    await transcribed(strategy, text)


async def keep_quiet(strategy, seconds: float) -> None:
    for _ in range(int(seconds / 0.02)):
        await strategy.process_frame(audio(0.02))
        await asyncio.sleep(0.02)


async def test_unfinished_at_the_pause_finished_at_the_second_look_ends_the_turn():
    strategy, analyzer, stopped = await make_strategy([0, 1])
    await speak_and_pause(strategy)
    assert stopped == []  # the pause's verdict: unfinished
    await keep_quiet(strategy, SECOND_LOOK + 0.15)
    assert stopped == [True]
    assert strategy.second_looks_complete == 1
    assert analyzer.seen_secs[1] > analyzer.seen_secs[0]  # it saw the longer pause


async def test_unfinished_twice_waits_on():
    strategy, analyzer, stopped = await make_strategy([0, 0])
    await speak_and_pause(strategy)
    await keep_quiet(strategy, SECOND_LOOK + 0.15)
    assert stopped == []
    assert len(analyzer.seen_secs) == 2  # one second look, not one per frame


async def test_speech_before_the_second_look_cancels_it():
    strategy, analyzer, stopped = await make_strategy([0, 1])
    await speak_and_pause(strategy)
    await keep_quiet(strategy, 0.04)  # the pause's verdict (unfinished) is in
    await strategy.process_frame(VADUserStartedSpeakingFrame())
    await keep_quiet(strategy, SECOND_LOOK + 0.1)
    assert stopped == []
    assert len(analyzer.seen_secs) == 1


async def test_second_look_off():
    strategy, analyzer, stopped = await make_strategy([0], second_look=0)
    await speak_and_pause(strategy)
    await keep_quiet(strategy, 0.25)
    assert stopped == []
    assert len(analyzer.seen_secs) == 1


async def make_held_strategy(verdicts: list[int]):
    return await make_strategy(verdicts, 0, analyzer_type=HeldSmartTurn)


async def test_frames_keep_flowing_while_the_model_decides():
    strategy, analyzer, stopped = await make_held_strategy([1])
    await speak(strategy)
    # Returns while the inference is still running (it would hang here if awaited inline).
    await asyncio.wait_for(strategy.process_frame(VADUserStoppedSpeakingFrame()), 2)
    assert await asyncio.to_thread(analyzer.running.wait, 2)
    await asyncio.wait_for(
        strategy.process_frame(
            TranscriptionFrame("When are you open?", "caller", "t", finalized=True)
        ),
        2,
    )
    await asyncio.wait_for(strategy.process_frame(SegmentTranscribedFrame(has_text=True)), 2)
    assert strategy.untranscribed_segments == 0  # the transcript was taken meanwhile
    assert stopped == []  # no verdict yet
    analyzer.release.set()
    await keep_quiet(strategy, 0.1)
    assert stopped == [True]


async def test_speech_while_the_model_decides_discards_its_verdict():
    strategy, analyzer, stopped = await make_held_strategy([1])
    await pause_without_transcript(strategy)
    assert await asyncio.to_thread(analyzer.running.wait, 2)
    await transcribed(strategy, "Do you")
    await strategy.process_frame(VADUserStartedSpeakingFrame())  # the caller goes on
    analyzer.release.set()
    await keep_quiet(strategy, 0.1)
    assert stopped == []  # "finished" was about a pause that is over


async def make_busy_strategy(verdicts: list[int], busy: bool = True):
    return await make_strategy(
        verdicts, 0, model_after_transcript=lambda: busy, transcript_grace_s=0.05
    )


async def test_when_busy_the_model_waits_for_the_transcript_then_decides():
    strategy, analyzer, stopped = await make_busy_strategy([1])
    await pause_without_transcript(strategy)
    await keep_quiet(strategy, 0.1)
    assert analyzer.seen_secs == []  # no inference before the transcript
    await transcribed(strategy, "Do you")
    await keep_quiet(strategy, 0.15)
    assert len(analyzer.seen_secs) == 1 and stopped == [True]
    assert strategy.models_skipped == 0


async def test_when_busy_a_turn_ended_by_the_transcript_never_runs_the_model():
    strategy, analyzer, stopped = await make_busy_strategy([1])
    await pause_without_transcript(strategy)
    await transcribed(strategy, "When are you open?")
    await strategy.handle_user_turn_stopped()  # the semantic strategy ended the turn
    await keep_quiet(strategy, 0.15)
    assert analyzer.seen_secs == []
    assert strategy.models_skipped == 1


async def test_when_busy_speech_before_the_transcript_drops_the_waiting_verdict():
    strategy, analyzer, stopped = await make_busy_strategy([1])
    await pause_without_transcript(strategy)
    await strategy.process_frame(VADUserStartedSpeakingFrame())
    await transcribed(strategy, "Do you")
    await keep_quiet(strategy, 0.15)
    assert analyzer.seen_secs == [] and stopped == []


async def test_when_not_busy_the_model_runs_at_the_pause():
    strategy, analyzer, stopped = await make_busy_strategy([1], busy=False)
    await pause_without_transcript(strategy)
    await keep_quiet(strategy, 0.1)
    assert len(analyzer.seen_secs) == 1  # before any transcript


async def test_a_stop_that_races_the_callers_next_word_decides_nothing():
    # Pipecat passes the turn's text on before it ends the turn, and refuses only the end
    # while the caller speaks: a late stop would have the NLU decide on the fragment.
    strategy, _, stopped = await make_strategy([1], hold=TurnHoldPolicy())
    inferred: list[bool] = []

    @strategy.event_handler("on_user_turn_inference_triggered")
    async def on_inference(_strategy, *_args, **_kwargs):
        inferred.append(True)

    await speak_and_pause(strategy, "Yes.")
    await strategy.process_frame(VADUserStartedSpeakingFrame())  # "... that's what I meant."
    await strategy.trigger_user_turn_stopped()
    assert inferred == [] and stopped == []

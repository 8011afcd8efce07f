"""The semantic end-of-turn strategy.

A complete, recognised request ends the turn after a short grace.
"""

import asyncio
import threading

from pipecat.frames.frames import (
    TranscriptionFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)

from processors.semantic_turn import SemanticCompletionStopStrategy
from tests.support.turn_strategies import start_strategy


async def make_strategy(grace=0.05):
    seen: list[str] = []
    strategy = SemanticCompletionStopStrategy(
        lambda text: text.endswith("hours?"), grace_secs=grace
    )
    stopped = await start_strategy(strategy)
    return strategy, stopped, seen


def transcript(text):
    return TranscriptionFrame(text, "caller", "2026-11-21T00:00:00Z")


async def test_complete_request_after_the_pause_ends_the_turn():
    strategy, stopped, _ = await make_strategy()
    await strategy.process_frame(VADUserStoppedSpeakingFrame())
    await strategy.process_frame(transcript("What are your opening hours?"))
    await asyncio.sleep(0.15)
    assert stopped == [True]


async def test_incomplete_text_does_not_end_the_turn():
    strategy, stopped, _ = await make_strategy()
    await strategy.process_frame(transcript("I would like to"))
    await strategy.process_frame(VADUserStoppedSpeakingFrame())
    await asyncio.sleep(0.15)
    assert stopped == []


async def test_speech_in_the_grace_period_cancels():
    strategy, stopped, _ = await make_strategy(grace=0.1)
    await strategy.process_frame(VADUserStoppedSpeakingFrame())
    await strategy.process_frame(transcript("What are your opening hours?"))
    await strategy.process_frame(VADUserStartedSpeakingFrame())
    await asyncio.sleep(0.2)
    assert stopped == []


async def test_text_without_a_pause_waits_for_the_pause():
    strategy, stopped, _ = await make_strategy()
    await strategy.process_frame(transcript("What are your opening hours?"))
    await asyncio.sleep(0.1)
    assert stopped == []
    await strategy.process_frame(VADUserStoppedSpeakingFrame())
    await asyncio.sleep(0.1)
    assert stopped == [True]


async def test_the_grace_counts_from_the_pause_not_from_a_late_transcript():
    strategy, stopped, _ = await make_strategy(grace=0.2)
    await strategy.process_frame(VADUserStartedSpeakingFrame())
    await strategy.process_frame(VADUserStoppedSpeakingFrame())
    await asyncio.sleep(0.15)  # the transcript arrives late in the pause
    await strategy.process_frame(transcript("What are your hours?"))
    await asyncio.sleep(0.1)  # 0.25 s after the pause began: the grace is over
    assert stopped


async def test_the_check_runs_beside_the_frames_and_sees_all_the_text():
    release = threading.Event()
    checked: list[str] = []

    def slow_check(text: str) -> bool:
        release.wait(5)
        checked.append(text)
        return text.endswith("hours?")

    strategy = SemanticCompletionStopStrategy(slow_check, grace_secs=0.05)
    stopped = await start_strategy(strategy)
    await strategy.process_frame(VADUserStoppedSpeakingFrame())
    # Returns while the check is still running (it would hang here if awaited inline).
    await asyncio.wait_for(strategy.process_frame(transcript("What are your")), 2)
    await asyncio.wait_for(strategy.process_frame(transcript("opening hours?")), 2)
    release.set()
    await asyncio.sleep(0.2)
    assert "What are your opening hours?" in checked
    assert stopped == [True]

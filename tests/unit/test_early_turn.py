"""Early transcription / end-of-turn inference and the TTS clause cache."""

from collections.abc import Iterator

import numpy as np
import pytest
from pipecat.audio.turn.base_turn_analyzer import EndOfTurnState

from integrations.speech.cache import CachingSynthesizer
from integrations.speech.early_transcription import EarlyTranscriptionPolicy, QuietTracker
from integrations.speech.early_turn import EarlySmartTurnAnalyzer
from integrations.speech.speculation import SpeculationBudget
from integrations.speech.tts import trim_leading_silence
from tests.fakes.smart_turn import ScriptedEarlySmartTurn
from tests.fakes.speech import ScriptedSynthesizer

RATE = 8000
FRAME = 160  # 20 ms


def tone(seconds: float, level: int = 8000) -> bytes:
    t = np.arange(int(seconds * RATE)) / RATE
    return (level * np.sin(2 * np.pi * 220 * t)).astype(np.int16).tobytes()


def quiet(seconds: float) -> bytes:
    return bytes(int(seconds * RATE) * 2)


def frames(pcm: bytes) -> Iterator[bytes]:
    for i in range(0, len(pcm), FRAME * 2):
        yield pcm[i : i + FRAME * 2]


def feed(tracker: QuietTracker, pcm: bytes, start: int = 0) -> list[int]:
    starts, length = [], start
    for chunk in frames(pcm):
        length += len(chunk)
        if (at := tracker.observe(chunk, length)) is not None:
            starts.append(at)
    return starts


def test_quiet_tracker_starts_once_after_the_quiet_time():
    tracker = QuietTracker(EarlyTranscriptionPolicy(quiet_secs=0.1), RATE)
    starts = feed(tracker, tone(1.0) + quiet(0.3))
    assert len(starts) == 1
    assert starts[0] == len(tone(1.0)) + len(quiet(0.1))


def test_quiet_tracker_restarts_after_new_speech():
    tracker = QuietTracker(EarlyTranscriptionPolicy(quiet_secs=0.1), RATE)
    starts = feed(tracker, tone(0.5) + quiet(0.16) + tone(0.5) + quiet(0.16))
    assert len(starts) == 2
    assert tracker.last_loud_end == len(tone(0.5) + quiet(0.16) + tone(0.5))


def test_quiet_tracker_ignores_noise_relative_to_speech():
    tracker = QuietTracker(EarlyTranscriptionPolicy(quiet_secs=0.1), RATE)
    assert feed(tracker, tone(0.5) + tone(0.3, level=400)) == [len(tone(0.5)) + len(quiet(0.1))]


def test_quiet_tracker_needs_speech_first():
    tracker = QuietTracker(EarlyTranscriptionPolicy(), RATE)
    assert feed(tracker, quiet(1.0)) == []


def run_turn(analyzer: EarlySmartTurnAnalyzer, pcm_speech: bytes, pcm_pause: bytes) -> None:
    analyzer.set_sample_rate(RATE)
    for chunk in frames(pcm_speech + pcm_pause):
        analyzer.append_audio(chunk, is_speech=True)  # VAD still says speaking during the pause


async def test_early_complete_verdict_is_used_without_a_second_inference():
    analyzer = ScriptedEarlySmartTurn([1])
    run_turn(analyzer, tone(1.0), quiet(0.2))
    state, _ = await analyzer.analyze_end_of_turn()
    assert state is EndOfTurnState.COMPLETE
    assert analyzer.calls == 1 and analyzer.early_used == 1


async def test_early_incomplete_verdict_is_checked_again_on_the_full_pause():
    analyzer = ScriptedEarlySmartTurn([0, 1])
    run_turn(analyzer, tone(1.0), quiet(0.2))
    state, _ = await analyzer.analyze_end_of_turn()
    assert state is EndOfTurnState.COMPLETE
    assert analyzer.calls == 2 and analyzer.early_used == 0


async def test_speech_after_the_early_start_discards_it():
    analyzer = ScriptedEarlySmartTurn([1, 0])
    run_turn(analyzer, tone(1.0) + quiet(0.15) + tone(0.5), quiet(0.05))
    state, _ = await analyzer.analyze_end_of_turn()
    assert state is EndOfTurnState.INCOMPLETE  # the second (real) inference decided
    assert analyzer.early_used == 0


async def test_no_early_inference_while_the_server_is_busy():
    busy = [True]
    analyzer = ScriptedEarlySmartTurn(
        [1, 1], speculation=SpeculationBudget(2, busy=lambda: busy[0])
    )
    run_turn(analyzer, tone(1.0), quiet(0.2))
    assert analyzer.calls == 0  # nothing ran while the caller's audio went quiet
    state, _ = await analyzer.analyze_end_of_turn()  # asked for: runs on the pause
    assert state is EndOfTurnState.COMPLETE
    assert analyzer.calls == 1 and analyzer.early_used == 0

    busy[0] = False  # quiet again: early inference as before
    run_turn(analyzer, tone(1.0), quiet(0.2))
    state, _ = await analyzer.analyze_end_of_turn()
    assert state is EndOfTurnState.COMPLETE
    assert analyzer.calls == 2 and analyzer.early_used == 1


def counting_synth() -> ScriptedSynthesizer:
    return ScriptedSynthesizer((b"\x01\x00" * 100, b"\x02\x00" * 100))


def test_cache_replays_a_clause_rendered_before():
    inner = counting_synth()
    cache = CachingSynthesizer(inner)
    first = b"".join(cache.synthesize("Hello there."))
    again = b"".join(cache.synthesize("Hello   there."))
    assert first == again and inner.texts == ["Hello there."]
    assert (cache.hits, cache.misses) == (1, 1)


def test_cache_does_not_keep_an_interrupted_synthesis():
    inner = counting_synth()
    cache = CachingSynthesizer(inner)
    stream = cache.synthesize("Cut short")
    next(stream)
    stream.close()
    b"".join(cache.synthesize("Cut short"))
    assert inner.texts == ["Cut short", "Cut short"]


def test_cache_is_bounded_and_warm_renders_only_missing_lines():
    inner = counting_synth()
    cache = CachingSynthesizer(inner, max_bytes=800)
    assert cache.warm(["a", "b", "a"]) == 2
    cache.warm(["c"])
    assert len(cache) == 2  # 400 bytes each: the oldest was evicted


@pytest.mark.parametrize("lead", [0.0, 0.05, 0.3])
def test_leading_silence_is_trimmed_to_ten_ms(lead):
    pcm = quiet(lead) + tone(0.2)
    trimmed = trim_leading_silence(pcm, RATE)
    removed_secs = (len(pcm) - len(trimmed)) / 2 / RATE
    assert removed_secs == pytest.approx(max(0.0, lead - 0.01), abs=0.001)
    assert trim_leading_silence(quiet(0.2), RATE) == b""

"""The simulated phone's ear: playout of the bot's audio as a handset plays it."""

from __future__ import annotations

import numpy as np

from simulator.phone.ear import BotAudioEar
from simulator.phone.measure import FRAME_BYTES, FRAME_S


def _tone(frames: int) -> bytes:
    t = np.arange(frames * FRAME_BYTES // 2) / 8000
    return (np.sin(2 * np.pi * 440 * t) * 8000).astype("<i2").tobytes()


def _silence(frames: int) -> bytes:
    return b"\x00" * (frames * FRAME_BYTES)


def _ear(jitter_buffer_ms: int = 0) -> BotAudioEar:
    return BotAudioEar(speech_rms=300.0, segment_gap_s=0.3, jitter_buffer_ms=jitter_buffer_ms)


def test_a_late_burst_of_silence_is_skipped_so_the_next_speech_is_not_delayed() -> None:
    ear = _ear()
    ear.receive(_silence(10))  # a lag of the sender's clock, then its packets at once
    assert not ear.play(0.0)
    ear.receive(_tone(3))
    assert ear.play(FRAME_S)  # heard at the next tick, not 9 frames later
    assert ear.segments[0].start_s == FRAME_S


def test_speech_is_never_skipped_however_much_is_queued() -> None:
    ear = _ear()
    ear.receive(_tone(10))
    for tick in range(10):
        ear.play(tick * FRAME_S)
    assert ear.played_bytes == 10 * FRAME_BYTES
    assert len(ear.segments) == 1 and abs(ear.segments[0].end_s - 10 * FRAME_S) < 1e-9


def test_silence_within_the_jitter_buffer_is_kept() -> None:
    ear = _ear(jitter_buffer_ms=60)
    ear.receive(_silence(2) + _tone(2))  # one frame more than the 60 ms target: kept
    onsets = [ear.play(tick * FRAME_S) for tick in range(4)]
    assert onsets.index(True) == 2  # the two silent frames played, not skipped

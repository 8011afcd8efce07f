"""``bench noise-path``: how the call's STT cuts segments, and the figures drawn from them."""

from __future__ import annotations

import pytest

from simulator.understanding.noise_path import (
    RequestPath,
    Segment,
    report_lines,
    stt_cuts,
    summarize,
)


def test_the_stt_cut_reaches_back_a_second_but_not_into_the_previous_segment() -> None:
    segments = [Segment(4.3, 6.6), Segment(7.0, 9.4), Segment(12.0, 12.5)]
    assert stt_cuts(segments) == [(3.3, 6.6), (6.6, 9.4), (11.0, 12.5)]


def test_a_request_reports_the_end_delay_and_the_audio_heard() -> None:
    row = RequestPath("hours?", (4.0, 5.0), [Segment(4.1, 4.6), Segment(4.7, 5.2)])
    assert row.end_delay_s == pytest.approx(0.2)
    assert row.audio_to_speech == pytest.approx(1.0)
    assert RequestPath("hours?", (4.0, 5.0)).end_delay_s is None


def test_the_summary_counts_splits_strays_and_both_word_error_rates() -> None:
    rows = [
        RequestPath(
            "a b", (4.0, 5.0), [Segment(4.1, 5.2)], word_errors=1, hand_cut_word_errors=0, words=2
        ),
        RequestPath(
            "c d",
            (4.0, 6.0),
            [Segment(4.0, 5.0), Segment(5.1, 6.4)],
            stray_segments=1,
            word_errors=2,
            hand_cut_word_errors=1,
            words=2,
            confidence=0.4,
        ),
        RequestPath("e f", (4.0, 5.0), words=2, word_errors=2, hand_cut_word_errors=2),
    ]
    summary = summarize(rows)
    assert summary["requests"] == 3
    assert summary["nothing_heard"] == 1
    assert summary["split"] == 1
    assert summary["stray_segments"] == 1
    assert summary["end_delay_s"]["max"] == pytest.approx(0.4)
    assert summary["wer_pct"] == pytest.approx(83.3)
    assert summary["hand_cut_wer_pct"] == pytest.approx(50.0)
    assert summary["confidence"]["p50"] == pytest.approx(0.4)
    assert report_lines(summary, "babble", 10)[0].startswith("== babble@10dB: 3 requests")

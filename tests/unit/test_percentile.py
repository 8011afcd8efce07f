"""The one percentile definition (numpy's linear interpolation) and the latency summary."""

from __future__ import annotations

import numpy as np
import pytest

from integrations.percentile import latency_summary, percentile, sorted_percentile


def test_the_percentile_interpolates_linearly_between_the_sorted_values():
    values = [40.0, 10.0, 30.0, 20.0]  # sorted: 10 20 30 40, positions 0..3
    assert percentile(values, 0) == 10.0
    assert percentile(values, 100) == 40.0
    assert percentile(values, 50) == 25.0  # position 1.5: halfway between 20 and 30
    assert percentile(values, 95) == pytest.approx(38.5)  # position 2.85
    assert percentile([7.0], 95) == 7.0


def test_p95_of_twenty_values_is_not_nearest_rank():
    values = [float(v) for v in range(1, 21)]  # 1..20
    # position 19 * 0.95 = 18.05: between 19 and 20 (nearest-rank would say 19)
    assert percentile(values, 95) == pytest.approx(19.05)


@pytest.mark.parametrize("q", [0.0, 5.0, 20.0, 50.0, 90.0, 95.0, 99.0, 100.0])
@pytest.mark.parametrize("n", [1, 2, 3, 10, 101])
def test_both_functions_equal_numpys_default_percentile(q, n):
    values = np.random.default_rng(n).lognormal(6, 0.5, n)
    expected = float(np.percentile(values, q))
    assert percentile(values, q) == pytest.approx(expected)
    assert sorted_percentile(sorted(values.tolist()), q) == pytest.approx(expected)


def test_no_values_have_no_percentile():
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        sorted_percentile([], 50)


def test_the_latency_summary_skips_missing_values_and_rounds():
    summary = latency_summary([100.0, None, 200.0, 300.0, 400.0])
    assert summary == {
        "n": 4,
        "p50_ms": 250.0,
        "p95_ms": 385.0,  # position 2.85
        "max_ms": 400.0,
        "mean_ms": 250.0,
    }
    seconds = latency_summary([0.1234, 0.2345], scale=1000, digits=2)
    assert seconds["max_ms"] == 234.5 and seconds["p50_ms"] == 178.95


def test_the_latency_summary_of_nothing_is_empty():
    assert latency_summary([None]) == {
        "n": 0,
        "p50_ms": None,
        "p95_ms": None,
        "max_ms": None,
        "mean_ms": None,
    }

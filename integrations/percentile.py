"""The one percentile definition, for every latency figure the project reports.

Benches, scenario reports, the NLU evaluation, the CRM bench and the phone VAD's noise
floor all take their p50/p95 from here, so figures from different places compare.

Definition: numpy's default ("linear") percentile. For ``n`` values sorted ascending,
the ``q``-th percentile sits at position ``(n - 1) * q / 100`` and is interpolated
linearly between the two values either side of it; p0 is the minimum, p100 the
maximum and p50 the usual median. Linear rather than nearest-rank because it is what
``np.percentile``, ``np.median`` and ``statistics.median`` already give (so the
figures agree with anything computed by hand in numpy) and it moves smoothly with
the data instead of jumping from one sample to the next on small benches.

The call-record statistics (:mod:`integrations.storage.stats`) estimate p50/p95 from
a latency histogram in SQL instead of from the raw values; see its ``_quantiles``.

Lives in ``integrations/`` because every layer may import it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np


def percentile(values: Iterable[float], q: float) -> float:
    """The ``q``-th percentile of ``values`` (numpy's linear definition, above).

    Args:
        values: The sample, in any order.
        q: Which percentile, 0 to 100.

    Returns:
        The percentile.

    Raises:
        ValueError: ``values`` is empty.

    """
    sample = np.fromiter(values, dtype=float)
    if sample.size == 0:
        raise ValueError("percentile of no values")
    return float(np.percentile(sample, q))


def sorted_percentile(ordered: Sequence[float], q: float) -> float:
    """:func:`percentile` of values already sorted ascending, without numpy.

    For hot paths that keep their values in order anyway (the VAD's noise floor, every
    32 ms window of every call): a lookup and one interpolation instead of a sort.

    Args:
        ordered: The sample, sorted ascending (not checked).
        q: Which percentile, 0 to 100.

    Returns:
        The percentile, equal to :func:`percentile` of the same values.

    Raises:
        ValueError: ``ordered`` is empty.

    """
    if not ordered:
        raise ValueError("percentile of no values")
    position = (len(ordered) - 1) * q / 100.0
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def latency_summary(
    values: Iterable[float | None], *, scale: float = 1.0, digits: int = 1
) -> dict[str, float | int | None]:
    """Count, p50, p95, max and mean of the values that exist (None ones are skipped).

    Args:
        values: Latencies; ``None`` (not measured) is left out.
        scale: Multiplier applied first (1000 turns seconds into milliseconds).
        digits: Decimal places the figures are rounded to.

    Returns:
        ``{"n", "p50_ms", "p95_ms", "max_ms", "mean_ms"}``; the figures are None when
        no value exists.

    """
    sample = np.array([v for v in values if v is not None], dtype=float) * scale
    if sample.size == 0:
        return {"n": 0, "p50_ms": None, "p95_ms": None, "max_ms": None, "mean_ms": None}
    return {
        "n": int(sample.size),
        "p50_ms": round(percentile(sample, 50), digits),
        "p95_ms": round(percentile(sample, 95), digits),
        "max_ms": round(float(sample.max()), digits),
        "mean_ms": round(float(sample.mean()), digits),
    }

"""Threshold sweeps: how often each act threshold acts, acts wrongly, clarifies and escalates.

For every candidate ``act`` threshold (with a fixed ``clarify`` threshold) the
sweep reports, over a validation set:

- acted: share of turns with confidence >= act (and not out of scope);
- wrong-action rate: share of those acted-on turns whose intent was wrong
  (an out-of-scope turn acted on counts as wrong);
- clarify rate: share with clarify <= confidence < act;
- escalate rate: the rest (repair: ask again and count a failure).

The recommended ``act`` threshold is the lowest whose wrong-action rate is at
most the target; the recommended ``clarify`` threshold is the lowest from which
every confidence bin up to ``act`` has the top intent right at least
``clarify_precision`` of the time (a confirmation question is then more often
right than wrong).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from integrations.nlu.base import OUT_OF_SCOPE, IntentPrediction

BIN_WIDTH = 0.05


@dataclass(frozen=True)
class SweepRow:
    """The outcome of one act threshold (rates between 0 and 1)."""

    act: float
    clarify: float
    acted: float
    wrong_action_rate: float
    clarify_rate: float
    escalate_rate: float

    def as_dict(self) -> dict[str, float]:
        """The row as a plain dict."""
        return asdict(self)


@dataclass(frozen=True)
class ReliabilityBin:
    """Predictions whose top confidence falls in ``[low, high)``."""

    low: float
    high: float
    count: int
    accuracy: float
    mean_confidence: float


@dataclass(frozen=True)
class Calibration:
    """A whole sweep with the recommended thresholds."""

    rows: list[SweepRow]
    bins: list[ReliabilityBin]
    expected_calibration_error: float
    recommended_act: float | None
    recommended_clarify: float
    target_wrong_rate: float

    def as_dict(self) -> dict[str, Any]:
        """The sweep, the reliability bins and the recommendation, as JSON-ready values."""
        return {
            "rows": [r.as_dict() for r in self.rows],
            "bins": [asdict(b) for b in self.bins],
            "expected_calibration_error": self.expected_calibration_error,
            "target_wrong_rate": self.target_wrong_rate,
            "recommended_act": self.recommended_act,
            "recommended_clarify": self.recommended_clarify,
        }

    def report_lines(self) -> list[str]:
        """The sweep as a table, then the calibration error and the recommended thresholds."""
        lines = [f"{'act':>5} {'acted':>7} {'wrong':>7} {'clarify':>8} {'escalate':>9}"]
        lines += [
            f"{r.act:5.2f} {100 * r.acted:6.1f}% {100 * r.wrong_action_rate:6.2f}% "
            f"{100 * r.clarify_rate:7.1f}% {100 * r.escalate_rate:8.1f}%"
            for r in self.rows
        ]
        lines.append("wrong = share of acted-on turns whose intent was wrong")
        lines.append(f"expected calibration error: {self.expected_calibration_error:.3f}")
        target = f"{100 * self.target_wrong_rate:.1f} %"
        if self.recommended_act is None:
            lines.append(f"no act threshold keeps wrong actions <= {target}")
        else:
            lines.append(
                f"recommended for wrong actions <= {target}: "
                f"act_threshold {self.recommended_act:.2f}, "
                f"clarify_threshold {self.recommended_clarify:.2f}"
            )
        return lines


def sweep(
    predictions: Sequence[IntentPrediction],
    gold: Sequence[str],
    *,
    clarify: float = 0.5,
    target_wrong_rate: float = 0.02,
    clarify_precision: float = 0.5,
    act_grid: Sequence[float] | None = None,
) -> Calibration:
    """Sweep act thresholds over validation predictions.

    Args:
        predictions: The classifier's prediction for each validation item.
        gold: The true intent of each item (``out_of_scope`` for out-of-scope ones).
        clarify: The clarify threshold held fixed during the sweep.
        target_wrong_rate: Highest acceptable wrong-action rate for the recommendation.
        clarify_precision: Lowest top-intent accuracy that deserves a clarifying question.
        act_grid: The act thresholds to try (default 0.30 to 0.99).
    """
    grid = (
        list(act_grid)
        if act_grid is not None
        else [round(x, 2) for x in np.arange(0.30, 1.0, 0.05)] + [0.97, 0.99]
    )
    grid = sorted(set(grid))
    n = max(len(predictions), 1)
    intents = np.array([p.intent for p in predictions])
    confidence = np.array([p.confidence for p in predictions], dtype=float)
    in_scope_pred = intents != OUT_OF_SCOPE
    right = intents == np.array(list(gold))
    rows = []
    for act in grid:
        acted = in_scope_pred & (confidence >= act)
        clarified = in_scope_pred & (confidence < act) & (confidence >= clarify)
        n_acted = int(acted.sum())
        rows.append(
            SweepRow(
                act=act,
                clarify=clarify,
                acted=n_acted / n,
                wrong_action_rate=float((acted & ~right).sum() / n_acted) if n_acted else 0.0,
                clarify_rate=float(clarified.sum()) / n,
                escalate_rate=float((~acted & ~clarified).sum()) / n,
            )
        )
    recommended_act = next((r.act for r in rows if r.wrong_action_rate <= target_wrong_rate), None)
    bins = reliability_bins(predictions, gold)
    total = sum(b.count for b in bins) or 1
    ece = sum(b.count / total * abs(b.accuracy - b.mean_confidence) for b in bins)
    return Calibration(
        rows=rows,
        bins=bins,
        expected_calibration_error=float(ece),
        recommended_act=recommended_act,
        recommended_clarify=_recommend_clarify(
            predictions, gold, recommended_act or 1.0, clarify_precision
        ),
        target_wrong_rate=target_wrong_rate,
    )


def reliability_bins(
    predictions: Sequence[IntentPrediction], gold: Sequence[str], n_bins: int = 10
) -> list[ReliabilityBin]:
    """Top in-scope confidence against accuracy, in equal-width bins."""
    bins = []
    tops = [p.ranking[0] if p.ranking else (p.intent, p.confidence) for p in predictions]
    confidence = np.array([score for _, score in tops], dtype=float)
    right = np.array([name == g for (name, _), g in zip(tops, gold, strict=True)])
    for b in range(n_bins):
        low, high = b / n_bins, (b + 1) / n_bins
        mask = (confidence >= low) & ((confidence < high) | (b == n_bins - 1))
        count = int(mask.sum())
        bins.append(
            ReliabilityBin(
                low=low,
                high=high,
                count=count,
                accuracy=float(right[mask].mean()) if count else 0.0,
                mean_confidence=float(confidence[mask].mean()) if count else 0.0,
            )
        )
    return bins


def _recommend_clarify(
    predictions: Sequence[IntentPrediction], gold: Sequence[str], act: float, precision: float
) -> float:
    intents = np.array([p.intent for p in predictions])
    confidence = np.array([p.confidence for p in predictions], dtype=float)
    right = (intents == np.array(list(gold))) & (intents != OUT_OF_SCOPE)
    edges = np.arange(0.0, act, BIN_WIDTH)
    recommended = act
    for low in reversed(edges):
        mask = (
            (confidence >= low)
            & (confidence < min(low + BIN_WIDTH, act))
            & (intents != OUT_OF_SCOPE)
        )
        if mask.sum() and right[mask].mean() < precision:
            break
        recommended = float(low)
    return round(min(recommended, act), 2)

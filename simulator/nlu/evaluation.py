"""Benchmark the embedded classifier: accuracy, out-of-scope recall, macro-F1, bands, latency.

In-scope accuracy and OOS recall follow Larson et al. (2019): an in-scope item
is right only when its intent is predicted (predicting out-of-scope is wrong);
OOS recall is the share of out-of-scope items predicted out of scope.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from integrations.nlu.base import OUT_OF_SCOPE, IntentPrediction, NLUThresholds
from integrations.nlu.embedding import EmbeddingIntentClassifier
from integrations.percentile import percentile
from simulator.nlu.datasets import Example

LATENCY_SAMPLE = 300
"""Utterances classified one at a time to measure latency."""


@dataclass
class EvalReport:
    """The figures of one benchmark run (all rates between 0 and 1)."""

    n_train: int
    n_test: int
    n_in_scope: int
    n_oos: int
    in_scope_accuracy: float
    oos_recall: float | None
    macro_f1: float
    bands: dict[str, int]
    paths: dict[str, int]
    latency_p50_ms: float
    latency_p95_ms: float
    train_seconds: float
    oos_threshold: float
    oos_precision: float | None = None
    oos_f1: float | None = None
    extra: dict[str, float] = field(default_factory=dict)

    def lines(self) -> list[str]:
        """A human-readable summary."""
        pct = lambda x: f"{100 * x:.2f} %"  # noqa: E731
        out = [
            f"trained on {self.n_train} examples in {self.train_seconds:.1f} s "
            f"(out-of-scope threshold {self.oos_threshold:.3f})",
            f"test items: {self.n_test} ({self.n_in_scope} in scope, {self.n_oos} out of scope)",
            f"in-scope accuracy: {pct(self.in_scope_accuracy)}",
        ]
        if self.oos_recall is not None:
            out.append(f"OOS recall: {pct(self.oos_recall)}")
        if self.oos_precision is not None and self.oos_f1 is not None:
            out.append(f"OOS precision: {pct(self.oos_precision)}, OOS F1: {pct(self.oos_f1)}")
        out.append(f"macro-F1: {pct(self.macro_f1)}")
        out.append("bands: " + ", ".join(f"{k} {v}" for k, v in self.bands.items()))
        out.append("paths: " + ", ".join(f"{k} {v}" for k, v in self.paths.items()))
        out.append(
            f"classification latency (one at a time, {LATENCY_SAMPLE} items): "
            f"p50 {self.latency_p50_ms:.1f} ms, p95 {self.latency_p95_ms:.1f} ms"
        )
        out.extend(f"{k}: {v:.3f}" for k, v in self.extra.items())
        return out


def macro_f1(gold: Sequence[str], predicted: Sequence[str]) -> float:
    """Unweighted mean F1 over every label that occurs in ``gold``."""
    labels = sorted(set(gold))
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    for g, p in zip(gold, predicted, strict=True):
        if g == p:
            tp[g] += 1
        else:
            fp[p] += 1
            fn[g] += 1
    scores = []
    for label in labels:
        denominator = 2 * tp[label] + fp[label] + fn[label]
        scores.append(2 * tp[label] / denominator if denominator else 0.0)
    return float(np.mean(scores)) if scores else 0.0


def latency_ms(classifier: EmbeddingIntentClassifier, texts: Sequence[str]) -> tuple[float, float]:
    """p50 and p95 of classifying ``texts`` one at a time, in milliseconds."""
    for text in texts[:5]:
        classifier.classify(text)  # warm up
    times = []
    for text in texts:
        started = time.perf_counter()
        classifier.classify(text)
        times.append((time.perf_counter() - started) * 1000)
    if not times:
        return 0.0, 0.0
    return percentile(times, 50), percentile(times, 95)


def evaluate(
    classifier: EmbeddingIntentClassifier,
    test: Sequence[Example],
    thresholds: NLUThresholds,
    *,
    n_train: int = 0,
    train_seconds: float = 0.0,
    latency_classifier: EmbeddingIntentClassifier | None = None,
) -> tuple[EvalReport, list[IntentPrediction]]:
    """Score the classifier on ``test``.

    Args:
        classifier: The trained classifier (used for the batch predictions).
        test: ``(text, intent)`` pairs; ``out_of_scope`` marks out-of-scope items.
        thresholds: Band thresholds.
        n_train: Training set size (reported).
        train_seconds: Training time (reported).
        latency_classifier: The classifier to time one utterance at a time (e.g.
            one whose encoder runs on a single core); default ``classifier``.

    Returns:
        The report and the prediction for every test item.
    """
    texts = [t for t, _ in test]
    gold = [g for _, g in test]
    predictions = classifier.classify_batch(texts) if texts else []
    predicted = [p.intent for p in predictions]
    in_scope = [i for i, g in enumerate(gold) if g != OUT_OF_SCOPE]
    oos = [i for i, g in enumerate(gold) if g == OUT_OF_SCOPE]
    in_acc = float(np.mean([predicted[i] == gold[i] for i in in_scope])) if in_scope else 0.0
    oos_recall = float(np.mean([predicted[i] == OUT_OF_SCOPE for i in oos])) if oos else None
    oos_precision, oos_f1 = _oos_precision_f1(gold, predicted) if oos else (None, None)
    bands = Counter(thresholds.band(p.intent, p.confidence) for p in predictions)
    deferred = sum(
        1 for p in predictions if p.intent == OUT_OF_SCOPE or p.confidence < thresholds.act
    )
    sample = texts[:: max(1, len(texts) // LATENCY_SAMPLE)][:LATENCY_SAMPLE]
    p50, p95 = latency_ms(latency_classifier or classifier, sample)
    report = EvalReport(
        n_train=n_train,
        n_test=len(test),
        n_in_scope=len(in_scope),
        n_oos=len(oos),
        in_scope_accuracy=in_acc,
        oos_recall=oos_recall,
        macro_f1=macro_f1(gold, predicted),
        bands={b: bands.get(b, 0) for b in ("act", "clarify", "repair")},
        paths={"classifier": len(test) - deferred, "llm (when configured)": deferred},
        latency_p50_ms=p50,
        latency_p95_ms=p95,
        train_seconds=train_seconds,
        oos_threshold=classifier.oos_threshold,
        oos_precision=oos_precision,
        oos_f1=oos_f1,
    )
    return report, predictions


def _oos_precision_f1(gold: Sequence[str], predicted: Sequence[str]) -> tuple[float, float]:
    """Precision and F1 of the out-of-scope label (precision 0 when nothing was rejected)."""
    pairs = list(zip(gold, predicted, strict=True))
    hit = sum(1 for g, p in pairs if g == p == OUT_OF_SCOPE)
    rejected = sum(1 for _, p in pairs if p == OUT_OF_SCOPE)
    actual = sum(1 for g, _ in pairs if g == OUT_OF_SCOPE)
    precision = hit / rejected if rejected else 0.0
    recall = hit / actual if actual else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, f1

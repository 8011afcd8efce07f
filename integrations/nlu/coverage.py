"""Checks an agent's examples before any caller does: confusable and under-covered intents.

Text only, in seconds: the agent's own examples are cross-validated (each fold is held
out in turn and classified by a classifier trained on the others, variants and all), so
the figures estimate how the classifier treats phrasings it has not seen. The report
lists intents with too few examples, pairs of intents the folds confused, examples of
different intents that the encoder finds near-identical, and the estimated share of
requests acted on (rightly and wrongly) at the agent's thresholds.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from integrations.nlu.base import NLUThresholds
from integrations.nlu.embedding import ClassifierSettings, EmbeddingIntentClassifier
from integrations.nlu.encoder import SentenceEncoder
from integrations.nlu.normalise import normalise

MIN_EXAMPLES = 5
"""Intents with fewer examples are reported as under-covered."""
DUPLICATE_SIMILARITY = 0.9
"""Examples of two intents at least this similar (cosine) are reported as near-duplicates."""
CONFUSED_MIN = 2
"""A pair of intents confused at least this often in cross-validation is reported."""


@dataclass
class CoverageReport:
    """What :func:`check_examples` found (rates between 0 and 1)."""

    n_examples: int
    folds: int
    act_rate: float
    wrong_action_rate: float
    few_examples: list[tuple[str, int]] = field(default_factory=list)
    confused: list[tuple[str, str, int]] = field(default_factory=list)
    near_duplicates: list[tuple[str, str, str, str, float]] = field(default_factory=list)
    act_rate_by_intent: dict[str, float] = field(default_factory=dict)

    def warnings(self) -> list[str]:
        """One line per problem, for the agent's author."""
        out = [
            f"intent {name!r} has {n} example(s); give it at least {MIN_EXAMPLES}"
            for name, n in self.few_examples
        ]
        out += [
            f"intents {a!r} and {b!r} are confusable: {n} held-out example(s) of {a!r} "
            f"were taken for {b!r}"
            for a, b, n in self.confused
        ]
        out += [
            f"near-duplicate examples ({sim:.2f}): {ta!r} ({ia}) and {tb!r} ({ib})"
            for ta, ia, tb, ib, sim in self.near_duplicates
        ]
        return out


class _MemoEncoder(SentenceEncoder):
    """Encodes each distinct text once (the folds share most of their training texts)."""

    def __init__(self, inner: SentenceEncoder):  # noqa: D107 - wraps, loads nothing
        self._inner = inner
        self.model_path = inner.model_path
        self.models = inner.models
        self._memo: dict[str, np.ndarray] = {}

    def encode(self, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
        """The inner encoder's vectors, remembered by text."""
        missing = [t for t in dict.fromkeys(texts) if t not in self._memo]
        if missing:
            for text, vector in zip(missing, self._inner.encode(missing), strict=True):
                self._memo[text] = vector
        if not texts:
            return self._inner.encode([])
        return np.stack([self._memo[t] for t in texts])


def _folds(examples: Sequence[tuple[str, str]], k: int, seed: int = 0) -> list[int]:
    """A fold number per example, each intent spread over the folds (deterministic)."""
    by_intent: dict[str, list[int]] = {}
    for row, (_, intent) in enumerate(examples):
        by_intent.setdefault(intent, []).append(row)
    fold = [0] * len(examples)
    rng = random.Random(seed)
    for intent in sorted(by_intent):
        rows = by_intent[intent]
        rng.shuffle(rows)
        offset = rng.randrange(k)
        for n, row in enumerate(rows):
            fold[row] = (n + offset) % k
    return fold


def check_examples(
    examples: Sequence[tuple[str, str]],
    thresholds: NLUThresholds,
    *,
    encoder: SentenceEncoder | None = None,
    settings: ClassifierSettings | None = None,
    folds: int = 5,
) -> CoverageReport:
    """Cross-validate an agent's ``(text, intent)`` examples and look for trouble.

    Args:
        examples: The agent's examples (``AgentDefinition.training_examples()``).
        thresholds: The agent's band thresholds (for the estimated act rate).
        encoder: The sentence encoder (default: the process-wide one).
        settings: Classifier training settings (default: the shipped ones).
        folds: Cross-validation folds (at least 2).
    """
    if folds < 2:
        raise ValueError("folds must be at least 2")
    encoder = _MemoEncoder(encoder or SentenceEncoder.shared())
    counts = Counter(intent for _, intent in examples)
    fold = _folds(examples, folds)
    confused: Counter[tuple[str, str]] = Counter()
    acted_right: Counter[str] = Counter()
    acted = wrong = 0
    for k in range(folds):
        train = [e for e, f in zip(examples, fold, strict=True) if f != k]
        held = [e for e, f in zip(examples, fold, strict=True) if f == k]
        if not held or len({i for _, i in train}) < 2:
            continue
        classifier = EmbeddingIntentClassifier.train(train, encoder=encoder, settings=settings)
        predictions = classifier.classify_batch([t for t, _ in held])
        for (_, gold), p in zip(held, predictions, strict=True):
            top = p.ranking[0][0] if p.ranking else p.intent
            if top != gold:
                confused[(gold, top)] += 1
            if thresholds.band(p.intent, p.confidence) == "act":
                acted += 1
                if p.intent == gold:
                    acted_right[gold] += 1
                else:
                    wrong += 1
    n = max(len(examples), 1)
    return CoverageReport(
        n_examples=len(examples),
        folds=folds,
        act_rate=(acted - wrong) / n,
        wrong_action_rate=wrong / n,
        few_examples=sorted((i, c) for i, c in counts.items() if c < MIN_EXAMPLES),
        confused=sorted(
            ((a, b, c) for (a, b), c in confused.items() if c >= CONFUSED_MIN),
            key=lambda x: (-x[2], x),
        ),
        near_duplicates=near_duplicates(examples, encoder),
        act_rate_by_intent={i: acted_right[i] / c for i, c in sorted(counts.items())},
    )


def near_duplicates(
    examples: Sequence[tuple[str, str]],
    encoder: SentenceEncoder,
    threshold: float = DUPLICATE_SIMILARITY,
) -> list[tuple[str, str, str, str, float]]:
    """Pairs of examples of different intents whose embeddings are at least ``threshold`` alike."""
    if len(examples) < 2:
        return []
    vectors = encoder.encode([normalise(t) for t, _ in examples])
    sims = vectors @ vectors.T
    labels = np.array([i for _, i in examples])
    different = labels[:, None] != labels[None, :]
    rows, cols = np.nonzero(np.triu((sims >= threshold) & different, k=1))
    pairs = [
        (
            examples[r][0],
            examples[r][1],
            examples[c][0],
            examples[c][1],
            round(float(sims[r, c]), 3),
        )
        for r, c in zip(rows.tolist(), cols.tolist(), strict=True)
    ]
    return sorted(pairs, key=lambda p: -p[4])

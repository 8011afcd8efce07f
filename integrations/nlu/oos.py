"""Out-of-scope detection: when is the best intent not good enough to be an intent at all.

No out-of-scope training examples are needed: an utterance is out of scope when
the head's best probability is below a threshold. When some out-of-scope
examples are available (CLINC150's ``oos_train``, or generic ones), the
threshold is fitted so that a target share of them falls below it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_OOS_THRESHOLD = 0.35
"""Best-intent probability below which an utterance is out of scope (no OOS examples)."""


@dataclass(frozen=True)
class FixedOOSThreshold:
    """A fixed probability threshold.

    Parameters:
        threshold: Out of scope when the best probability is below this.
    """

    threshold: float = DEFAULT_OOS_THRESHOLD

    def fit(self, oos_scores: np.ndarray) -> float:
        """The threshold (ignores any out-of-scope examples)."""
        del oos_scores
        return self.threshold


@dataclass(frozen=True)
class RecallTargetOOSThreshold:
    """Fits the threshold on out-of-scope examples to reach a target recall.

    Parameters:
        target_recall: Share of the out-of-scope examples that must fall below it.
        fallback: The threshold when there are no out-of-scope examples.
        minimum: Never below this (a gated score of 0 is always out of scope).
        ceiling: Never above this (keeps in-scope recall when the examples are odd).
    """

    target_recall: float = 0.55
    fallback: float = DEFAULT_OOS_THRESHOLD
    minimum: float = 0.1
    ceiling: float = 0.9

    def fit(self, oos_scores: np.ndarray) -> float:
        """The threshold for these best-intent probabilities of out-of-scope examples."""
        if len(oos_scores) == 0:
            return self.fallback
        fitted = float(np.quantile(oos_scores, self.target_recall))
        return min(max(fitted, self.minimum), self.ceiling)


OOSThresholdStrategy = FixedOOSThreshold | RecallTargetOOSThreshold


@dataclass(frozen=True)
class SimilarityGate:
    """Scales confidence down when the utterance is unlike every training example.

    A softmax over a few intents is confident about anything ("what is the capital
    of France" -> ``location``); the cosine similarity to the nearest training
    example is not. The factor is 0 at or below ``floor``, 1 at or above ``full``,
    linear between; it multiplies every intent's probability.

    Parameters:
        floor: Similarity at or below which nothing is in scope.
        full: Similarity from which the probability is trusted as is.
    """

    floor: float = 0.25
    full: float = 0.5

    def factor(self, similarity: np.ndarray) -> np.ndarray:
        """The confidence factor for each nearest-example similarity."""
        span = max(self.full - self.floor, 1e-6)
        return np.clip((similarity - self.floor) / span, 0.0, 1.0)

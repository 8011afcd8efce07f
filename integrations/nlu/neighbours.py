"""The training examples' embeddings: nearest-example similarity and a kNN intent vote."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BLOCK = 256


@dataclass(frozen=True)
class KnnVote:
    """How the nearest training examples vote.

    Parameters:
        k: How many neighbours vote.
        temperature: Softness of the similarity weights (``exp((s - 1) / T)``).
    """

    k: int = 10
    temperature: float = 0.05


class NearestExamples:
    """Unit embeddings of the training examples with their intent indices."""

    def __init__(self, embeddings: np.ndarray, labels: np.ndarray, n_classes: int):
        """Wrap the examples.

        Args:
            embeddings: ``(n, dim)`` unit vectors.
            labels: ``(n,)`` index of each example's intent.
            n_classes: How many intents.
        """
        self.embeddings = embeddings.astype(np.float32)
        self.labels = labels.astype(np.int64)
        self.n_classes = n_classes

    def nearest_and_vote(
        self, queries: np.ndarray, vote: KnnVote | None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Similarity to the nearest example, and (if ``vote``) a kNN distribution over intents.

        Returns:
            ``(n,)`` similarities and ``(n, n_classes)`` vote shares (or None).
        """
        n = len(queries)
        nearest = np.zeros(n, np.float32)
        shares = np.zeros((n, self.n_classes), np.float32) if vote else None
        for start in range(0, n, BLOCK):
            sims = queries[start : start + BLOCK] @ self.embeddings.T
            nearest[start : start + BLOCK] = sims.max(axis=1)
            if vote is None or shares is None:
                continue
            k = min(vote.k, sims.shape[1])
            top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
            weights = np.exp((np.take_along_axis(sims, top, axis=1) - 1.0) / vote.temperature)
            block = np.zeros((len(sims), self.n_classes), np.float32)
            rows = np.repeat(np.arange(len(sims)), k)
            np.add.at(block, (rows, self.labels[top].ravel()), weights.ravel())
            shares[start : start + BLOCK] = block / np.maximum(
                block.sum(axis=1, keepdims=True), 1e-12
            )
        return nearest, shares

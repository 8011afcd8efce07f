"""The trained head: multinomial logistic regression on [embedding ; n-gram TF-IDF].

Trained with mini-batch Adam in numpy (no scikit-learn, no torch), a few seconds
for an agent's intents and well under a minute for CLINC150.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from loguru import logger

from integrations.nlu.lexical import NgramVocabulary, SparseRows


@dataclass(frozen=True)
class HeadTraining:
    """Hyper-parameters of the head (defaults tuned on CLINC150 val).

    Parameters:
        epochs: Passes over the training data.
        min_steps: At least this many updates (small agent data sets need more passes).
        batch_size: Examples per update.
        learning_rate: Adam step size.
        l2: Weight decay.
        lexical_weight: Scale of the n-gram features against the embedding.
        seed: Random seed (training is deterministic).
    """

    epochs: int = 30
    min_steps: int = 900
    batch_size: int = 512
    learning_rate: float = 0.02
    l2: float = 3e-6
    lexical_weight: float = 1.0
    seed: int = 0


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax."""
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class LinearIntentHead:
    """Softmax regression over the sentence embedding and n-gram features."""

    def __init__(
        self,
        classes: tuple[str, ...],
        vocabulary: NgramVocabulary,
        dense_weights: np.ndarray,
        bias: np.ndarray,
        sparse_weights: np.ndarray,
        lexical_weight: float,
    ):
        """Wrap trained weights (use :meth:`train` or :meth:`load`)."""
        self.classes = classes
        self.vocabulary = vocabulary
        self._w = dense_weights.astype(np.float32)
        self._b = bias.astype(np.float32)
        self._ws = sparse_weights.astype(np.float32)
        self._lexical_weight = lexical_weight

    @classmethod
    def train(
        cls,
        embeddings: np.ndarray,
        texts: list[str],
        labels: list[str],
        config: HeadTraining | None = None,
    ) -> LinearIntentHead:
        """Fit the head.

        Args:
            embeddings: ``(n, dim)`` unit vectors of the training texts.
            texts: The training texts (for the n-gram features).
            labels: The intent of each text.
            config: Hyper-parameters.
        """
        cfg = config or HeadTraining()
        classes = tuple(sorted(set(labels)))
        index = {c: i for i, c in enumerate(classes)}
        y = np.array([index[label] for label in labels])
        vocabulary = NgramVocabulary.fit(texts)
        sparse = vocabulary.transform(texts)
        n, dim = embeddings.shape
        n_classes, n_terms = len(classes), len(vocabulary)
        rng = np.random.default_rng(cfg.seed)
        params = [
            np.zeros((dim, n_classes), np.float32),
            np.zeros(n_classes, np.float32),
            np.zeros((n_terms, n_classes), np.float32),
        ]
        first = [np.zeros_like(p) for p in params]
        second = [np.zeros_like(p) for p in params]
        onehot = np.eye(n_classes, dtype=np.float32)[y]
        batch = min(cfg.batch_size, n)
        steps_per_epoch = -(-n // batch)
        epochs = max(cfg.epochs, -(-cfg.min_steps // steps_per_epoch))
        lw = cfg.lexical_weight
        step = 0
        for _ in range(epochs):
            order = rng.permutation(n)
            for start in range(0, n, batch):
                rows = order[start : start + batch]
                x, xs = embeddings[rows], sparse.take(rows)
                probs = softmax(x @ params[0] + params[1] + lw * xs.matmul(params[2]))
                grad = (probs - onehot[rows]) / len(rows)
                grads = [
                    x.T @ grad + cfg.l2 * params[0],
                    grad.sum(axis=0),
                    lw * xs.transpose_matmul(grad, n_terms) + cfg.l2 * params[2],
                ]
                step += 1
                for k, (p, g) in enumerate(zip(params, grads, strict=True)):
                    first[k] = 0.9 * first[k] + 0.1 * g
                    second[k] = 0.999 * second[k] + 0.001 * g * g
                    m_hat = first[k] / (1 - 0.9**step)
                    v_hat = second[k] / (1 - 0.999**step)
                    p -= cfg.learning_rate * m_hat / (np.sqrt(v_hat) + 1e-8)
        logger.debug(
            f"NLU head trained: {n} examples, {n_classes} intents, {n_terms} n-grams, {step} steps"
        )
        return cls(classes, vocabulary, params[0], params[1], params[2], lw)

    def predict_proba(self, embeddings: np.ndarray, texts: list[str]) -> np.ndarray:
        """Class probabilities, ``(n, n_classes)``."""
        sparse: SparseRows = self.vocabulary.transform(texts)
        logits = embeddings @ self._w + self._b + self._lexical_weight * sparse.matmul(self._ws)
        return softmax(logits)

    def save(self, path: Path, **extra: np.ndarray | np.generic) -> None:
        """Write the head (and any extra arrays) to an ``.npz`` file atomically."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(
            tmp,
            classes=np.array(self.classes),
            terms=np.array(self.vocabulary.terms, dtype=str),
            idf=self.vocabulary.idf,
            w=self._w,
            b=self._b,
            ws=self._ws,
            lexical_weight=np.float32(self._lexical_weight),
            allow_pickle=True,  # numpy's default, named so ``extra`` cannot be taken for it
            **extra,
        )
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> tuple[LinearIntentHead, dict[str, np.ndarray]]:
        """Read a head written by :meth:`save`; also returns the extra arrays."""
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        head = cls(
            tuple(str(c) for c in arrays.pop("classes")),
            NgramVocabulary([str(t) for t in arrays.pop("terms")], arrays.pop("idf")),
            arrays.pop("w"),
            arrays.pop("b"),
            arrays.pop("ws"),
            float(arrays.pop("lexical_weight")),
        )
        return head, arrays

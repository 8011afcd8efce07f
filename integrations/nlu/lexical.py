"""Word n-gram TF-IDF features that sit beside the sentence embedding.

A frozen sentence encoder blurs the keywords that often decide an intent
("freeze my card" vs "my card is frozen"); sparse word unigrams and bigrams
give the linear head those cues back. Pure numpy, CSR-style rows.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

_WORD = re.compile(r"[a-z0-9']+")


def ngrams(text: str) -> set[str]:
    """Lower-cased word unigrams and bigrams of ``text``."""
    words = _WORD.findall(text.lower())
    return set(words) | {f"{a} {b}" for a, b in zip(words, words[1:], strict=False)}


@dataclass(frozen=True)
class SparseRows:
    """Rows of a sparse matrix in CSR layout.

    Parameters:
        indptr: Row ``r`` holds entries ``indptr[r]:indptr[r+1]``.
        indices: Column of each entry.
        values: Value of each entry.
    """

    indptr: np.ndarray
    indices: np.ndarray
    values: np.ndarray

    @property
    def n_rows(self) -> int:
        """How many rows."""
        return len(self.indptr) - 1

    def take(self, rows: np.ndarray) -> SparseRows:
        """The given rows, in that order."""
        starts, ends = self.indptr[rows], self.indptr[rows + 1]
        lengths = ends - starts
        indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        pick = np.concatenate([np.arange(s, e) for s, e in zip(starts, ends, strict=True)] or [[]])
        pick = pick.astype(np.int64)
        return SparseRows(indptr, self.indices[pick], self.values[pick])

    def row_ids(self) -> np.ndarray:
        """The row of each entry."""
        return np.repeat(np.arange(self.n_rows), np.diff(self.indptr))

    def matmul(self, weights: np.ndarray) -> np.ndarray:
        """``self @ weights`` as a dense ``(n_rows, weights.shape[1])`` array."""
        out = np.zeros((self.n_rows, weights.shape[1]), dtype=np.float32)
        if len(self.indices) == 0:
            return out
        contributions = self.values[:, None] * weights[self.indices]
        lengths = np.diff(self.indptr)
        nonempty = lengths > 0
        out[nonempty] = np.add.reduceat(contributions, self.indptr[:-1][nonempty], axis=0)
        return out

    def transpose_matmul(self, grad: np.ndarray, n_cols: int) -> np.ndarray:
        """``self.T @ grad`` as a dense ``(n_cols, grad.shape[1])`` array."""
        out = np.zeros((n_cols, grad.shape[1]), dtype=np.float32)
        np.add.at(out, self.indices, self.values[:, None] * grad[self.row_ids()])
        return out


class NgramVocabulary:
    """The n-grams seen in training, with their inverse document frequencies."""

    def __init__(self, terms: Sequence[str], idf: np.ndarray):
        """Wrap a fitted vocabulary (see :meth:`fit`)."""
        self.terms = tuple(terms)
        self.idf = idf.astype(np.float32)
        self._index = {t: i for i, t in enumerate(self.terms)}

    @classmethod
    def fit(cls, texts: Sequence[str], *, min_count: int | None = None) -> NgramVocabulary:
        """Learn the vocabulary from training texts.

        Args:
            texts: The training utterances.
            min_count: Keep n-grams seen in at least this many texts (default 2 for
                corpora of 2,000 texts or more, else 1).
        """
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(ngrams(text))
        floor = min_count if min_count is not None else (2 if len(texts) >= 2000 else 1)
        terms = sorted(t for t, c in counts.items() if c >= floor)
        n = len(texts)
        idf = np.array([np.log((1 + n) / (1 + counts[t])) + 1.0 for t in terms], dtype=np.float32)
        return cls(terms, idf)

    def __len__(self) -> int:
        return len(self.terms)

    def transform(self, texts: Iterable[str]) -> SparseRows:
        """L2-normalised TF-IDF rows (binary term frequency) for ``texts``."""
        indptr = [0]
        indices: list[int] = []
        values: list[np.ndarray] = []
        for text in texts:
            cols = sorted(self._index[t] for t in ngrams(text) if t in self._index)
            if cols:
                v = self.idf[cols]
                values.append(v / np.linalg.norm(v))
                indices.extend(cols)
            indptr.append(len(indices))
        return SparseRows(
            np.asarray(indptr, dtype=np.int64),
            np.asarray(indices, dtype=np.int64),
            np.concatenate(values).astype(np.float32) if values else np.zeros(0, np.float32),
        )

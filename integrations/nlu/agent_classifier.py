"""The classifier an agent runs with: its examples, on the encoder tuned to them when it can be.

``bot/call/startup.py`` and the NLU benches build it here, so the benches measure what
calls use.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

from loguru import logger

from integrations.nlu.embedding import EmbeddingIntentClassifier, tuning_phrasings
from integrations.nlu.encoder import EncoderModel, SentenceEncoder, default_models
from integrations.nlu.tuning import EncoderTuning, EncoderTuningError, tuned_encoder_model

_loaded: dict[Path, SentenceEncoder] = {}
_loaded_lock = threading.Lock()


def tuned_encoder(model: Path) -> SentenceEncoder:
    """The tuned ``model`` joined to the stock models (one such encoder per process).

    The stock models stay beside it: on the dev requests heard through the phone line (slt,
    rms, kal; 393) the tuned model in place of the stock all-MiniLM-L6-v2 acted right on 302
    (5 wrong), beside both stock models on 304 (3 wrong; 10 dB babble 106 / 4 -> 117 / 5),
    alone on 294 (15 wrong). About 4 ms more per utterance.
    """
    with _loaded_lock:
        if model not in _loaded:
            _loaded[model] = SentenceEncoder(models=(EncoderModel(model), *default_models()))
        return _loaded[model]


def tuned_model(
    examples: Sequence[tuple[str, str]], cache_dir: Path, tuning: EncoderTuning | None = None
) -> Path:
    """The encoder model tuned to an agent's examples (trained unless cached).

    Raises:
        EncoderTuningError: the ``tune`` extra is missing or training failed.
    """
    return tuned_encoder_model(tuning_phrasings(examples), cache_dir, tuning)


def agent_classifier(
    examples: Sequence[tuple[str, str]],
    cache_dir: Path,
    *,
    tune: bool,
    tuning: EncoderTuning | None = None,
) -> EmbeddingIntentClassifier:
    """The agent's classifier, its head and tuned encoder cached in ``cache_dir``.

    Args:
        examples: ``AgentDefinition.training_examples()``.
        cache_dir: Folder for trained heads and tuned encoders.
        tune: Tune the encoder to the examples (``CALLAGENT_NLU_TUNE_ENCODER``); when the
            ``tune`` extra is missing or tuning fails, the stock encoder is used and a
            warning says why.
        tuning: Training settings of the encoder.
    """
    encoder = None
    if tune:
        try:
            encoder = tuned_encoder(tuned_model(examples, cache_dir, tuning))
        except EncoderTuningError as e:
            logger.warning(f"Intents from the stock sentence encoder: {e}")
    return EmbeddingIntentClassifier.for_examples(examples, cache_dir, encoder=encoder)

"""The recogniser's domain language model, built from the agent file (composition root).

The agent's own words (intent examples, knowledge-base questions and answers, every line
the agent says, intent descriptions, the agent's name and persona) make the domain
model; general English comes from the CLINC150 and BANKING77 request texts beside the
repository (``../shared/datasets``) when present. See
:mod:`integrations.speech.domain_lm`. The same words tell the classifier which rare words
the recogniser prints as a sound-alike (:func:`agent_sound_alikes`).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from loguru import logger

from integrations.nlu.base import IntentClassifier
from integrations.nlu.sound_alike import SoundAlikeClassifier, SoundAlikeWords
from integrations.speech.domain_lm import WordLanguageModel, build_domain_model
from processors.agent_definition import AgentDefinition

DEFAULT_GENERAL_CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "datasets"
"""``../shared/datasets`` beside the repository (CLINC150, BANKING77)."""


def agent_texts(agent: AgentDefinition) -> list[str]:
    """Every sentence of the agent file the recogniser should find likely."""
    texts = [example for example, _ in agent.training_examples()]
    texts += agent.fixed_lines()
    for intent in agent.intents:
        texts.append(intent.description)
        for line in (intent.response, intent.response_known_caller):
            # Template fields ({when}, {first_name}) are no words a caller says.
            texts += [part.split("}")[-1] for part in line.split("{") if part.strip()]
    texts += [agent.name, agent.persona]
    return [text for text in texts if text.strip()]


def general_english(folder: Path) -> list[str]:
    """Request texts from CLINC150 (``train`` and ``oos_train``) and BANKING77 (``train``).

    Returns an empty list when neither file is there.
    """
    texts: list[str] = []
    clinc = folder / "clinc150" / "train_val.json"
    if clinc.is_file():
        data = json.loads(clinc.read_text())
        texts += [str(item[0]) for key in ("train", "oos_train") for item in data.get(key, [])]
    banking = folder / "banking77" / "train.csv"
    if banking.is_file():
        with banking.open(newline="") as f:
            texts += [row["text"] for row in csv.DictReader(f) if row.get("text")]
    return texts


def build_agent_lm(
    agent: AgentDefinition, general_corpus: Path | None, *, domain_weight: float
) -> WordLanguageModel:
    """The agent's domain model interpolated with general English (when found).

    Args:
        agent: The agent definition.
        general_corpus: Folder holding ``clinc150/`` and ``banking77/`` (None: the
            domain model alone).
        domain_weight: The domain model's share of the mixture.
    """
    general = general_english(general_corpus) if general_corpus else []
    if general_corpus and not general:
        # measured alike (dev requests heard offline, clean: 274 of 393 acted right either
        # way, 7 against 6 acted wrong), so an install without the datasets is not warned
        logger.info(
            f"ASR language model: no general-English text under {general_corpus}; "
            "using the agent's words alone"
        )
    return build_domain_model(agent_texts(agent), general, domain_weight=domain_weight)


def agent_sound_alikes(agent: AgentDefinition) -> SoundAlikeWords | None:
    """The agent's rare words, mended back when the recogniser prints a sound-alike.

    Common words are the ones the embedded recogniser's tokenizer spells whole; None
    (nothing mended) when its model files are not installed.
    """
    from integrations.speech.moonshine_models import whole_words

    try:
        common = whole_words()
    except FileNotFoundError as e:
        logger.warning(f"Sound-alike words not mended: {e}")
        return None
    return SoundAlikeWords(agent_texts(agent), common)


def with_sound_alikes(classifier: IntentClassifier, agent: AgentDefinition) -> IntentClassifier:
    """``classifier`` reading the agent's rare words mended back (as it is when it cannot)."""
    words = agent_sound_alikes(agent)
    return classifier if words is None else SoundAlikeClassifier(classifier, words)

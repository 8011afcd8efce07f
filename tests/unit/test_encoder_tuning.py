"""Tuning the sentence encoder to an agent: real training in a child process (torch, tiny data)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from loguru import logger

from integrations.nlu import agent_classifier as agent_classifier_module
from integrations.nlu import tuning
from integrations.nlu.agent_classifier import agent_classifier, tuned_encoder
from integrations.nlu.embedding import tuning_phrasings
from integrations.nlu.encoder import SentenceEncoder
from integrations.nlu.tuning import (
    EncoderTuning,
    EncoderTuningError,
    cache_path,
    training_pairs,
    tuned_encoder_model,
)

pytestmark = pytest.mark.skipif(
    not tuning.tuning_available(), reason="the tune extra is not installed"
)

LABELLED = [
    ("what time do you open", "hours"),
    ("when are you open", "hours"),
    ("are you open on saturday", "hours"),
    ("what are your hours", "hours"),
    ("where is the clinic", "address"),
    ("what is your address", "address"),
    ("how do i get to you", "address"),
    ("where are you located", "address"),
    ("i want to cancel my appointment", "cancel"),
    ("please cancel my visit", "cancel"),
    ("i can't make it, cancel it", "cancel"),
    ("call off my booking", "cancel"),
    ("book me a table for two", "out_of_scope"),
    ("is my car ready", "out_of_scope"),
]
QUICK = EncoderTuning(pairs_per_example=4, epochs=2, learning_rate=5e-5, batch_size=8)


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tuned_encoder_model(LABELLED, tmp_path_factory.mktemp("tuned"), QUICK)


def _margin(encoder: SentenceEncoder) -> float:
    """Mean similarity within an intent minus across intents, over the in-scope phrasings."""
    texts = [t for t, label in LABELLED if label != "out_of_scope"]
    labels = np.array([label for t, label in LABELLED if label != "out_of_scope"])
    vectors = encoder.encode(texts)
    similarity = vectors @ vectors.T
    same = labels[:, None] == labels[None, :]
    off_diagonal = ~np.eye(len(texts), dtype=bool)
    return float(similarity[same & off_diagonal].mean() - similarity[~same].mean())


def test_pairs_join_phrasings_of_one_intent_and_part_two(tmp_path: Path) -> None:
    pairs = training_pairs(LABELLED, EncoderTuning(pairs_per_example=2))
    label = dict(LABELLED)
    assert len(pairs) == 4 * len(LABELLED)
    assert all((label[a] == label[b]) == (y == 1.0) for a, b, y in pairs)
    assert sum(y for _, _, y in pairs) == 2 * len(LABELLED)
    assert pairs == training_pairs(LABELLED, EncoderTuning(pairs_per_example=2))


def test_the_cache_key_follows_the_phrasings_and_the_training(tmp_path: Path) -> None:
    first = cache_path(LABELLED, tmp_path, QUICK)
    assert first == cache_path(list(reversed(LABELLED)), tmp_path, QUICK)
    assert first != cache_path(LABELLED[:-1], tmp_path, QUICK)
    assert first != cache_path(LABELLED, tmp_path, EncoderTuning())


def test_tuning_draws_an_agents_intents_apart(tuned: Path) -> None:
    stock = SentenceEncoder.shared()
    tuned_one = tuned_encoder(tuned)
    assert tuned_one.models[0].path == tuned
    assert tuned_one.models[1:] == stock.models  # the stock models stay beside it
    assert _margin(tuned_one.primary()) > _margin(stock.primary()) + 0.05


def test_a_tuned_encoder_is_trained_once_then_loaded(
    tuned: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("trained again")

    monkeypatch.setattr(subprocess, "run", no_training)
    assert tuned_encoder_model(LABELLED, tuned.parent, QUICK) == tuned


def test_a_failing_training_is_an_error_and_leaves_no_model(tmp_path: Path) -> None:
    broken = EncoderTuning(batch_size=0)  # the child process fails on it
    with pytest.raises(EncoderTuningError, match="exited with"):
        tuned_encoder_model(LABELLED, tmp_path, broken)
    assert not cache_path(LABELLED, tmp_path, broken).exists()
    assert not list(tmp_path.glob("*.json"))


def test_the_agent_keeps_the_stock_encoder_when_tuning_cannot_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tuning, "tuning_available", lambda: False)
    warnings: list[str] = []
    handler = logger.add(warnings.append, level="WARNING", format="{message}")
    try:
        examples = [(t, label) for t, label in LABELLED if label != "out_of_scope"]
        classifier = agent_classifier(examples, tmp_path, tune=True)
    finally:
        logger.remove(handler)
    assert classifier.classify("when do you open").intent == "hours"
    assert any("stock sentence encoder" in w and "[tune]" in w for w in warnings)


def test_the_agent_classifier_runs_on_the_tuned_encoder(
    tuned: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    examples = [(t, label) for t, label in LABELLED if label != "out_of_scope"]
    asked: list[list[tuple[str, str]]] = []

    def cached(labelled: list[tuple[str, str]], cache_dir: Path, tuning: object = None) -> Path:
        asked.append(list(labelled))
        return tuned

    monkeypatch.setattr(agent_classifier_module, "tuned_encoder_model", cached)
    classifier = agent_classifier(examples, tmp_path, tune=True)
    assert asked == [tuning_phrasings(examples)]
    assert classifier.classify("where are you located").intent == "address"
    assert classifier.classify("cancel my appointment please").intent == "cancel"
    untuned = agent_classifier(examples, tmp_path, tune=False)
    assert untuned.classify("where are you located").intent == "address"
    assert len(asked) == 1

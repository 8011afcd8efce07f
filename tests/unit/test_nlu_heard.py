import numpy as np
import pytest

from integrations.nlu.embedding import EmbeddingIntentClassifier, cache_key
from integrations.nlu.encoder import SentenceEncoder
from integrations.speech.audio import PHONE_SAMPLE_RATE
from integrations.speech.nbest import Hypothesis, Recognition
from simulator.nlu.heard_examples import (
    HeardExample,
    HeardFilter,
    hear_examples,
    heard_path,
    load_heard,
    save_heard,
)

EXAMPLES = [
    ("what time do you open", "hours"),
    ("when do you close today", "hours"),
    ("are you open on saturday", "hours"),
    ("where is your office", "address"),
    ("what is your address", "address"),
    ("how do i find you", "address"),
]


class Voice:
    def __init__(self, name: str, rate: int = 16000) -> None:
        self.name, self.rate = name, rate
        self.spoken: list[str] = []

    def speak(self, text: str) -> tuple[bytes, int]:
        self.spoken.append(text)
        return bytes(2 * self.rate // 2), self.rate  # half a second


class Ear:
    """Hears whatever it was told to, at 8 kHz only (the phone channel's rate)."""

    def __init__(self, heard: dict[str, tuple[str, float]]) -> None:
        self.heard, self.calls = list(heard.values()), 0
        self.rates: list[int] = []

    def transcribe(self, pcm16: bytes, sample_rate: int) -> str:
        return self.recognize(pcm16, sample_rate).text

    def recognize(self, pcm16: bytes, sample_rate: int) -> Recognition:
        self.rates.append(sample_rate)
        text, confidence = self.heard[self.calls % len(self.heard)]
        self.calls += 1
        if not text:
            return Recognition()
        return Recognition((Hypothesis(text, token_logprob=float(np.log(confidence))),))


def test_every_example_is_heard_in_every_voice_through_the_phone_line():
    ear = Ear({"a": ("what time do you often", 0.9), "b": ("where is your office", 0.95)})
    voices = [Voice("one"), Voice("two", 22050)]
    heard = hear_examples(EXAMPLES[:2], voices, ear)
    assert [(h.example, h.voice) for h in heard] == [
        ("what time do you open", "one"),
        ("when do you close today", "one"),
        ("what time do you open", "two"),
        ("when do you close today", "two"),
    ]
    assert set(ear.rates) == {PHONE_SAMPLE_RATE}
    assert heard[0].heard == "what time do you often" and heard[0].confidence == 0.9


def test_only_new_clear_transcripts_of_one_intent_train():
    heard = [
        HeardExample("what time do you open", "hours", "v", "What time do you often?", 0.9),
        HeardExample("what time do you open", "hours", "w", "what time do you open", 0.99),
        HeardExample("when do you close", "hours", "v", "", 0.0),
        HeardExample("when do you close", "hours", "w", "when do you", 0.9),
        HeardExample("are you open", "hours", "v", "are you opening", 0.3),
        HeardExample("where are you", "address", "v", "where are you open", 0.9),
        HeardExample("are you open today", "hours", "v", "where are you open", 0.9),
        HeardExample("what time do you open", "hours", "x", "what time do you often", 0.8),
    ]
    assert HeardFilter().pairs(heard) == [
        ("what time do you often", "hours"),
        ("are you opening", "hours"),
    ]
    assert HeardFilter(min_confidence=0.5).pairs(heard) == [("what time do you often", "hours")]


def test_heard_examples_are_kept_per_examples_voices_and_recogniser(tmp_path):
    path = heard_path(tmp_path, EXAMPLES, ["piper"], "moonshine;beam=2")
    assert path.parent == tmp_path / "heard"
    assert path == heard_path(tmp_path, list(reversed(EXAMPLES)), ["piper"], "moonshine;beam=2")
    assert path != heard_path(tmp_path, EXAMPLES, ["piper", "kal"], "moonshine;beam=2")
    assert path != heard_path(tmp_path, EXAMPLES, ["piper"], "moonshine;beam=1")
    assert path != heard_path(tmp_path, EXAMPLES[1:], ["piper"], "moonshine;beam=2")
    assert load_heard(path) is None
    heard = [HeardExample("where is your office", "address", "piper", "where is your off is", 0.8)]
    save_heard(path, heard)
    assert load_heard(path) == heard
    path.write_text("not json")
    assert load_heard(path) is None


@pytest.fixture(scope="module")
def encoder():
    return SentenceEncoder.shared()


def test_the_classifier_trains_on_heard_examples(encoder, tmp_path):
    misheard = "wear his you're off his"
    plain = EmbeddingIntentClassifier.train(EXAMPLES, encoder=encoder)
    heard = [(misheard, "address"), ("what time do you often", "hours")]
    trained = EmbeddingIntentClassifier.for_examples(
        EXAMPLES, tmp_path, encoder=encoder, heard=heard
    )
    with_heard = trained.classify(misheard)
    assert with_heard.intent == "address"
    assert with_heard.confidence > plain.classify(misheard).ranking[0][1]
    # heard examples are part of the cached head's key, and reload from it
    from integrations.nlu.embedding import ClassifierSettings

    settings = ClassifierSettings()
    assert cache_key(EXAMPLES, settings, encoder) != cache_key(EXAMPLES, settings, encoder, heard)
    again = EmbeddingIntentClassifier.for_examples(EXAMPLES, tmp_path, encoder=encoder, heard=heard)
    assert again.classify(misheard).intent == "address"
    assert len(list(tmp_path.glob("head-*.npz"))) == 1


@pytest.mark.parametrize("voice", ["slt", "espeak:en-gb-x-rp", "slt@1.2"])
def test_the_report_voices_never_train(voice):
    from simulator.nlu.heard_examples import speakers

    with pytest.raises(ValueError, match="report voice"):
        speakers([voice])

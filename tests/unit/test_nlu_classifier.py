import threading

import numpy as np
import pytest

from bot.agent import load_agent
from bot.settings import REFERENCE_AGENT
from integrations.nlu.base import OUT_OF_SCOPE, IntentClassifier, NLUThresholds
from integrations.nlu.embedding import ClassifierSettings, EmbeddingIntentClassifier
from integrations.nlu.encoder import SentenceEncoder
from integrations.nlu.oos import (
    DEFAULT_OOS_THRESHOLD,
    FixedOOSThreshold,
    RecallTargetOOSThreshold,
)


@pytest.fixture(scope="module")
def encoder():
    return SentenceEncoder.shared()


@pytest.fixture(scope="module")
def examples():
    return load_agent(REFERENCE_AGENT).training_examples()


@pytest.fixture(scope="module")
def classifier(examples, encoder, tmp_path_factory):
    return EmbeddingIntentClassifier.for_examples(
        examples, tmp_path_factory.mktemp("nlu"), encoder=encoder
    )


def test_encoder_vectors_are_unit_length_and_ordered(encoder):
    texts = ["a much longer sentence about the dentist and my teeth", "hi", ""]
    batch = encoder.encode(texts)
    assert batch.shape == (3, encoder.dim)
    assert np.allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-4)
    assert np.allclose(batch[1], encoder.encode_one("hi"), atol=1e-4)
    assert encoder.encode([]).shape == (0, encoder.dim)


def test_encoder_joins_both_sentence_models(encoder):
    # paraphrase-MiniLM-L3 beside all-MiniLM-L6: one 384-long unit vector from each
    assert [m.path.suffix for m in encoder.models] == [".onnx", ".onnx"]
    assert encoder.dim == 768
    vector = encoder.encode_one("when are you open")
    assert np.allclose(np.linalg.norm(vector[:384]), np.linalg.norm(vector[384:]), atol=1e-4)


def test_corpora_train_on_the_first_model_alone(encoder):
    settings = ClassifierSettings(ensemble_below=10)
    small = [("when are you open", "hours"), ("where are you", "address")]
    assert settings.encoder_for(encoder, len(small)).dim == 768
    primary = settings.encoder_for(encoder, 10)
    assert primary.dim == 384
    assert np.allclose(
        primary.encode_one("hi"),
        SentenceEncoder(model_path=encoder.model_path).encode_one("hi"),
        atol=1e-4,
    )
    corpus = [(f"{w} are you open", "hours") for w in ("when", "why", "how")] + [
        (f"where {w} you", "address") for w in ("are", "were", "is")
    ] * 2
    classifier = EmbeddingIntentClassifier.train(corpus, encoder=encoder, settings=settings)
    assert classifier.with_encoder(encoder).classify("when are you open").intent == "hours"


def test_encoder_fingerprint_names_its_models(encoder, tmp_path):
    single = SentenceEncoder(model_path=encoder.model_path)
    assert single.dim == 384
    assert single.fingerprint() != encoder.fingerprint()


def test_shared_encoder_is_one_per_process(encoder):
    assert SentenceEncoder.shared() is encoder


def test_encoder_is_thread_safe(encoder):
    expected = encoder.encode_one("when are you open")
    results = []

    def work():
        results.append(encoder.encode_one("when are you open"))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(np.allclose(r, expected, atol=1e-5) for r in results)


def test_satisfies_the_protocol(classifier):
    assert isinstance(classifier, IntentClassifier)
    assert "book_appointment" in classifier.intents
    assert OUT_OF_SCOPE not in classifier.intents


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("when do you guys open on weekdays", "opening_hours"),
        ("I would like to come in for a cleaning next week", "book_appointment"),
        ("my tooth hurts really bad", "emergency"),
        ("I need to cancel tomorrow", "cancel_appointment"),
        ("can I bring my son", "kb:children"),
        ("bye", "goodbye"),
    ],
)
def test_paraphrases_are_acted_on(classifier, text, intent):
    prediction = classifier.classify(text)
    assert prediction.intent == intent
    assert NLUThresholds().band(prediction.intent, prediction.confidence) == "act"
    assert prediction.margin > 0


@pytest.mark.parametrize(
    "text",
    [
        "what is the capital of france",
        "play some music",
        "asdf qwer zxcv",
        "日本語のテキスト",
        "the the the",
        "¿Dónde está la clínica?",
    ],
)
def test_out_of_scope_without_oos_examples(classifier, text):
    prediction = classifier.classify(text)
    assert NLUThresholds().band(prediction.intent, prediction.confidence) == "repair"
    assert prediction.intent == OUT_OF_SCOPE


@pytest.mark.parametrize("text", ["", "   ", "open " * 3000, "\x00\x01\x02"])
def test_odd_input_gives_a_prediction(classifier, text):
    prediction = classifier.classify(text)
    assert 0.0 <= prediction.confidence <= 1.0


def test_ranking_lists_the_nearest_in_scope_intents(classifier):
    prediction = classifier.classify("what is the capital of france")
    assert len(prediction.ranking) == 5
    assert all(name != OUT_OF_SCOPE for name, _ in prediction.ranking)


def test_cache_is_reused_and_keyed_by_the_examples(examples, encoder, tmp_path):
    first = EmbeddingIntentClassifier.for_examples(examples, tmp_path, encoder=encoder)
    files = list(tmp_path.glob("head-*.npz"))
    assert len(files) == 1
    again = EmbeddingIntentClassifier.for_examples(examples, tmp_path, encoder=encoder)
    assert list(tmp_path.glob("head-*.npz")) == files
    text = "can you move my visit to friday"
    assert again.classify(text).intent == first.classify(text).intent
    assert again.classify(text).confidence == pytest.approx(
        first.classify(text).confidence, abs=1e-3
    )
    changed = [*examples, ("do you sell toothbrushes", "shop"), ("can I buy floss", "shop")]
    retrained = EmbeddingIntentClassifier.for_examples(changed, tmp_path, encoder=encoder)
    assert len(list(tmp_path.glob("head-*.npz"))) == 2
    assert "shop" in retrained.intents


def test_corrupt_cache_is_retrained(examples, encoder, tmp_path):
    EmbeddingIntentClassifier.for_examples(examples, tmp_path, encoder=encoder)
    (path,) = tmp_path.glob("head-*.npz")
    path.write_bytes(b"not a zip file")
    classifier = EmbeddingIntentClassifier.for_examples(examples, tmp_path, encoder=encoder)
    assert classifier.classify("what are your hours").intent == "opening_hours"


def test_out_of_scope_examples_set_the_threshold(encoder):
    examples = [
        *[
            (t, "hours")
            for t in [
                "when are you open",
                "what are your hours",
                "are you open today",
                "what time do you close",
            ]
        ],
        *[
            (t, "address")
            for t in [
                "where are you",
                "what is your address",
                "how do I get there",
                "which street are you on",
            ]
        ],
        *[
            (t, OUT_OF_SCOPE)
            for t in ["tell me a joke", "who won the game", "what's the weather", "play a song"]
        ],
    ]
    classifier = EmbeddingIntentClassifier.train(examples, encoder=encoder)
    assert classifier.intents == ("address", "hours")
    assert classifier.oos_threshold != DEFAULT_OOS_THRESHOLD  # fitted on the four
    for text in ["tell me a joke", "who won the game", "play a song"]:
        prediction = classifier.classify(text)
        assert NLUThresholds().band(prediction.intent, prediction.confidence) == "repair"


def test_held_out_in_scope_scores_can_only_raise_the_threshold():
    oos = np.linspace(0.0, 0.4, 101)
    held_out = np.linspace(0.1, 1.0, 1001)
    plain = RecallTargetOOSThreshold(held_out_rejection=0.0)
    assert plain.fit(oos) == plain.fit(oos, held_out) == pytest.approx(0.22)
    strategy = RecallTargetOOSThreshold(held_out_rejection=0.5)
    assert strategy.fit(oos) == pytest.approx(0.22)  # nothing held out: as before
    assert strategy.fit(oos, held_out) == pytest.approx(0.55)  # their median
    assert strategy.fit(oos, held_out - 0.5) == pytest.approx(0.22)  # lower: not used
    assert strategy.fit(oos, held_out + 1.0) == strategy.ceiling
    assert strategy.fit(np.zeros(0), held_out) == strategy.fallback


def _two_intents_and_oos() -> list[tuple[str, str]]:
    hours = ["when are you open", "what are your hours", "are you open today", "closing time?"]
    address = ["where are you", "what is your address", "how do I get there", "which street"]
    oos = ["tell me a joke", "who won the game", "what's the weather", "play a song"]
    return [
        *[(t, "hours") for t in hours],
        *[(t, "address") for t in address],
        *[(t, OUT_OF_SCOPE) for t in oos],
    ]


def test_corpora_fit_the_threshold_on_held_out_examples_too(encoder):
    examples = _two_intents_and_oos()

    def threshold(rejection: float) -> float:
        settings = ClassifierSettings(
            oos=RecallTargetOOSThreshold(held_out_rejection=rejection, ceiling=1.0),
            augment_per_example=0,
            selection_min_examples=4,  # as if the eight examples were a corpus
        )
        return EmbeddingIntentClassifier.train(
            examples, encoder=encoder, settings=settings
        ).oos_threshold

    assert threshold(1.0) > threshold(0.0)


def test_agent_files_hold_nothing_out_for_the_threshold(encoder):
    settings = ClassifierSettings(oos=RecallTargetOOSThreshold(held_out_rejection=1.0))
    with_held_out = EmbeddingIntentClassifier.train(
        _two_intents_and_oos(), encoder=encoder, settings=settings
    )
    without = EmbeddingIntentClassifier.train(
        _two_intents_and_oos(),
        encoder=encoder,
        settings=ClassifierSettings(oos=RecallTargetOOSThreshold(held_out_rejection=0.0)),
    )
    assert with_held_out.oos_threshold == without.oos_threshold


def _oos_class_settings(oos_class_from: int) -> ClassifierSettings:
    """No threshold (only the class can reject), as if the twelve examples were a corpus.

    The shipped out-of-scope requests are left out: these tests are about the file's own.
    """
    return ClassifierSettings(
        oos=FixedOOSThreshold(0.0),
        augment_per_example=0,
        selection_min_examples=4,
        oos_class_from=oos_class_from,
        generic_oos_below=0,
    )


def test_corpora_train_out_of_scope_examples_as_a_class(encoder):
    classifier = EmbeddingIntentClassifier.train(
        _two_intents_and_oos(), encoder=encoder, settings=_oos_class_settings(4)
    )
    assert classifier.intents == ("address", "hours")
    for text in ["tell me a joke", "who won the game", "play a song"]:
        prediction = classifier.classify(text)
        assert prediction.intent == OUT_OF_SCOPE
        assert {name for name, _ in prediction.ranking} == {"address", "hours"}
    assert classifier.classify("what are your hours").intent == "hours"
    assert classifier.classify("what is your address").intent == "address"


def test_the_out_of_scope_class_survives_the_cache(encoder, tmp_path):
    examples, settings = _two_intents_and_oos(), _oos_class_settings(4)
    EmbeddingIntentClassifier.for_examples(examples, tmp_path, encoder=encoder, settings=settings)
    loaded = EmbeddingIntentClassifier.for_examples(
        examples, tmp_path, encoder=encoder, settings=settings
    )
    assert loaded.intents == ("address", "hours")
    prediction = loaded.classify("tell me a joke")
    assert prediction.intent == OUT_OF_SCOPE
    assert all(name != OUT_OF_SCOPE for name, _ in prediction.ranking)


@pytest.mark.parametrize("oos_class_from", [0, 1000])
def test_agent_files_keep_out_of_scope_examples_out_of_the_head(encoder, oos_class_from):
    classifier = EmbeddingIntentClassifier.train(
        _two_intents_and_oos(), encoder=encoder, settings=_oos_class_settings(oos_class_from)
    )
    # Off (0), or fewer examples than a corpus: nothing but the threshold rejects.
    assert classifier.classify("tell me a joke").intent in {"address", "hours"}
    assert ClassifierSettings().oos_as_class(999) is False
    assert ClassifierSettings().oos_as_class(1000) is True


def test_needs_two_intents(encoder):
    with pytest.raises(ValueError, match="two intents"):
        EmbeddingIntentClassifier.train([("hi", "greet"), ("hello", "greet")], encoder=encoder)


def test_function_word_turns_are_understood_only_word_for_word(encoder, tmp_path):
    examples = [
        ("I'll be there", "confirm"),
        ("yes I can make it", "confirm"),
        ("that works for me", "confirm"),
        ("please cancel it", "cancel"),
        ("I need to cancel my appointment", "cancel"),
        ("cancel the booking", "cancel"),
    ]
    trained = EmbeddingIntentClassifier.for_examples(examples, tmp_path, encoder=encoder)
    cached = EmbeddingIntentClassifier.for_examples(examples, tmp_path, encoder=encoder)
    for classifier in (trained, cached):
        assert classifier.classify("Yes, I'll be there.").intent == "confirm"
        assert classifier.classify("can I do it there").intent == OUT_OF_SCOPE


def test_requests_for_other_businesses_are_out_of_scope(classifier):
    # an agent file lists what its callers ask for; the shipped out-of-scope requests teach
    # it what callers ask other businesses ("book" a table is not "book" a cleaning)
    for text in ("can I reserve a table for six tomorrow evening", "please book me a flight"):
        assert classifier.classify(text).intent == OUT_OF_SCOPE
    assert classifier.classify("I'd like to book a cleaning next week").intent == (
        "book_appointment"
    )


def test_an_agent_whose_business_it_is_keeps_its_requests(encoder):
    restaurant = [
        ("can I book a table for two tonight", "book_table"),
        ("I'd like to reserve a table for dinner", "book_table"),
        ("do you have a table for four at eight", "book_table"),
        ("when are you open", "opening_hours"),
        ("what are your hours on sunday", "opening_hours"),
        ("are you open late tonight", "opening_hours"),
    ]
    classifier = EmbeddingIntentClassifier.train(restaurant, encoder=encoder)
    assert classifier.classify("reserve a table for dinner tonight").intent == "book_table"
    assert classifier.classify("book me a flight to chicago").intent == OUT_OF_SCOPE
    without = EmbeddingIntentClassifier.train(
        restaurant, encoder=encoder, settings=ClassifierSettings(generic_oos_below=0)
    )
    assert without.classify("reserve a table for dinner tonight").intent == "book_table"
    assert (
        ClassifierSettings().fingerprint() != ClassifierSettings(generic_oos_below=0).fingerprint()
    )

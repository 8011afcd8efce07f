"""The agent's rare words come back when the recogniser prints a rare sound-alike of them."""

from pathlib import Path

from bot.agent import load_agent
from bot.call.speech_lm import agent_sound_alikes, with_sound_alikes
from integrations.nlu.base import IntentClassifier, IntentPrediction
from integrations.nlu.sound_alike import SoundAlikeClassifier, SoundAlikeWords
from integrations.speech.moonshine_models import whole_words
from tests.fakes.classifier import ScriptedClassifier

AGENT_TEXTS = (
    "Do you do teeth whitening?",
    "Do you take MetLife?",
    "Is Aetna accepted?",
    "Are you open on Sundays?",
)
COMMON = frozenset("do you teeth take is accepted are open on sounds feeling".split())
REFERENCE_AGENT = Path(__file__).parents[2] / "bot" / "agents" / "dental_front_desk.yaml"


def words() -> SoundAlikeWords:
    return SoundAlikeWords(AGENT_TEXTS, COMMON)


def test_a_rare_sound_alike_is_mended_to_the_agents_word() -> None:
    mended = words()
    assert mended.mend("Do you offer a widening?") == "Do you offer a whitening?"
    assert mended.mend("Would my mid-life plan work?") == "Would my metlife plan work?"
    assert mended.mend("Are you in network with Edna?") == "Are you in network with aetna?"


def test_common_words_and_the_agents_own_are_never_touched() -> None:
    mended = words()
    # "sounds" sounds like "sundays" (SNTS) but is a common word: it stays
    assert mended.mend("Sounds good.") == "Sounds good."
    assert mended.mend("Do you take MetLife?") == "Do you take MetLife?"
    assert mended.mend("Dog hat.") == "Dog hat."  # too short, or no agent word sounds alike


def test_a_common_agent_word_is_never_put_in() -> None:
    # "open" is common: a rare "oapen" is left as heard
    assert words().mend("Are you oapen?") == "Are you oapen?"
    assert "open" not in words().targets


def test_a_sound_shared_by_two_agent_words_mends_nothing() -> None:
    mended = SoundAlikeWords(("whitening", "widening"), frozenset())
    assert mended.targets == frozenset()
    assert mended.mend("wydening") == "wydening"


def test_the_classifier_reads_the_mended_words() -> None:
    def rule(text: str) -> IntentPrediction:
        intent = "kb:whitening" if "whitening" in text else "out_of_scope"
        return IntentPrediction(intent=intent, confidence=0.9, ranking=((intent, 0.9),))

    inner = ScriptedClassifier(rule=rule, known=("kb:whitening",))
    classifier = SoundAlikeClassifier(inner, words())
    assert isinstance(classifier, IntentClassifier)
    assert classifier.intents == inner.intents
    assert classifier.classify("Widening.").intent == "kb:whitening"
    assert inner.calls == ["whitening."]


def test_the_recognisers_whole_words_are_the_common_ones() -> None:
    common = whole_words()
    assert {"three", "feeling", "sounds", "the"} <= common
    assert not {"whitening", "widening", "aetna", "metlife"} & common


def test_the_reference_agent_mends_what_its_callers_were_misheard_as() -> None:
    mended = agent_sound_alikes(load_agent(REFERENCE_AGENT))
    assert mended is not None
    assert mended.mend("Do you offer a widening?") == "Do you offer a whitening?"
    assert mended.mend("Sounds good, three o'clock.") == "Sounds good, three o'clock."
    # the classifier calls run with reads the mended words
    inner = ScriptedClassifier(
        rule=lambda text: IntentPrediction("kb:whitening", 0.9, (("kb:whitening", 0.9),)),
        known=("kb:whitening",),
    )
    with_sound_alikes(inner, load_agent(REFERENCE_AGENT)).classify("Do you offer a widening?")
    assert inner.calls == ["Do you offer a whitening?"]

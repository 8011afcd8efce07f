"""Beam search, the domain language model, N-best readings and their use downstream.

The beam search runs here on a scripted decoder (a table of next-token
log-probabilities by prefix), so what it chooses is known exactly; the real Moonshine
decoder is covered by ``test_speech_engines.py``.
"""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from pipecat.frames.frames import TranscriptionFrame
from pipecat.pipeline.task import PipelineParams
from pipecat.tests.utils import SleepFrame, run_test

from bot.call.speech_lm import agent_texts, build_agent_lm
from integrations.nlu.base import NLUThresholds
from integrations.nlu.entities import EntityExtractor, default_parsers
from integrations.speech.beam_search import END_TOKEN, START_TOKEN, BeamSearch, word_logprobs
from integrations.speech.domain_lm import EOS, MixtureModel, NgramModel, words
from integrations.speech.nbest import (
    Hypothesis,
    NBestRecognizer,
    Recognition,
    join_recognitions,
)
from integrations.speech.stt import LocalSTTService
from processors.frames import Band, NLUResultFrame
from processors.nlu_readings import pick_reading
from processors.nlu_router import NLURouter
from tests.fakes.classifier import ScriptedClassifier, prediction
from tests.fakes.speech import ScriptedRecognizer

SPACE = "\u2581".encode()
# Token ids: 0-2 special, then a tiny vocabulary of pieces.
VOCABULARY = [b"<unk>", b"<s>", b"</s>", SPACE + b"book", SPACE + b"look", SPACE + b"a"]
VOCABULARY += [SPACE + b"clean", b"ing", SPACE + b"cleaning"]
BOOK, LOOK, A, CLEAN, ING, CLEANING = 3, 4, 5, 6, 7, 8


def scripted_step(table: dict[tuple[int, ...], dict[int, float]], calls: list):
    """A decoder step from a table: prefix -> {token: probability}; the rest share 1e-6.

    Keeps each call's (prefixes, parents) in ``calls`` and checks that ``parents``
    points every beam at the row of the previous batch it extends.
    """
    previous: list[tuple[int, ...]] = [()]

    def step(tokens: list[int], parents: list[int]) -> np.ndarray:
        nonlocal previous
        if calls:
            prefixes = [(*previous[p], t) for t, p in zip(tokens, parents, strict=True)]
        else:
            assert tokens == [START_TOKEN]
            prefixes = [()]
        calls.append((prefixes, list(parents)))
        previous = prefixes
        logits = np.full((len(prefixes), len(VOCABULARY)), math.log(1e-6))
        for row, prefix in enumerate(prefixes):
            for token, p in table.get(prefix, {END_TOKEN: 1.0}).items():
                logits[row, token] = math.log(p)
        return logits

    return step


def detok(tokens) -> str:
    return b"".join(VOCABULARY[t] for t in tokens).decode().replace("\u2581", " ").strip()


# "book" looks likelier at first, but only "look a" ends well: greedy gets it wrong.
GARDEN_PATH = {
    (): {BOOK: 0.6, LOOK: 0.4},
    (BOOK,): {A: 0.3, END_TOKEN: 0.1, CLEAN: 0.3, LOOK: 0.3},
    (LOOK,): {A: 0.95, END_TOKEN: 0.05},
    (LOOK, A): {END_TOKEN: 0.99},
    (BOOK, A): {END_TOKEN: 0.5, CLEAN: 0.5},
    (BOOK, CLEAN): {END_TOKEN: 0.5, ING: 0.5},
    (BOOK, LOOK): {END_TOKEN: 0.5, A: 0.5},
}


def test_width_one_is_greedy_decoding() -> None:
    calls: list = []
    [beam] = BeamSearch(VOCABULARY, 1).run(scripted_step(GARDEN_PATH, calls), 10)
    assert beam.tokens[0] == BOOK  # the locally best first token
    assert all(len(prefixes) == 1 for prefixes, _ in calls)


def test_beam_search_finds_the_better_reading_and_keeps_each_beams_cache() -> None:
    calls: list = []
    beams = BeamSearch(VOCABULARY, 3).run(scripted_step(GARDEN_PATH, calls), 10)
    assert detok(beams[0].tokens) == "look a"
    assert len(beams) == 3
    assert len({b.tokens for b in beams}) == 3
    # Several beams were decoded in one batch, each extending the right parent row.
    assert max(len(prefixes) for prefixes, _ in calls) > 1


def test_beam_search_stops_at_max_tokens() -> None:
    loop = {(): {BOOK: 1.0}}
    loop.update({(BOOK,) * n: {BOOK: 1.0} for n in range(1, 10)})
    beams = BeamSearch(VOCABULARY, 2).run(scripted_step(loop, []), 4)
    assert beams and all(len(b.tokens) <= 4 for b in beams)


def test_each_word_gets_the_log_probability_of_its_tokens() -> None:
    table = {(): {BOOK: 0.9, LOOK: 0.1}, (BOOK,): {A: 0.5, LOOK: 0.3, CLEAN: 0.2}}
    table[(BOOK, A)] = {CLEAN: 0.4, LOOK: 0.3, CLEANING: 0.3}
    table[(BOOK, A, CLEAN)] = {ING: 0.6, END_TOKEN: 0.4}
    [beam] = BeamSearch(VOCABULARY, 1).run(scripted_step(table, []), 10)
    assert detok(beam.tokens) == "book a cleaning"
    words = word_logprobs(VOCABULARY, beam.tokens, beam.token_logprobs)
    # "clean" + "ing" make one word: its probability is the product of its tokens'
    assert [round(math.exp(w), 3) for w in words] == [0.9, 0.5, 0.24]
    # a bare word mark counts for the word it starts; mismatched lengths give nothing
    bare = [*VOCABULARY, SPACE]
    assert word_logprobs(bare, (len(VOCABULARY), BOOK), (-1.0, -2.0)) == (-3.0,)
    assert word_logprobs(VOCABULARY, (BOOK,), ()) == ()


def test_joined_segments_keep_their_word_confidences() -> None:
    first = Recognition((Hypothesis("book a", token_logprob=-0.1, word_logprobs=(-0.1, -0.2)),))
    second = Recognition(
        (
            Hypothesis("cleaning", token_logprob=-0.5, word_logprobs=(math.log(0.4),)),
            Hypothesis("cleaner", token_logprob=-0.6, word_logprobs=(math.log(0.3),)),
        )
    )
    turn = join_recognitions([first, second])
    assert turn.text == "book a cleaning"
    assert [round(c, 2) for c in turn.word_confidences] == [0.9, 0.82, 0.4]
    assert turn.hypotheses[1].word_logprobs == (-0.1, -0.2, math.log(0.3))
    unknown = Recognition((Hypothesis("please"),))
    assert join_recognitions([first, unknown]).word_confidences == ()


def test_language_model_scores_whole_words_and_biases_the_choice() -> None:
    # The model hears "clean ing" and "cleaning" alike; "a cleaning" is the domain phrase.
    table = {
        (): {A: 1.0},
        (A,): {CLEAN: 0.6, CLEANING: 0.4},
        (A, CLEAN): {ING: 0.1, END_TOKEN: 0.9},
        (A, CLEANING): {END_TOKEN: 1.0},
    }
    plain = BeamSearch(VOCABULARY, 2).run(scripted_step(table, []), 6)
    assert detok(plain[0].tokens) == "a clean"
    lm = NgramModel(["I'd like a cleaning", "book a cleaning", "a cleaning please"])
    biased = BeamSearch(VOCABULARY, 2, lm, weight=0.5).run(scripted_step(table, []), 6)
    assert detok(biased[0].tokens) == "a cleaning"
    assert biased[0].words == ("a", "cleaning")
    assert biased[0].lm_score < 0


def test_words_are_normalised_as_the_model_counts_them() -> None:
    assert words("I'd like a Check-up, on Friday?") == [
        "i'd",
        "like",
        "a",
        "checkup",
        "on",
        "friday",
    ]
    assert words("call 555-1234") == ["call", "555", "1234"]


def test_ngram_model_prefers_seen_continuations_and_never_rules_a_word_out() -> None:
    lm = NgramModel(["book a cleaning", "book a checkup", "cancel my cleaning"])
    assert lm.prob("cleaning", ["book", "a"]) > lm.prob("checkup", ["cancel", "my"])
    assert lm.prob("cleaning", ["book", "a"]) > lm.prob("zebra", ["book", "a"]) > 0
    vocabulary = [*lm.vocabulary, "zebra"]
    total = sum(lm.prob(w, ["book", "a"]) for w in vocabulary)
    assert total < 1.0 + 1e-9
    assert lm.logprob(EOS, ["book", "a", "cleaning"]) > lm.logprob(EOS, ["book"])


def test_mixture_weights_are_checked() -> None:
    lm = NgramModel(["hello"])
    with pytest.raises(ValueError):
        MixtureModel((lm,), (0.5,))
    other = NgramModel(["goodbye"])
    mix = MixtureModel((lm, other), (0.5, 0.5))
    expected = 0.5 * lm.prob("hello", []) + 0.5 * other.prob("hello", [])
    assert mix.logprob("hello", []) == pytest.approx(math.log(expected))


def test_the_agents_words_make_its_domain_likely() -> None:
    from bot.agent import load_agent

    agent = load_agent(Path(__file__).parents[2] / "bot" / "agents" / "dental_front_desk.yaml")
    texts = agent_texts(agent)
    assert any("Brightside" in t for t in texts)
    assert not any("{" in t for t in texts)
    lm = build_agent_lm(agent, None, domain_weight=1.0)
    assert lm.logprob("cleaning", ["book", "a"]) > lm.logprob("cleaner", ["book", "a"])


def test_recognition_confidence_and_alternatives() -> None:
    heard = Recognition(
        (
            Hypothesis("book a cleaning", -0.1, math.log(0.9)),
            Hypothesis("look a cleaning", -0.3, -0.4),
        )
    )
    assert heard.text == "book a cleaning"
    assert heard.confidence == pytest.approx(0.9)
    assert heard.alternatives == ("look a cleaning",)
    assert Recognition().confidence == 0.0 and Recognition().text == ""
    assert Recognition.of_text("  yes ").hypotheses == (Hypothesis("yes"),)
    assert Recognition.of_text("   ") == Recognition()
    assert "book" not in repr(heard)  # transcripts stay out of logs


class NBestScripted(ScriptedRecognizer, NBestRecognizer):
    def __init__(self, recognition: Recognition) -> None:
        super().__init__(recognition.text)
        self.recognition = recognition

    def recognize(self, pcm16: bytes, sample_rate: int) -> Recognition:
        self.calls.append((pcm16, sample_rate))
        return self.recognition


def utterance(speech: bytes, rate: int):
    from tests.unit.test_speech_services import utterance_frames

    return utterance_frames(speech, rate)


async def test_stt_hands_the_readings_and_confidence_downstream() -> None:
    heard = Recognition(
        (Hypothesis("book a cleaning", -0.1, -0.1), Hypothesis("look a cleaning", -0.2, -0.3))
    )
    stt = LocalSTTService(recognizer=NBestScripted(heard))
    down, _ = await run_test(
        stt,
        frames_to_send=[*utterance(b"\x00\x20\x00\xe0" * 4000, 16000), SleepFrame(0.2)],
        pipeline_params=PipelineParams(audio_in_sample_rate=16000),
    )
    [frame] = [f for f in down if isinstance(f, TranscriptionFrame)]
    assert frame.text == "book a cleaning"
    assert frame.result == heard


async def test_stt_wraps_a_text_only_recognizer() -> None:
    stt = LocalSTTService(recognizer=ScriptedRecognizer("yes please"))
    down, _ = await run_test(
        stt,
        frames_to_send=[*utterance(b"\x00\x20\x00\xe0" * 4000, 16000), SleepFrame(0.2)],
        pipeline_params=PipelineParams(audio_in_sample_rate=16000),
    )
    [frame] = [f for f in down if isinstance(f, TranscriptionFrame)]
    assert frame.result == Recognition.of_text("yes please")
    assert frame.result.confidence == 1.0  # no scores: nothing says it is unsure


def test_pick_reading_takes_the_surest_in_scope_reading() -> None:
    assert (
        pick_reading([prediction("opening_hours", 0.6), prediction("book_appointment", 0.8)]) == 1
    )
    assert (
        pick_reading([prediction("opening_hours", 0.7), prediction("book_appointment", 0.7)]) == 0
    )
    assert pick_reading([prediction("out_of_scope", 0.9), prediction("opening_hours", 0.3)]) == 1
    assert pick_reading([prediction("out_of_scope", 0.9), prediction("out_of_scope", 0.95)]) == 0


@pytest.fixture(scope="module")
def extractor():
    return EntityExtractor(default_parsers(clock=lambda: datetime(2026, 11, 21, 10, 0)))


async def decide(router: NLURouter, frame: TranscriptionFrame) -> NLUResultFrame:
    down, _ = await run_test(
        router, frames_to_send=[frame], expected_down_frames=[NLUResultFrame, TranscriptionFrame]
    )
    return down[0]


def nbest_frame(*texts: str) -> TranscriptionFrame:
    heard = Recognition(tuple(Hypothesis(t) for t in texts))
    return TranscriptionFrame(texts[0], "caller", "2026-11-21T10:00:00", result=heard)


async def test_router_clarifies_on_a_surer_second_reading(extractor) -> None:
    classifier = ScriptedClassifier(
        answers={
            "look a cleaning": prediction("book_appointment", 0.55),
            "book a cleaning": prediction("book_appointment", 0.97),
        }
    )
    router = NLURouter(classifier, None, NLUThresholds(), extractor)
    result = await decide(router, nbest_frame("look a cleaning", "book a cleaning"))
    assert result.intent == "book_appointment"
    assert result.confidence == pytest.approx(0.97)
    assert result.band is Band.CLARIFY  # never acted on without asking
    assert result.text == "book a cleaning"


async def test_router_ignores_other_readings_when_sure_of_the_best(extractor) -> None:
    classifier = ScriptedClassifier(
        answers={"book a cleaning": prediction("book_appointment", 0.95)}
    )
    router = NLURouter(classifier, None, NLUThresholds(), extractor)
    result = await decide(router, nbest_frame("book a cleaning", "look a cleaning"))
    assert result.band is Band.ACT
    assert result.text == "book a cleaning"
    assert classifier.calls == ["book a cleaning"]


async def test_router_keeps_the_best_reading_when_no_other_is_surer(extractor) -> None:
    classifier = ScriptedClassifier(
        answers={
            "book a cleaning": prediction("book_appointment", 0.6),
            "look a cleaning": prediction("opening_hours", 0.5),
        }
    )
    router = NLURouter(classifier, None, NLUThresholds(), extractor)
    result = await decide(router, nbest_frame("book a cleaning", "look a cleaning"))
    assert (result.intent, result.text) == ("book_appointment", "book a cleaning")
    assert result.band is Band.CLARIFY

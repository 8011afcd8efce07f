"""Builds each call's NLU router from the runtime's shared classifier and the agent's thresholds."""

from __future__ import annotations

import math
from collections.abc import Callable

from bot.call.runtime import Runtime
from bot.settings import Settings
from integrations.nlu.base import (
    OUT_OF_SCOPE,
    IntentPrediction,
    LLMIntentClassifier,
)
from integrations.nlu.llm import LLMEndpoint, OpenAICompatibleIntentClassifier
from integrations.speech.nbest import TurnReadings
from processors.act_guard import HEARD_CLEARLY, ActGuard
from processors.agent_definition import AgentDefinition
from processors.barge_in import is_backchannel
from processors.nlu_readings import ANSWERS
from processors.nlu_router import NLURouter
from processors.semantic_turn import CompletenessCheck


def make_llm_classifier(settings: Settings, agent: AgentDefinition) -> LLMIntentClassifier | None:
    """The LLM intent classifier asked when the embedded one is unsure, if an LLM is configured."""
    if settings.llm == "groq":
        endpoint = LLMEndpoint.groq(settings.groq_api_key, settings.groq_model)
    elif settings.llm == "openai":
        endpoint = LLMEndpoint(settings.llm_base_url, settings.llm_model, settings.llm_api_key)
    else:
        return None
    intents = {intent.name: intent.description for intent in agent.intents}
    return OpenAICompatibleIntentClassifier(endpoint, intents)


def make_nlu_router(
    runtime: Runtime, readings: TurnReadings | None = None, *, opening_asks: bool = False
) -> NLURouter:
    """The NLU router for one call (``readings``: the recogniser's, logged by the STT).

    ``opening_asks``: the call opens with the agent's question (an outbound call's opening).
    """
    nlu = runtime.agent.nlu
    return NLURouter(
        classifier=runtime.classifier,
        llm=runtime.llm_classifier,
        thresholds=nlu.thresholds(),
        entity_extractor=runtime.entities,
        llm_timeout_s=nlu.llm_timeout_secs,
        guard=ActGuard.for_agent(runtime.agent),
        readings=readings,
        unsure_below=runtime.settings.asr_unsure_confidence,
        opening_asks=opening_asks,
    )


def make_completeness_check(
    runtime: Runtime,
    answers_expected: Callable[[], bool] | None = None,
    readings: TurnReadings | None = None,
) -> CompletenessCheck:
    """A transcript is a complete request when the classifier is sure enough to end the turn.

    That is the stricter of the act threshold and ``nlu.turn_end_threshold``.

    Args:
        runtime: The agent's classifier and thresholds.
        answers_expected: Whether the bot's latest line asked a yes/no question; when
            given, a turn read as a yes or a no (``affirm``, ``deny``) is complete only
            then. At the call's opening "So, uh," heard as "Don't." read as a no at 0.97
            and ended the turn while the caller went on (held-out call bench, 1 of 200):
            a yes or no with nothing asked is only repaired, so it may wait for more.
            None: every sure reading is complete (the barge-in check).
        readings: The call's recogniser readings: when the best reading is not sure, the
            turn is complete too if another reading of words heard at least
            ``asr_unsure_confidence`` is surely a question the agent only answers (the
            router answers those outright, :meth:`ActGuard.answers_outright`). Offline
            (``bench latency``'s 185 questions as slt, rms and kal are heard) 3 fewer per
            voice waited the 1.0 s unsure-question hold ("Do you take Sinner?" | "... Sina?"),
            and no more of the dev set's sentence and comma prefixes ended the turn.
            None: the best reading alone.
    """
    classifier = runtime.classifier
    act = _turn_end_bar(runtime)

    def sure(prediction: IntentPrediction) -> bool:
        return prediction.intent != OUT_OF_SCOPE and prediction.confidence >= act

    # the best reading is not sure when this is asked, so only another one can answer
    another_reading_answers = _heard_answers(runtime, readings)

    def is_complete(text: str) -> bool:
        if text.strip() and is_backchannel(text):
            return True  # "okay", "mhm", "yes": a whole turn, nothing more is coming
        prediction = classifier.classify(text)
        if not sure(prediction):
            return another_reading_answers(text)
        return answers_expected is None or prediction.intent not in ANSWERS or answers_expected()

    return is_complete


def _answers_outright(runtime: Runtime) -> Callable[[str], bool]:
    """Whether words are surely (at the turn-end bar) a question the agent only answers."""
    classifier = runtime.classifier
    guard = ActGuard.for_agent(runtime.agent)
    bar = _turn_end_bar(runtime)

    def answers(text: str) -> bool:
        prediction = classifier.classify(text)
        return prediction.confidence >= bar and guard.answers_outright(prediction.intent)

    return answers


def _turn_end_bar(runtime: Runtime) -> float:
    """The classifier confidence that ends a turn on the words alone."""
    return max(runtime.agent.nlu.act_threshold, runtime.agent.nlu.turn_end_threshold)


def _heard_answers(
    runtime: Runtime, readings: TurnReadings | None, heard_below: float = math.inf
) -> Callable[[str], bool]:
    """Whether a reading of a turn's text (the best or another) is surely a question answered.

    Only for words heard at ``asr_unsure_confidence`` or more and below ``heard_below``:
    garbled words keep their hold, whatever a reading says. Without ``readings``: never.
    """
    if readings is None:
        return lambda _text: False
    answers = _answers_outright(runtime)
    heard_enough = runtime.settings.asr_unsure_confidence

    def heard_answers(text: str) -> bool:
        heard = readings.peek(text)
        if heard is None or not heard_enough <= heard.confidence < heard_below:
            return False
        return any(answers(reading) for reading in (text, *heard.alternatives))

    return heard_answers


def make_misheard_answer_check(runtime: Runtime, readings: TurnReadings) -> Callable[[str], bool]:
    """Whether misheard words are surely a question the agent only answers.

    Words the recogniser heard below :data:`~processors.act_guard.HEARD_CLEARLY` (but at
    ``asr_unsure_confidence`` or more) of which a reading (the best or another) is read at
    the turn-end bar as a question the agent answers outright
    (:meth:`ActGuard.answers_outright`), as the router answers it: a sentence that tells
    ("Canon, I spread the cost.", "Doing a treat, good." | "Doing a treat, kid.") is then
    the recogniser's form, not the caller's, and is not held
    (:class:`processors.turn_hold.TurnHoldPolicy`). Words heard clearly keep their hold: "I
    have coverage through my employer." sets the scene for a question; so does a sentence
    that opens on the caller, misheard or not (:func:`processors.turn_words.tells_of_caller`).
    ``bench latency`` back to back (7 Dec 2026): p95 1060 -> 522-560 ms at the phone; offline,
    no more of the dev set's sentence and comma prefixes end the turn.

    Args:
        runtime: The agent's classifier and thresholds.
        readings: The call's recogniser readings (how surely the words were heard).
    """
    return _heard_answers(runtime, readings, heard_below=HEARD_CLEARLY)

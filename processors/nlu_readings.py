"""What a turn's readings say: which of the recogniser's readings to decide on, and a yes or no.

The NLU router (:mod:`processors.nlu_router`) decides one turn on these: the reading the
classifier is surest of (:func:`pick_reading`), an LLM answer completed with the classifier's
ranking (:func:`with_runner_up`), and whether the words of a yes or a no open with that
answer or with the other one (:func:`says_plainly`, :func:`says_the_opposite`).
"""

from __future__ import annotations

from collections.abc import Sequence

from integrations.nlu.base import IntentPrediction
from processors.frames import OUT_OF_SCOPE, NLUResultFrame

ANSWERS = frozenset({"affirm", "deny"})
"""Intents that answer a question (the dialogue's yes and no)."""


PLAIN_ANSWERS = {"affirm": "yes", "deny": "no"}
"""The yes or no (the ``yes_no`` entity: the words open with it) each answer intent is."""


def says_plainly(result: NLUResultFrame) -> bool:
    """Whether an answer intent's words open with its own yes or no ("Yeah, that works.")."""
    answer = PLAIN_ANSWERS.get(result.intent)
    return answer is not None and result.entities.get("yes_no") == answer


def says_the_opposite(result: NLUResultFrame) -> bool:
    """Whether an answer intent's words open with the other answer ("Yes, that won't...": no)."""
    answer, said = PLAIN_ANSWERS.get(result.intent), result.entities.get("yes_no")
    return answer is not None and said is not None and said != answer


def pick_reading(predictions: Sequence[IntentPrediction]) -> int:
    """Which of the recogniser's readings to go with: the index into ``predictions``.

    The reading the classifier is most confident on, among those it finds in scope;
    the earliest (the recogniser's preference) on a tie, and the best reading (0) when
    none is in scope.

    Args:
        predictions: The classifier's answer for each reading, the recogniser's best first.
    """
    best, best_confidence = 0, -1.0
    for index, prediction in enumerate(predictions):
        if prediction.intent != OUT_OF_SCOPE and prediction.confidence > best_confidence:
            best, best_confidence = index, prediction.confidence
    return best


def with_runner_up(answer: IntentPrediction, fallback: IntentPrediction) -> IntentPrediction:
    """The LLM's answer, with the classifier's ranking filling in a missing runner-up."""
    if answer.runner_up is not None:
        return answer
    ranking = (answer.intent, answer.confidence)
    for name, score in fallback.ranking:
        if name != answer.intent:
            return IntentPrediction(answer.intent, answer.confidence, (ranking, (name, score)))
    return answer

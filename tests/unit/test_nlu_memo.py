"""The memoized classifier answers a repeated transcript without asking its classifier again."""

import threading

from integrations.nlu.base import IntentClassifier, IntentPrediction
from integrations.nlu.memo import MemoizedClassifier
from tests.fakes.classifier import ScriptedClassifier


def hours_or_booking(text: str) -> IntentPrediction:
    intent = "hours" if "open" in text else "booking"
    return IntentPrediction(intent=intent, confidence=0.9, ranking=((intent, 0.9),))


def counting_classifier() -> ScriptedClassifier:
    return ScriptedClassifier(rule=hours_or_booking, known=("hours", "booking"))


def test_a_transcript_is_classified_once_and_the_answer_shared() -> None:
    inner = counting_classifier()
    memo = MemoizedClassifier(inner)
    assert isinstance(memo, IntentClassifier)
    assert memo.intents == inner.intents
    first = memo.classify("when are you open")
    again = memo.classify("  when are you open ")
    other = memo.classify("book me in")
    assert first is again and first.intent == "hours" and other.intent == "booking"
    assert inner.calls == ["when are you open", "book me in"]
    assert (memo.hits, memo.misses) == (1, 2)


def test_only_the_latest_answers_are_kept() -> None:
    inner = counting_classifier()
    memo = MemoizedClassifier(inner, entries=2)
    for text in ("a open", "b", "a open", "c"):  # "b" is the least recently asked
        memo.classify(text)
    memo.classify("b")
    memo.classify("a open")
    assert inner.calls == ["a open", "b", "c", "b", "a open"]


def test_callers_on_many_threads_get_the_same_answers() -> None:
    inner = counting_classifier()
    memo = MemoizedClassifier(inner)
    answers: list[str] = []

    def ask() -> None:
        for i in range(200):
            answers.append(memo.classify(f"question {i % 20} open").intent)

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers == ["hours"] * 800
    assert memo.hits + memo.misses == 800


def slow_rule(started: threading.Event, release: threading.Event, fail: list[str] | None = None):
    """A rule that blocks until released, then answers (or raises ``fail``'s message)."""

    def rule(text: str) -> IntentPrediction:
        started.set()
        assert release.wait(10), "never released"
        if fail:
            raise RuntimeError(fail.pop())
        return hours_or_booking(text)

    return rule


def test_a_text_asked_on_two_threads_at_once_is_classified_once() -> None:
    started, release = threading.Event(), threading.Event()
    inner = ScriptedClassifier(rule=slow_rule(started, release), known=("hours", "booking"))
    memo = MemoizedClassifier(inner)
    answers: list[IntentPrediction] = []
    first = threading.Thread(target=lambda: answers.append(memo.classify("when are you open")))
    first.start()
    assert started.wait(10)
    second = threading.Thread(target=lambda: answers.append(memo.classify("when are you open ")))
    second.start()
    second.join(0.2)
    assert second.is_alive()  # waits for the first run's answer, runs nothing itself
    release.set()
    first.join(10)
    second.join(10)
    assert len(answers) == 2 and answers[0] is answers[1]
    assert inner.calls == ["when are you open"]
    assert (memo.hits, memo.misses) == (1, 1)


def test_a_failed_run_reaches_its_waiters_and_is_not_remembered() -> None:
    started, release = threading.Event(), threading.Event()
    fail = ["encoder failed"]
    inner = ScriptedClassifier(rule=slow_rule(started, release, fail), known=("hours", "booking"))
    memo = MemoizedClassifier(inner)
    errors: list[BaseException] = []

    def ask() -> None:
        try:
            memo.classify("book me in")
        except RuntimeError as e:
            errors.append(e)

    first = threading.Thread(target=ask)
    first.start()
    assert started.wait(10)
    second = threading.Thread(target=ask)
    second.start()
    second.join(0.2)
    release.set()
    first.join(10)
    second.join(10)
    assert [str(e) for e in errors] == ["encoder failed", "encoder failed"]
    assert memo.classify("book me in").intent == "booking"  # asked again, not the error
    assert inner.calls == ["book me in", "book me in"]

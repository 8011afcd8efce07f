"""An intent classifier that classifies a transcript once, however many ask.

A caller's turn is classified twice with the same text: the semantic end-of-turn check
asks whether it is a request the agent would act on (to end the turn without waiting for
the pause), and the NLU router then classifies it to act. Each is a sentence-encoder run
in a worker thread on the reply's critical path; with many calls ending turns at once
the second run queued behind other calls' work for nothing.

The two often ask at the same moment, from two worker threads (the end-of-turn check
and the turn-hold policy's "is it understood?" on the same transcript): the second then
waits for the first's answer instead of running the encoders beside it. Traced on a
`bench latency` turn (7 Dec 2026, 2 cores): both runs took 26-41 ms side by side, where
one alone takes about 20 ms, and the turn ended only when the slower was done.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from concurrent.futures import Future

from integrations.nlu.base import IntentClassifier, IntentPrediction

DEFAULT_ENTRIES = 512
"""Recent transcripts remembered across all calls (a few hundred bytes each)."""


class MemoizedClassifier:
    """Wraps an :class:`IntentClassifier`, remembering its latest answers (thread-safe).

    Predictions are frozen dataclasses, so one answer can be handed to every asker.
    """

    def __init__(self, inner: IntentClassifier, *, entries: int = DEFAULT_ENTRIES):
        """Remember up to ``entries`` answers of ``inner`` (least recently asked go first)."""
        self._inner = inner
        self._entries = max(1, entries)
        self._answers: OrderedDict[str, IntentPrediction] = OrderedDict()
        self._running: dict[str, Future[IntentPrediction]] = {}
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @property
    def intents(self) -> tuple[str, ...]:
        """The wrapped classifier's intents."""
        return self._inner.intents

    def classify(self, text: str) -> IntentPrediction:
        """The wrapped classifier's answer for ``text`` (stripped), worked out once.

        A text already being classified on another thread is not classified again: this
        call waits for that answer (or its exception).
        """
        key = text.strip()
        with self._lock:
            answer = self._answers.get(key)
            if answer is not None:
                self._answers.move_to_end(key)
                self.hits += 1
                return answer
            running = self._running.get(key)
            if running is None:
                self._running[key] = ours = Future()
                self.misses += 1
            else:
                self.hits += 1
        if running is not None:
            return running.result()
        try:
            answer = self._inner.classify(key)  # outside the lock: other calls go on meanwhile
        except BaseException as e:
            with self._lock:
                del self._running[key]
            ours.set_exception(e)
            raise
        with self._lock:
            del self._running[key]
            self._answers[key] = answer
            self._answers.move_to_end(key)
            while len(self._answers) > self._entries:
                self._answers.popitem(last=False)
        ours.set_result(answer)
        return answer

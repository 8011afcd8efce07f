"""Speculative model runs only on spare cores.

Early transcription and the early end-of-turn verdict start as soon as the caller's audio
goes quiet, before the VAD confirms the pause; a caller who goes on talking makes the run
wasted. With one call that costs nothing but otherwise idle CPU. With many calls the
wasted runs (several per turn: every gap between words can start one) take the cores
other callers' confirmed turns are waiting for. A :class:`SpeculationBudget` bounds the
speculative runs in flight across the process; when it is spent, a speculative run is
simply not started and the turn takes the ordinary path when the VAD confirms the pause.

The budget bounds speculation but does not make it free: two slots kept busy are two
cores, exactly when a burst of callers finishing their questions needs them. Measured at
twenty calls (60 questions): 73 early end-of-turn inferences for 7 verdicts used (busy, the
turn strategy asks for a verdict only after the transcript, and rarely), 67 early
transcriptions of which 30 were thrown away, together about a fifth of the server's CPU.
So a budget can also be told when the server is busy (the runtime's says so from
``CALLAGENT_NO_EARLY_RUNS_FROM_CALLS`` simultaneous calls on): then it grants no run at all.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable


class SpeculationBudget:
    """At most ``slots`` speculative runs at once, none while busy (thread-safe)."""

    def __init__(self, slots: int, busy: Callable[[], bool] | None = None):
        """Allow ``slots`` (>= 1) runs in flight, none while ``busy`` says True (None: never)."""
        self.slots = max(1, slots)
        self._busy = busy
        self._in_flight = 0
        self._lock = threading.Lock()
        self.skipped = 0

    @property
    def in_flight(self) -> int:
        """Speculative runs submitted and not finished."""
        return self._in_flight

    def claim(self) -> bool:
        """Take a slot for a run about to be submitted; False when every slot is taken or busy.

        Give it back with :meth:`release` when the run is over (a done callback on its
        future, which also fires when the run is cancelled before it starts).
        """
        busy = self._busy is not None and self._busy()
        with self._lock:
            if busy or self._in_flight >= self.slots:
                self.skipped += 1
                return False
            self._in_flight += 1
            return True

    def release(self, *_done: object) -> None:
        """Give back a slot (usable as a future's done callback)."""
        with self._lock:
            self._in_flight = max(0, self._in_flight - 1)


PROCESS_BUDGET = SpeculationBudget(os.cpu_count() or 1)
"""The default budget of services built alone: one speculative run per core, never busy."""

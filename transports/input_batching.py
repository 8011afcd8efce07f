"""How many of Twilio's 20 ms media chunks go into one pipeline audio frame.

Every caller audio frame costs the event loop the same fixed work whatever its length:
a dozen processor hops, queue wake-ups, the VAD's thread hop. Twilio sends 50 chunks a
second per call, and the event loop (one core, the GIL) is what limits how many calls
one server carries. Joining two chunks into one 40 ms frame cuts the loop's work for
an idle call by about a quarter (8 calls: 27 % -> 20 % of a core for the loop thread,
measured here), at the price of VAD decisions up to 20 ms later (Silero reads 32 ms
windows, so most are already that late). With twenty calls the loop thread was still
busy nearly all the time; 60 ms frames took another 8 % off its work (and 10 % off the
server's CPU: fewer VAD thread hops), for VAD decisions up to 40 ms later, well inside
the barge-in budget (250 ms; measured p95 140 ms). A policy says how many chunks to join:

- :class:`NoBatching`: always one (lowest latency);
- :class:`LoadAdaptiveBatching`: one while the server is quiet, two from a number of
  simultaneous calls on, three from a higher number, where the CPU is what delays replies.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

MAX_CHUNKS = 3
"""Never more than 60 ms per frame: the barge-in budget is spent in 20 ms steps."""


class BatchingPolicy(Protocol):
    """Decides how many 20 ms chunks make one pipeline frame right now."""

    def chunks_per_frame(self) -> int:
        """1 (every chunk is a frame) or more."""
        ...


class NoBatching:
    """Every Twilio chunk is a pipeline frame."""

    def chunks_per_frame(self) -> int:
        """Always one."""
        return 1


class LoadAdaptiveBatching:
    """Two chunks per frame once ``busy_from`` calls are up, three from ``very_busy_from``."""

    def __init__(self, active_calls: Callable[[], int], busy_from: int, very_busy_from: int = 0):
        """Batch by the server's current call count.

        Args:
            active_calls: The number of calls the server is carrying now.
            busy_from: From this many calls on, join two chunks per frame (0: never).
            very_busy_from: From this many calls on, join three (0: never).
        """
        self._active_calls = active_calls
        self._thresholds = [t for t in (busy_from, very_busy_from) if t > 0]

    def chunks_per_frame(self) -> int:
        """One, plus one for each threshold the call count has reached."""
        calls = self._active_calls()
        return 1 + sum(1 for threshold in self._thresholds if calls >= threshold)


class AudioChunkJoiner:
    """Collects one call's decoded chunks and hands them on in frames of the policy's size."""

    def __init__(self, policy: BatchingPolicy):
        """Join chunks as ``policy`` says (asked again at every frame boundary)."""
        self._policy = policy
        self._pending: list[bytes] = []

    def add(self, pcm: bytes) -> bytes | None:
        """Take one chunk; return a frame's audio when one is complete, else None."""
        wanted = min(MAX_CHUNKS, self._policy.chunks_per_frame())
        if not self._pending and wanted <= 1:
            return pcm  # the common case on a quiet server: nothing to join
        self._pending.append(pcm)
        if len(self._pending) < wanted:
            return None
        audio = b"".join(self._pending)
        self._pending.clear()
        return audio

"""A stand-in telephone network for the campaign queue: a dialler and callees that answer.

:class:`FakeDialer` runs in the worker (as the Twilio dialler does): it claims the attempt,
"calls" by writing a row to the network's own log (a SQLite file, like the provider's
records) and names the call. :class:`FakeCallees` runs elsewhere (as Twilio's status
callbacks reach the server): after a random short delay each call ends with a random
disposition, the attempt is finished and ``attempt_ended`` is enqueued. A worker killed
mid-campaign therefore loses no call that was placed, as with a real provider.
"""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from bot.outbound.dialer import DialError
from integrations.outbound.dispositions import Disposition
from integrations.outbound.store import Attempt, OutboundStore

SCHEMA = (
    "create table if not exists dials (attempt_id text, contact_id text, campaign_id text, "
    "number integer, to_number text, dialed_at real, answer_at real, ended_at real, "
    "disposition text)"
)
DEFAULT_OUTCOMES: Mapping[str, float] = {
    Disposition.CONFIRMED: 0.4,
    Disposition.NO_ANSWER: 0.25,
    Disposition.BUSY: 0.1,
    Disposition.VOICEMAIL_LEFT: 0.15,
    Disposition.RESCHEDULED: 0.05,
    Disposition.CANCELLED: 0.05,
}


def open_log(path: Path) -> sqlite3.Connection:
    """The network's log of dials (created if missing)."""
    conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    conn.execute("pragma journal_mode=wal")
    conn.execute(SCHEMA)
    return conn


class FakeDialer:
    """Places attempts on the fake network (the runner's ``AttemptPlacer``).

    Args:
        attempts: The attempt rows (the claim that makes a dial happen once).
        log_path: The network's log.
        refuse: Number suffix -> (error code, retryable): such numbers are refused, as
            Twilio refuses an invalid or unreachable number.
    """

    def __init__(
        self,
        attempts: OutboundStore,
        log_path: Path,
        refuse: Mapping[str, tuple[int, bool]] | None = None,
    ):
        self.attempts = attempts
        self._log = open_log(log_path)
        self._lock = threading.Lock()
        self.refuse = dict(refuse or {})

    async def place(self, attempt: Attempt) -> None:
        """Claim and "dial" the attempt, or raise :class:`DialError`."""
        if not self.attempts.claim_dial(attempt.id):
            return  # claimed before: never dialled twice
        for suffix, (code, retryable) in self.refuse.items():
            if attempt.to.endswith(suffix):
                raise DialError("number refused by the network", code=code, retryable=retryable)
        with self._lock:
            self._log.execute(
                "insert into dials (attempt_id, contact_id, campaign_id, number, to_number, "
                "dialed_at) values (?, ?, ?, ?, ?, ?)",
                (
                    attempt.id,
                    attempt.contact_id,
                    attempt.campaign_id,
                    attempt.number,
                    attempt.to,
                    time.time(),
                ),
            )
        self.attempts.mark_dialed(attempt.id, f"SIM{attempt.id[3:]}")


class FakeCallees:
    """Ends the network's calls after a random short delay (a thread; start/stop).

    Args:
        attempts: The attempt rows.
        log_path: The network's log.
        ended: Called with each ended attempt id (enqueue ``attempt_ended``).
        answer_s: Range of a call's length, seconds.
        outcomes: Disposition -> weight.
        seed: For repeatable runs.
    """

    def __init__(
        self,
        attempts: OutboundStore,
        log_path: Path,
        ended: Callable[[str], object],
        *,
        answer_s: tuple[float, float] = (0.1, 0.5),
        outcomes: Mapping[str, float] = DEFAULT_OUTCOMES,
        seed: int = 7,
    ):
        self.attempts = attempts
        self._log = open_log(log_path)
        self.ended = ended
        self.answer_s = answer_s
        self.outcomes = dict(outcomes)
        self._random = random.Random(seed)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fake-callees", daemon=True)

    def start(self) -> FakeCallees:
        """Start answering."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop answering."""
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.tick(time.time())

    def tick(self, now: float) -> int:
        """Give new calls an end time and end the calls due; returns how many ended."""
        for (attempt_id,) in self._log.execute(
            "select attempt_id from dials where answer_at is null"
        ).fetchall():
            self._log.execute(
                "update dials set answer_at = ? where attempt_id = ?",
                (now + self._random.uniform(*self.answer_s), attempt_id),
            )
        due = self._log.execute(
            "select attempt_id from dials where ended_at is null and answer_at <= ?", (now,)
        ).fetchall()
        names, weights = list(self.outcomes), list(self.outcomes.values())
        for (attempt_id,) in due:
            disposition = self._random.choices(names, weights)[0]
            self.attempts.finish(attempt_id, disposition)
            self._log.execute(
                "update dials set ended_at = ?, disposition = ? where attempt_id = ?",
                (time.time(), disposition, attempt_id),
            )
            self.ended(attempt_id)
        return len(due)

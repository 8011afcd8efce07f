"""Retention: call records older than a cut-off are deleted or anonymised.

One strategy per action:

- :class:`DeleteCalls`: the calls and their turns are removed;
- :class:`AnonymiseCalls`: what could identify the caller or repeat what was said is
  cleared (the caller id, the escalation summary, every turn's caller and bot text and
  entities); what the statistics need stays (times, outcome, intents, confidences,
  bands, latencies, the escalation's trigger and reason).

:func:`purge` applies one in batches of :data:`BATCH` calls, one short transaction each,
so the record writer (a call's turns) never waits long behind it on SQLite.
:class:`RetentionJob` runs it in a daemon thread at start-up and then every day. A call
that may still be in progress (no outcome yet, started less than
:data:`~integrations.storage.recovery.LEGACY_STALE` ago) is never touched.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from loguru import logger
from sqlalchemy import ColumnElement, Connection, and_, delete, func, null, or_, select, update

from integrations.storage.models import Call, Turn
from integrations.storage.records import utcnow
from integrations.storage.recovery import LEGACY_STALE

BATCH = 500
"""Calls per transaction."""
DAY_SECS = 24 * 3600.0


@dataclass(frozen=True)
class PurgeResult:
    """What a purge did (or, on a dry run, would do).

    Parameters:
        action: ``delete`` or ``anonymise``.
        cutoff: Calls started before this (UTC) were affected.
        calls: Calls deleted or anonymised.
        turns: Their turns deleted or cleared.
        dry_run: Nothing was changed.
    """

    action: str
    cutoff: datetime
    calls: int
    turns: int
    dry_run: bool = False


class RetentionAction(ABC):
    """What happens to a call past the retention period."""

    name: str
    done: str
    """The action in the past tense, for messages ("deleted")."""

    @abstractmethod
    def pending(self, cutoff: datetime, now: datetime) -> ColumnElement[bool]:
        """The condition on ``calls`` of the calls this action still has to handle."""

    @abstractmethod
    def turns_pending(self) -> ColumnElement[bool]:
        """The condition on ``turns`` of the turns it changes."""

    @abstractmethod
    def apply(self, conn: Connection, call_ids: Sequence[str]) -> int:
        """Handle these calls; returns how many turns it changed."""


class DeleteCalls(RetentionAction):
    """Calls and their turns are removed."""

    name = "delete"
    done = "deleted"

    def pending(self, cutoff: datetime, now: datetime) -> ColumnElement[bool]:
        """Every old call."""
        return _old(cutoff, now)

    def turns_pending(self) -> ColumnElement[bool]:
        """Every turn of those calls."""
        return Turn.id.is_not(None)

    def apply(self, conn: Connection, call_ids: Sequence[str]) -> int:
        """Delete the turns, then the calls."""
        turns = conn.execute(delete(Turn).where(Turn.call_id.in_(call_ids))).rowcount or 0
        conn.execute(delete(Call).where(Call.id.in_(call_ids)))
        return turns


class AnonymiseCalls(RetentionAction):
    """Caller id, escalation summary and every turn's words and entities are cleared."""

    name = "anonymise"
    done = "anonymised"

    def pending(self, cutoff: datetime, now: datetime) -> ColumnElement[bool]:
        """Old calls that still hold something to clear (so a second run finds none)."""
        # a call's turns start within a day of it (the index on turns.started_at is used)
        with_words = select(Turn.call_id).where(
            Turn.started_at < cutoff + timedelta(days=1), self.turns_pending()
        )
        return and_(
            _old(cutoff, now),
            or_(
                Call.caller.is_not(None),
                Call.escalation_summary.is_not(None),
                Call.id.in_(with_words),
            ),
        )

    def turns_pending(self) -> ColumnElement[bool]:
        """Turns with words or entities."""
        return or_(
            Turn.caller_text.is_not(None), Turn.bot_text.is_not(None), Turn.entities.is_not(None)
        )

    def apply(self, conn: Connection, call_ids: Sequence[str]) -> int:
        """Clear the personal columns (SQL NULL, not JSON null)."""
        conn.execute(
            update(Call).where(Call.id.in_(call_ids)).values(caller=None, escalation_summary=null())
        )
        result = conn.execute(
            update(Turn)
            .where(Turn.call_id.in_(call_ids), self.turns_pending())
            .values(caller_text=None, bot_text=None, entities=null())
        )
        return result.rowcount or 0


RETENTION_ACTIONS: dict[str, type[RetentionAction]] = {
    "delete": DeleteCalls,
    "anonymise": AnonymiseCalls,
}
"""Retention actions by name (``CALLAGENT_RETENTION_ACTION``, ``calls purge``)."""


def purge(
    connect: Callable[[], Any],
    action: RetentionAction,
    cutoff: datetime,
    *,
    dry_run: bool = False,
    now: datetime | None = None,
) -> PurgeResult:
    """Delete or anonymise the calls started before ``cutoff``.

    Args:
        connect: Opens a transaction (``engine.begin``).
        action: What to do with each call.
        cutoff: Calls started before this (naive UTC) are affected.
        dry_run: Only count.
        now: The current time (tests).

    Returns:
        How many calls and turns were (or would be) affected.
    """
    now = now or utcnow()
    pending = action.pending(cutoff, now)
    if dry_run:
        with connect() as conn:
            calls = conn.execute(select(func.count()).select_from(Call).where(pending))
            turns = conn.execute(
                select(func.count())
                .select_from(Turn)
                .where(Turn.call_id.in_(select(Call.id).where(pending)), action.turns_pending())
            )
            return PurgeResult(action.name, cutoff, calls.scalar_one(), turns.scalar_one(), True)
    calls = turns = 0
    while True:
        with connect() as conn:
            ids = list(conn.execute(select(Call.id).where(pending).limit(BATCH)).scalars())
            if not ids:
                break
            turns += action.apply(conn, ids)
            calls += len(ids)
    return PurgeResult(action.name, cutoff, calls, turns)


def _old(cutoff: datetime, now: datetime) -> ColumnElement[bool]:
    """Started before ``cutoff`` and not possibly still running."""
    live_since = now - LEGACY_STALE
    return and_(
        Call.started_at < cutoff,
        or_(Call.outcome.is_not(None), Call.started_at < live_since),
    )


class RetentionJob:
    """Applies a retention period in a daemon thread: now, then every ``every_secs``."""

    def __init__(
        self,
        run: Callable[[datetime], PurgeResult],
        days: float,
        *,
        every_secs: float = DAY_SECS,
        name: str = "call-retention",
    ):
        """Start the thread.

        Args:
            run: Purges the calls started before a cut-off (e.g. ``CallStore.purge``).
            days: The retention period.
            every_secs: Time between runs.
            name: Thread name.
        """
        self._run = run
        self._days = days
        self._every = every_secs
        self._stop = threading.Event()
        self.runs = 0
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop after the run in progress, if any."""
        self._stop.set()
        self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.run_once()
            self._stop.wait(self._every)

    def run_once(self) -> PurgeResult | None:
        """One run (never raises: the database may be down; the next run tries again)."""
        try:
            result = self._run(utcnow() - timedelta(days=self._days))
        except Exception as e:  # noqa: BLE001 - calls go on whatever happens here
            logger.warning(f"call records: retention run failed ({type(e).__name__})")
            return None
        finally:
            self.runs += 1
        if result.calls:
            logger.info(
                f"call records: retention {result.action} of {result.calls} call(s) and "
                f"{result.turns} turn(s) older than {self._days:g} days"
            )
        return result

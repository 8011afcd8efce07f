"""Crash recovery: what a dead server process left behind is finished by a live one.

Run by the writer thread when the store opens (before anything else is written)
and then periodically, so a live peer sharing the database cleans up after a
process that died without a restart:

1. The journals of dead workers (:mod:`integrations.storage.journal`) are moved to
   the spool, so the writer writes their operations in order.
2. Calls still open whose worker is dead are closed with the outcome ``failed``
   and the reason :data:`SERVER_LOST`; they end when their worker was last seen
   (or at their last turn, if later). Calls with no worker recorded (written
   before workers existed) are closed once they are older than
   :data:`LEGACY_STALE`.
3. Dead workers with nothing left open are dropped from the ``workers`` table.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

from loguru import logger
from sqlalchemy import Connection, func, select, update

from integrations.storage.journal import orphaned_journals, read_journal
from integrations.storage.models import Base, Call, Turn
from integrations.storage.ops import Op
from integrations.storage.records import Outcome, TurnKind
from integrations.storage.workers import WorkerId, WorkerRegistry

SERVER_LOST = "server lost"
"""Why a call whose server process died (killed, host lost) ended."""
LEGACY_STALE = timedelta(hours=6)
"""A call with no worker and no end this long after it started is closed as failed."""

CALLS = Base.metadata.tables[Call.__tablename__]
TURNS = Base.metadata.tables[Turn.__tablename__]


class Recovery:
    """Finishes what dead workers left: their journals and their open calls."""

    def __init__(
        self,
        registry: WorkerRegistry,
        *,
        data_dir: Path | None,
        spool: Callable[[list[Op]], None],
        on_bad_line: Callable[[str], None],
    ):
        """Recover on behalf of ``registry.me``.

        Args:
            registry: The workers table (heartbeats, liveness).
            data_dir: Where journals live (None: none are kept).
            spool: Appends operations to the spool, in order.
            on_bad_line: Keeps a journal line that cannot be read.
        """
        self.registry = registry
        self.data_dir = data_dir
        self._spool = spool
        self._on_bad_line = on_bad_line

    def last_seen(self) -> dict[str, datetime] | None:
        """Every known worker's last heartbeat (None: the database cannot tell now)."""
        try:
            return self.registry.last_seen()
        except Exception:  # noqa: BLE001 - database down: only same-host pids can tell
            return None

    def adopt_journals(self, seen: Mapping[str, datetime] | None = None) -> int:
        """Move dead workers' journals into the spool; returns how many operations.

        Args:
            seen: Workers' last heartbeats, already read this sweep (None: read them).
        """
        if self.data_dir is None:
            return 0
        if seen is None:
            seen = self.last_seen() or {}
        now = self.registry.now()

        def is_dead(worker: WorkerId, path: Path) -> bool:
            last = seen.get(str(worker))
            if last is None:  # unknown to the database: the file's last write stands in
                last = datetime.fromtimestamp(path.stat().st_mtime, UTC).replace(tzinfo=None)
            return self.registry.liveness.is_dead(worker, last, now)

        moved = 0
        for path in orphaned_journals(self.data_dir, is_dead):
            ops = read_journal(path, self._on_bad_line)
            if ops:
                self._spool(ops)
            path.unlink(missing_ok=True)
            moved += len(ops)
        return moved

    def close_orphaned_calls(
        self, now: datetime | None = None, seen: Mapping[str, datetime] | None = None
    ) -> int:
        """Close open calls whose worker is dead; returns how many.

        Args:
            now: The time to judge by (default: the database's clock, as heartbeats are).
            seen: Workers' last heartbeats, already read this sweep (None: read them).
        """
        now = now or self.registry.now()
        if seen is None:
            seen = self.registry.last_seen()
        closed = 0
        dead_owners: set[str] = set()
        live_owners: set[str] = set()
        verdicts: dict[tuple[str, datetime], bool] = {}

        def is_dead(worker_id: str, last: datetime) -> bool:
            """Whether the worker is dead (judged once per worker and time this sweep)."""
            key = (worker_id, last)
            if key not in verdicts:
                worker = WorkerId.parse(worker_id)
                verdicts[key] = worker is not None and self.registry.liveness.is_dead(
                    worker, last, now
                )
            return verdicts[key]

        with self.registry.engine.begin() as conn:
            rows = conn.execute(
                select(CALLS.c.id, CALLS.c.worker_id, CALLS.c.started_at).where(
                    CALLS.c.outcome.is_(None)
                )
            ).all()
            for row in rows:
                last = seen.get(row.worker_id or "")
                if row.worker_id is None:
                    if row.started_at >= now - LEGACY_STALE:
                        continue
                else:
                    if not is_dead(row.worker_id, last or row.started_at):
                        live_owners.add(row.worker_id)
                        continue
                    dead_owners.add(row.worker_id)
                _close(conn, row.id, row.started_at, last, now)
                closed += 1
        for worker_id, last in seen.items():
            if worker_id not in live_owners and is_dead(worker_id, last):
                dead_owners.add(worker_id)
        self.registry.forget(sorted(dead_owners - live_owners - {str(self.registry.me)}))
        if closed:
            logger.info(f"call records: {closed} call(s) left open by a stopped process closed")
        return closed


def _close(
    conn: Connection, call_id: str, started: datetime, last_seen: datetime | None, now: datetime
) -> None:
    """Close one call as failed, ending when it was last known to be running."""
    last_turn, caller_turns = conn.execute(
        select(
            func.max(TURNS.c.started_at),
            func.count().filter(TURNS.c.kind == TurnKind.CALLER.value),
        ).where(TURNS.c.call_id == call_id)
    ).one()
    ended = max(t for t in (started, last_seen, last_turn) if t is not None)
    ended = min(ended, now)
    primary = conn.execute(
        select(TURNS.c.intent)
        .where(
            TURNS.c.call_id == call_id,
            TURNS.c.band == "act",
            TURNS.c.intent.not_in(("affirm", "deny")),
        )
        .order_by(TURNS.c.seq)
        .limit(1)
    ).scalar()
    conn.execute(
        update(CALLS)
        .where(CALLS.c.id == call_id, CALLS.c.outcome.is_(None))
        .values(
            outcome=Outcome.FAILED.value,
            end_reason=SERVER_LOST,
            ended_at=ended,
            duration_secs=round(max((ended - started).total_seconds(), 0.0), 3),
            turn_count=caller_turns,
            primary_intent=primary,
        )
    )

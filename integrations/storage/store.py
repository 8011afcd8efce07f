"""The call store: writes call records off the event loop and reads them back.

Writes (:meth:`CallStore.start_call`, :meth:`save_turn`, :meth:`update_call`,
:meth:`end_call`) only queue an operation for the :class:`RecordWriter` thread and
return at once; each is an idempotent upsert or update, so a turn can be saved
again as more becomes known about it. Reads are synchronous; from async code use
the ``a``-prefixed versions, which run in a worker thread.
"""

from __future__ import annotations

import asyncio
import atexit
import dataclasses
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from loguru import logger
from sqlalchemy import Engine, insert, update

from integrations.storage import migrate, queries, retention, stats
from integrations.storage.dialects import DialectSupport, dialect_support
from integrations.storage.engine import describe_url, make_engine
from integrations.storage.journal import Journal, JournalSync
from integrations.storage.models import Base, Call, Turn
from integrations.storage.queries import CallFilter, parse_time
from integrations.storage.records import (
    CallEnd,
    CallStart,
    CallUpdate,
    Outcome,
    TurnRecord,
    json_safe,
    utcnow,
)
from integrations.storage.recovery import LEGACY_STALE, Recovery
from integrations.storage.stats_cache import StatsCache
from integrations.storage.workers import Liveness, WorkerConfig, WorkerRegistry
from integrations.storage.writer import Chore, Op, RecordWriter, Spool

CALLS = Base.metadata.tables[Call.__tablename__]
TURNS = Base.metadata.tables[Turn.__tablename__]
_TURN_UPDATE = [c.name for c in TURNS.columns if c.name not in ("id", "call_id", "seq")]
_START_UPDATE = [
    "transport",
    "direction",
    "caller",
    "agent",
    "started_at",
    "worker_id",
    "provider_call_id",
    "campaign_id",
    "contact_id",
    "attempt",
]


class CallStore:
    """Call records in SQLite or PostgreSQL."""

    def __init__(
        self,
        engine: Engine,
        *,
        spool_dir: Path | None = None,
        worker: WorkerConfig | None = None,
        journal_sync: JournalSync | None = None,
    ):
        """Wrap an engine and start the writer thread.

        Args:
            engine: From :func:`integrations.storage.engine.make_engine`.
            spool_dir: Where records wait while the database is unreachable
                (None: they wait in memory), and where the journal is kept.
            worker: This store writes for a server process: its calls carry the
                worker's id, the writer keeps its heartbeat, journals every record
                before queueing it (in ``spool_dir``) and closes calls left open by
                dead workers (at start, then periodically). None (tools, the CLI):
                none of that.
            journal_sync: How far each journal and spool line is pushed (default: to the OS).
        """
        self.engine = engine
        self.dialect: DialectSupport = dialect_support(engine)
        self.stats_cache = StatsCache()
        self._closed = False
        spool = Spool(spool_dir, journal_sync) if spool_dir is not None else None
        self.registry: WorkerRegistry | None = None
        journal: Journal | None = None
        chores: list[Chore] = []
        if worker is not None:
            self.registry = WorkerRegistry(engine, Liveness(worker.id, worker.stale_secs))
            if spool_dir is not None:
                journal = Journal(spool_dir, worker.id, journal_sync)
            self.recovery = Recovery(
                self.registry,
                data_dir=spool_dir,
                spool=lambda ops: self.writer.hold(ops),
                on_bad_line=lambda line: spool.keep_unreadable(line) if spool else None,
            )
            chores = [
                Chore(worker.heartbeat_secs, self.registry.heartbeat, "heartbeat"),
                Chore(worker.sweep_secs, self._recover, "crash recovery"),
            ]
        self.writer = RecordWriter(
            self.apply,
            spool=spool,
            journal=journal,
            prepare=self.upgrade,
            chores=chores,
            start=False,
        )
        self.writer.start()
        atexit.register(self.close)

    @classmethod
    def open(
        cls,
        url: str,
        *,
        spool_dir: Path | None = None,
        migrate_schema: bool = True,
        worker: WorkerConfig | None = None,
        journal_sync: JournalSync | None = None,
    ) -> CallStore:
        """Open the database at ``url``, bringing its schema up to date.

        A database that cannot be reached is logged, not raised: records then wait
        in the spool until it can. See :meth:`__init__` for ``worker`` and
        ``journal_sync``.
        """
        engine = make_engine(url)
        if migrate_schema:
            try:
                migrate.upgrade(engine)
            except Exception as e:  # noqa: BLE001 - calls must still be answered
                logger.error(
                    f"call records: cannot migrate {describe_url(url)} ({type(e).__name__}); "
                    "records wait in the spool until it is reachable"
                )
        return cls(engine, spool_dir=spool_dir, worker=worker, journal_sync=journal_sync)

    def _recover(self) -> None:
        """Crash recovery (writer thread): dead journals to the spool, replay, close calls.

        The writer replays the spool itself just before its idle-tick chores, so this
        replays only what it just adopted, or at start (before the writer is ready).
        """
        seen = self.recovery.last_seen()  # once per sweep
        adopted = self.recovery.adopt_journals({} if seen is None else seen)
        if adopted or not self.writer.ready.is_set():
            self.writer.replay()
        self.recovery.close_orphaned_calls(seen=seen)  # None: read again (raises if still down)

    @property
    def url(self) -> str:
        """The database URL, password hidden."""
        return self.engine.url.render_as_string(hide_password=True)

    # Schema

    def upgrade(self) -> None:
        """Apply pending migrations (``alembic upgrade head``)."""
        migrate.upgrade(self.engine)

    def revision(self) -> str | None:
        """The schema revision the database is at."""
        return migrate.current_revision(self.engine)

    # Writes (queued; never block, never raise)

    def start_call(self, record: CallStart) -> None:
        """Record that a call started (run by this store's worker, if it has one)."""
        if self.registry is not None and record.worker_id is None:
            record = dataclasses.replace(record, worker_id=str(self.registry.me))
        self.writer.submit("start", record)

    def save_turn(self, record: TurnRecord) -> None:
        """Record a turn (again, if it was saved before: the newest version wins)."""
        self.writer.submit("turn", record)

    def update_call(self, record: CallUpdate) -> None:
        """Record facts about a call (CRM prefetch time, escalation)."""
        self.writer.submit("update", record)

    def end_call(self, record: CallEnd) -> None:
        """Record how a call ended."""
        self.writer.submit("end", record)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued record was written (or spooled)."""
        return self.writer.flush(timeout)

    def close(self) -> None:
        """Write what is queued, retire this worker, and release the database (once)."""
        if self._closed:
            return
        self._closed = True
        try:
            self.writer.close()
            if self.registry is not None and not self.writer.has_backlog:
                self.registry.retire()
        except Exception as e:  # noqa: BLE001 - peers will see the heartbeat go stale
            logger.warning(f"call records: could not retire this worker ({type(e).__name__})")
        finally:
            self.engine.dispose()

    def apply(self, ops: Sequence[Op]) -> None:
        """Write operations in one transaction (used by the writer thread)."""
        with self.engine.begin() as conn:
            for kind, record in ops:
                conn.execute(self._statement(kind, record))
        self.stats_cache.invalidate(_past_days(ops))

    def _statement(self, kind: str, record: Any) -> Any:
        if kind == "start":
            values = {
                "id": record.call_id,
                "transport": record.transport,
                "direction": record.direction,
                "caller": record.caller,
                "agent": record.agent,
                "started_at": record.started_at,
                "worker_id": record.worker_id,
                "provider_call_id": record.provider_call_id,
                "campaign_id": record.campaign_id,
                "contact_id": record.contact_id,
                "attempt": record.attempt,
                "turn_count": 0,
            }
            return self.dialect.upsert(CALLS, values, ["id"], _START_UPDATE)
        if kind == "turn":
            return self.dialect.upsert(TURNS, turn_row(record), ["call_id", "seq"], _TURN_UPDATE)
        if kind == "update":
            return update(Call).where(Call.id == record.call_id).values(**update_values(record))
        if kind == "end":
            return (
                update(Call)
                .where(Call.id == record.call_id)
                .values(
                    ended_at=record.ended_at,
                    duration_secs=record.duration_secs,
                    outcome=record.outcome,
                    end_reason=record.end_reason,
                    turn_count=record.turn_count,
                    primary_intent=record.primary_intent,
                )
            )
        raise ValueError(f"unknown record operation {kind!r}")

    def bulk_insert(self, calls: list[dict[str, Any]], turns: list[dict[str, Any]]) -> None:
        """Insert ready-made rows directly (synthetic data, imports)."""
        with self.engine.begin() as conn:
            if calls:
                conn.execute(insert(CALLS), calls)
            if turns:
                conn.execute(insert(TURNS), turns)
        self.stats_cache.clear()

    def close_stale(self, older_than: timedelta = LEGACY_STALE) -> int:
        """Close every call without an end older than ``older_than`` as failed, whoever runs it.

        Only for tools: a server closes dead workers' calls itself (see
        :mod:`integrations.storage.recovery`), never a live peer's.
        """
        cutoff = utcnow() - older_than
        with self.engine.begin() as conn:
            result = conn.execute(
                update(Call)
                .where(Call.outcome.is_(None), Call.started_at < cutoff)
                .values(
                    outcome=Outcome.FAILED.value, end_reason="no end recorded (process stopped)"
                )
            )
        if result.rowcount:
            self.stats_cache.clear()
        return result.rowcount or 0

    def purge(
        self, cutoff: datetime, action: str = "delete", *, dry_run: bool = False
    ) -> retention.PurgeResult:
        """Delete or anonymise the calls started before ``cutoff`` (naive UTC).

        Args:
            cutoff: Calls started before this are affected (never one still running).
            action: ``delete`` or ``anonymise`` (:data:`retention.RETENTION_ACTIONS`).
            dry_run: Only count what would be affected.
        """
        strategy = retention.RETENTION_ACTIONS[action]()
        result = retention.purge(self.engine.begin, strategy, cutoff, dry_run=dry_run)
        if result.calls and not dry_run:
            self.stats_cache.clear()
        return result

    # Reads

    def list_calls(
        self, where: CallFilter | None = None, *, limit: int = 50, offset: int = 0
    ) -> dict[str, Any]:
        """One page of calls, newest first: ``{total, limit, offset, calls}``."""
        with self.engine.connect() as conn:
            return queries.list_calls(conn, where or CallFilter(), limit=limit, offset=offset)

    def get_call(self, call_id: str) -> dict[str, Any] | None:
        """One call with its turns, or None."""
        with self.engine.connect() as conn:
            return queries.get_call(conn, call_id)

    def count_calls(self, where: CallFilter | None = None) -> int:
        """How many calls match."""
        with self.engine.connect() as conn:
            return queries.count_calls(conn, where or CallFilter())

    def iter_calls(
        self, where: CallFilter | None = None, *, batch: int = 1000
    ) -> Iterator[dict[str, Any]]:
        """Every matching call with its turns, oldest first (streams; for exports)."""
        with self.engine.connect() as conn:
            yield from queries.iter_calls(conn, where or CallFilter(), batch=batch)

    def stats(self, where: CallFilter | None = None) -> dict[str, Any]:
        """Aggregates for the dashboard (see :mod:`integrations.storage.stats`)."""
        with self.engine.connect() as conn:
            return stats.call_stats(conn, where or CallFilter(), self.stats_cache)

    def warm_stats_in_background(self, window: str = "30d") -> threading.Thread:
        """Compute (and cache) the dashboard's default window in a daemon thread."""

        def warm() -> None:
            try:
                started = time.perf_counter()
                self.stats(CallFilter(since=parse_time(window)))
                logger.info(
                    f"call records: statistics warmed in {time.perf_counter() - started:.1f}s"
                )
            except Exception as e:  # noqa: BLE001 - only a cache
                logger.warning(f"call records: statistics warm-up failed ({type(e).__name__})")

        thread = threading.Thread(target=warm, name="call-stats-warm", daemon=True)
        thread.start()
        return thread

    async def alist_calls(
        self, where: CallFilter | None = None, *, limit: int = 50, offset: int = 0
    ) -> dict[str, Any]:
        """:meth:`list_calls` in a worker thread."""
        return await asyncio.to_thread(self.list_calls, where, limit=limit, offset=offset)

    async def aget_call(self, call_id: str) -> dict[str, Any] | None:
        """:meth:`get_call` in a worker thread."""
        return await asyncio.to_thread(self.get_call, call_id)

    async def astats(self, where: CallFilter | None = None) -> dict[str, Any]:
        """:meth:`stats` in a worker thread."""
        return await asyncio.to_thread(self.stats, where)


def turn_row(record: TurnRecord) -> dict[str, Any]:
    """The ``turns`` row of a turn record."""
    stages = record.stage_columns()
    return {
        "call_id": record.call_id,
        "seq": record.seq,
        "kind": str(record.kind),
        "started_at": record.started_at,
        "caller_text": record.caller_text,
        "bot_text": record.bot_text,
        "intent": record.intent,
        "confidence": record.confidence,
        "runner_up": record.runner_up,
        "margin": record.margin,
        "band": record.band,
        "path": record.path,
        "entities": json_safe(record.entities or {}),
        "reply_intent": record.reply_intent,
        "interrupted": bool(record.interrupted),
        "latency_ms": record.latency_ms,
        **{f"{name}_ms": value for name, value in stages.items()},
        "stages": json_safe(record.stages_ms or {}),
    }


def update_values(record: CallUpdate) -> dict[str, Any]:
    """The ``calls`` columns a call update sets (only what it knows)."""
    values: dict[str, Any] = {}
    for name in ("crm_prefetch_ms", "amd_verdict", "amd_ms", "disposition"):
        value = getattr(record, name)
        if value is not None:
            values[name] = value
    if record.escalation is not None:
        e = record.escalation
        values.update(
            escalation_trigger=e.trigger,
            escalation_reason=e.reason,
            escalation_summary=json_safe(e.summary or {}),
            transfer_result=e.transfer_result,
            escalated_at=e.at,
        )
    if not values:
        values["id"] = record.call_id  # a no-op update keeps the statement valid
    return values


def _past_days(ops: Sequence[Op]) -> set[str]:
    """The UTC days whose cached statistics these operations may change.

    A call's aggregates count on the day it started; an end or an escalation only
    knows when it happened, so the day before is included as well.
    """
    days: set[str] = set()
    for _kind, record in ops:
        if isinstance(record, CallStart | TurnRecord):
            days.add(stats.day_of(record.started_at))
        elif isinstance(record, CallEnd):
            days.add(stats.day_of(record.ended_at))
            started = record.ended_at - timedelta(seconds=record.duration_secs or 0)
            days.add(stats.day_of(started))
        elif record.escalation is not None:
            days.add(stats.day_of(record.escalation.at))
            days.add(stats.day_of(record.escalation.at - timedelta(days=1)))
    days.discard(stats.day_of(utcnow()))  # today is never cached
    return days
